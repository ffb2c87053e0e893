"""crn_tf.weights.download: a mirror on 127.0.0.1 that breaks halfway -> an imported checkpoint that runs."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from mirror_server import MirrorServer
from test_weights_tf1_import import tiny_tf1_variables, write_tf1_checkpoint

from crn_tf.weights import download
from crn_tf.weights.checkpoint import CheckpointError, load_model
from crn_tf.weights.download import CATALOGUE, DownloadError, fetch, resolve_checkpoint
from crn_tf.weights.tf1_import import import_tf1

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(REPO, "data", "samples", "64x128", "labels")


@pytest.fixture
def tiny_mirror(tmp_path, rng, monkeypatch):
    """A mirror laid out like the authors' (result_256p/model.ckpt.index + .data-00000-of-00001) holding a
    tiny TF1 checkpoint with the original variable names; authors-256p is told not to insist on 256x512."""
    root = tmp_path / "mirror"
    (root / "result_256p").mkdir(parents=True)
    write_tf1_checkpoint(root / "result_256p" / "model.ckpt", tiny_tf1_variables(rng))
    monkeypatch.setitem(CATALOGUE, "authors-256p", dataclasses.replace(CATALOGUE["authors-256p"], preset=None))
    monkeypatch.setattr(download, "download_file", _without_waiting(download.download_file))
    monkeypatch.delenv(download.BASE_URL_ENV, raising=False)
    monkeypatch.setenv(download.HOME_ENV, str(tmp_path / "cache"))
    return root


def _without_waiting(download_file):
    def call(*args, **kwargs):
        return download_file(*args, sleep=lambda seconds: None, **kwargs)
    return call


def test_the_catalogue_holds_the_originals_locations():
    index, data = CATALOGUE["authors-256p"].files
    assert index.path == "result_256p/model.ckpt.index"
    assert index.url == "https://raw.githubusercontent.com/CQFIO/PhotographicImageSynthesis/master/result_256p/model.ckpt.index"
    assert data.path == "result_256p/model.ckpt.data-00000-of-00001"
    assert "id=0B_B_FOgPxgFLLUVQTEg0alRWNDQ" in data.url  # download_models.py's Drive ID for result_256p
    assert CATALOGUE["authors-gta"].files[1].path == "result_GTA/model.ckpt.data-00000-of-00001"
    assert CATALOGUE["inception"].files[0].url == "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
    assert CATALOGUE["vgg19-mat"].files[0].size == 534_904_783
    assert download.source_url(index, "http://127.0.0.1:9/m/") == "http://127.0.0.1:9/m/result_256p/model.ckpt.index"


def test_download_resumes_imports_and_the_checkpoint_runs(tiny_mirror, tmp_path, capsys, rng, monkeypatch):
    cache = tmp_path / "cache"
    data_path = "result_256p/model.ckpt.data-00000-of-00001"
    with MirrorServer(tiny_mirror, break_first=1) as server:
        assert download.main(["authors-256p", "--base-url", server.url, "--no-progress"]) == 0
        ranges = server.requests_for(data_path)
    size = os.path.getsize(tiny_mirror / data_path)
    assert ranges == [None, f"bytes={size // 2}-"]  # broken halfway, then resumed
    directory = str(cache / "checkpoints" / "authors-256p")
    assert capsys.readouterr().out.strip() == f"authors-256p: {directory}"
    assert (cache / data_path).read_bytes() == (tiny_mirror / data_path).read_bytes()

    model = load_model(directory)
    assert model.checkpoint_info["download"] == "authors-256p"
    layout = tf.one_hot(rng.integers(0, 20, (1, 16, 32)), 20)
    expected = import_tf1(str(tiny_mirror / "result_256p" / "model.ckpt"))(layout).numpy()
    np.testing.assert_allclose(model(layout).numpy(), expected, rtol=0, atol=1e-4)

    # --checkpoint authors-256p in the demo resolves to it, with no new request
    from crn_tf.demo import main as demo

    with MirrorServer(tiny_mirror) as server:
        monkeypatch.setenv(download.BASE_URL_ENV, server.url)
        assert demo(["--checkpoint", "authors-256p", "--labels", SAMPLES, "--out", str(tmp_path / "demo"),
                     "--no-progress"]) == 0
        assert server.requests == []
    assert len([f for f in os.listdir(tmp_path / "demo") if f.endswith(".png")]) >= 4 * 3


def test_a_name_is_downloaded_on_first_use_and_init_from_takes_it(tiny_mirror, monkeypatch):
    from crn_tf.nn.model import CRN
    from crn_tf.training.modules import init_from_checkpoint

    with MirrorServer(tiny_mirror) as server:
        monkeypatch.setenv(download.BASE_URL_ENV, server.url)
        target = CRN(output_size=(16, 32), widths=(6, 5, 4), num_images=1)
        target.build()
        copied = init_from_checkpoint(target, "authors-256p")
        assert len(server.requests) == 2  # .index and .data, fetched because they were missing
    source = load_model(resolve_checkpoint("authors-256p"))
    assert len(copied) == 3
    np.testing.assert_array_equal(target.refinement_modules[1].conv1.kernel.numpy(),
                                  source.refinement_modules[1].conv1.kernel.numpy())


def test_local_paths_win_and_other_names_pass_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("authors-256p")
    assert resolve_checkpoint("authors-256p") == "authors-256p"  # a folder of that name is used as it is
    assert resolve_checkpoint("runs/mine") == "runs/mine"
    assert resolve_checkpoint("vgg19-mat") == "vgg19-mat"  # not a checkpoint
    assert resolve_checkpoint(None) is None


def test_a_checkpoint_that_is_not_the_named_network_is_refused(tiny_mirror, monkeypatch):
    monkeypatch.setitem(CATALOGUE, "authors-256p", dataclasses.replace(CATALOGUE["authors-256p"], preset="256p"))
    with MirrorServer(tiny_mirror) as server:
        with pytest.raises(DownloadError) as error:
            fetch("authors-256p", base_url=server.url, progress=False)
    message = str(error.value)
    assert "imports as another network than authors-256p (the 256p generator)" in message
    assert "output_size (16, 32) (expected (256, 512))" in message and "num_images 3 (expected 9)" in message
    assert not os.path.exists(download.checkpoint_dir("authors-256p"))


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_data_file_is_caught_by_the_checkpoint_check(tiny_mirror, damage):
    data = tiny_mirror / "result_256p" / "model.ckpt.data-00000-of-00001"
    content = bytearray(data.read_bytes())
    if damage == "truncated":
        content = content[:-64]  # the last tensors are optimizer state, which the import itself never reads
    else:
        content[len(content) // 2] ^= 0xFF  # one bit-flipped byte: same size, so only the checksum tells
    data.write_bytes(bytes(content))
    with MirrorServer(tiny_mirror) as server:
        with pytest.raises(DownloadError) as error:
            fetch("authors-256p", base_url=server.url, progress=False)
    message = str(error.value)
    assert "is damaged (" in message and ("Read less bytes" if damage == "truncated" else "Checksum does not match") in message
    assert "the downloaded files are not the authors-256p checkpoint; delete" in message


def test_a_dead_link_is_one_line_naming_the_url_a_mirror_and_a_local_file(tiny_mirror, tmp_path, capsys):
    os.remove(tiny_mirror / "result_256p" / "model.ckpt.index")
    with MirrorServer(tiny_mirror) as server:
        assert download.main(["authors-256p", "--base-url", server.url, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"crn-download: error: {server.url}result_256p/model.ckpt.index: HTTP 404 Not Found")
    assert "crn-download authors-256p --base-url URL, or CRN_TF_WEIGHTS_URL=URL" in err
    assert f"put the file at {tmp_path / 'cache' / 'result_256p' / 'model.ckpt.index'}" in err


def test_demo_with_a_name_it_cannot_download_exits_with_one_line(tiny_mirror, tmp_path, capsys, monkeypatch):
    from crn_tf.demo import main as demo

    url = "http://127.0.0.1:9/result_512p/model.ckpt.index"
    monkeypatch.setenv(download.BASE_URL_ENV, "http://127.0.0.1:9/")  # the discard port: nothing listens
    assert demo(["--checkpoint", "authors-512p", "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    *retries, error = capsys.readouterr().err.strip().splitlines()
    # Each retry is a warning line (as crn-download shows them), then the one error line, no traceback.
    assert retries == [f"{url}: cannot connect ([Errno 111] Connection refused); retrying in {wait} s from byte 0"
                       for wait in (1, 2, 4)]
    assert error.startswith(f"crn-demo: error: {url}: cannot connect") and "CRN_TF_WEIGHTS_URL=URL" in error


def test_cache_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv(download.HOME_ENV, str(tmp_path / "home"))
    assert download.cache_dir(str(tmp_path / "flag")) == str(tmp_path / "flag")
    assert download.cache_dir() == str(tmp_path / "home")
    monkeypatch.delenv(download.HOME_ENV)
    assert download.cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "crn_tf")


def test_files_without_a_checkpoint_are_fetched_into_the_cache(tmp_path, monkeypatch):
    root = tmp_path / "mirror"
    root.mkdir()
    (root / "inception-2015-12-05.tgz").write_bytes(b"x" * 1000)
    small = dataclasses.replace(CATALOGUE["inception"], files=(dataclasses.replace(CATALOGUE["inception"].files[0], size=1000),))
    monkeypatch.setitem(CATALOGUE, "inception", small)
    with MirrorServer(root) as server:
        path = fetch("inception", cache=str(tmp_path / "cache"), base_url=server.url, progress=False)
    assert path == str(tmp_path / "cache" / "inception-2015-12-05.tgz") and os.path.getsize(path) == 1000
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_model(resolve_checkpoint("inception"))
