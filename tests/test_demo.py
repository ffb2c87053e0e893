"""The demo: outputs per stem, pixels equal to the model's, the HTML page, and clear errors."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from crn_tf.core.images import make_grid, to_uint8
from crn_tf.demo import (
    DEFAULT_CHECKPOINT,
    DEFAULT_LABELS,
    main,
    output_names,
    synthesize_folder,
)
from crn_tf.labels import CITYSCAPES, classes_to_colors, classes_to_onehot

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = 32, 64


def _tiny_checkpoint(directory, num_images):
    from crn_tf.nn.model import CRN
    from crn_tf.weights.checkpoint import load_model, save_model

    model = CRN(output_size=(HEIGHT, WIDTH), widths=(8, 8, 8, 8), num_images=num_images)
    model.build()
    kernel, bias = model.output_conv.get_weights()
    model.output_conv.set_weights([kernel * 4.0, bias])  # spread pixels over 0..255
    save_model(model, directory)
    return load_model(directory)


@pytest.fixture(scope="module")
def k1(tmp_path_factory):
    directory = tmp_path_factory.mktemp("k1") / "checkpoint"
    return str(directory), _tiny_checkpoint(directory, 1)


@pytest.fixture(scope="module")
def k9(tmp_path_factory):
    directory = tmp_path_factory.mktemp("k9") / "checkpoint"
    return str(directory), _tiny_checkpoint(directory, 9)


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """A synthetic Cityscapes tree at the tiny model's size: gtFine/val labelIds + leftImg8bit photos."""
    from crn_tf.synthetic import write_synthetic_city

    root = tmp_path_factory.mktemp("city")
    stems = write_synthetic_city(root, 0, 3, size=(HEIGHT, WIDTH), instances=False)
    return str(root), stems


def _read(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _label_ids(root, stem):
    city = stem.rsplit("_", 2)[0]
    return _read_gray(os.path.join(root, "gtFine", "val", city, f"{stem}_gtFine_labelIds.png"))


def _read_gray(path):
    return np.asarray(Image.open(path))


def _expected(model, classes):
    """The images the demo must write for class indices [H, W]: the model's output, rounded."""
    return to_uint8(model(classes_to_onehot(classes[None], model.num_classes)).numpy()[0])


def test_cityscapes_tree_pixels_match_model(k1, city, tmp_path, capsys):
    from crn_tf.labels import ids_to_classes

    checkpoint, model = k1
    root, stems = city
    out = tmp_path / "out"
    assert main(["--checkpoint", checkpoint, "--labels", root, "--out", str(out), "--batch-size", "2"]) == 0
    printed = capsys.readouterr()
    assert str(out) in printed.out and "index.html" in printed.out
    assert "3/3" in printed.err  # the progress bar reached the end
    for stem in stems:
        written = _read(out / f"{stem}.png")
        classes = ids_to_classes(_label_ids(root, stem), CITYSCAPES)
        expected = _expected(model, classes)[0]
        assert written.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1
        assert (written == expected).mean() > 0.99  # rounded half up, not truncated
        np.testing.assert_array_equal(_read(out / "page" / f"{stem}_layout.png"), classes_to_colors(classes))
        assert (out / "page" / f"{stem}_real.jpg").is_file()  # the photo from leftImg8bit
        assert not (out / f"{stem}_1.png").exists()  # k = 1: no extra images, no grid
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == 3 * len(stems)  # layout, image, real photo per stem
    assert all((out / src).is_file() for src in sources)


def test_label_folder_k9_writes_all_images_and_grid(k9, city, tmp_path):
    checkpoint, model = k9
    root, stems = city
    folder = tmp_path / "labels"
    folder.mkdir()
    city_name = stems[0].rsplit("_", 2)[0]
    for stem in stems[:2]:  # the release's format: colour PNGs named by stem
        colors = _read(os.path.join(root, "gtFine", "val", city_name, f"{stem}_gtFine_color.png"))
        Image.fromarray(colors).save(folder / f"{stem}.png")
    out = tmp_path / "out"
    photos = os.path.join(root, "leftImg8bit", "val", city_name)
    result = synthesize_folder(model, str(folder), out, images_dir=photos, batch_size=4, progress=False)
    assert result.num_layouts == 2 and result.num_images == 9
    stem = stems[0]
    from crn_tf.labels import colors_to_classes

    classes = colors_to_classes(_read(folder / f"{stem}.png"), CITYSCAPES)
    expected = _expected(model, classes)
    images = np.stack([_read(out / name) for name in output_names(stem, 9)[:9]])
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1
    assert (images == expected).mean() > 0.99
    grid = _read(out / f"{stem}_grid.png")
    assert grid.shape == (3 * HEIGHT, 3 * WIDTH, 3)
    np.testing.assert_array_equal(grid, make_grid(images))
    assert not (out / f"{stem}_9.png").exists()
    page = (out / "index.html").read_text()
    assert page.count(f"{stem}_8.png") == 2  # link and img of the last image
    assert f"page/{stem}_real.jpg" in page


def test_keep_size_and_single_file(k1, tmp_path):
    _, model = k1
    classes = np.zeros((50, 70), np.uint8)  # any size: resized (nearest) to 32x64, output back to 50x70
    classes[25:] = 13
    label = tmp_path / "odd.png"
    Image.fromarray(classes_to_colors(classes)).save(label)
    synthesize_folder(model, str(label), tmp_path / "kept", keep_size=True, progress=False)
    assert Image.open(tmp_path / "kept" / "odd.png").size == (70, 50)
    assert Image.open(tmp_path / "kept" / "page" / "odd_layout.png").size == (70, 50)
    synthesize_folder(model, str(tmp_path / "*.png"), tmp_path / "model_size", progress=False)
    assert Image.open(tmp_path / "model_size" / "odd.png").size == (WIDTH, HEIGHT)


def test_reference_photos_are_resized_as_the_training_photos(k1, tmp_path, capsys):
    """A 2x larger photo beside its layout: shown as MATLAB's imresize makes it (default) or area-averaged."""
    from crn_tf.data.resize import imresize_uint8

    checkpoint, _ = k1
    rng = np.random.default_rng(4)
    grey = rng.normal(128, 60, (2 * HEIGHT, 2 * WIDTH, 1))  # luma detail: JPEG keeps it, subsampled chroma not
    photo = np.clip(np.repeat(grey, 3, axis=2), 0, 255).astype(np.uint8)
    for folder in ("labels", "photos"):
        (tmp_path / folder).mkdir()
    Image.fromarray(classes_to_colors(np.zeros((2 * HEIGHT, 2 * WIDTH), np.uint8))).save(tmp_path / "labels" / "s.png")
    Image.fromarray(photo).save(tmp_path / "photos" / "s.png")
    matlab = imresize_uint8(photo, (HEIGHT, WIDTH)).astype(float)
    area = photo.reshape(HEIGHT, 2, WIDTH, 2, 3).mean(axis=(1, 3))
    for method, expected, other in (("matlab-bicubic", matlab, area), ("area", area, matlab)):
        out = tmp_path / method
        flags = [] if method == "matlab-bicubic" else ["--photo-resize", method]
        assert main(["--checkpoint", checkpoint, "--labels", str(tmp_path / "labels"), "--images",
                     str(tmp_path / "photos"), "--out", str(out), "--no-progress", *flags]) == 0
        shown = _read(out / "page" / "s_real.jpg").astype(float)  # JPEG, quality 90
        assert shown.shape == (HEIGHT, WIDTH, 3)
        assert np.abs(shown - expected).mean() < 0.5 * np.abs(shown - other).mean(), method
    capsys.readouterr()


def test_bf16_and_low_memory_stay_close_to_float32(k1, city, tmp_path):
    checkpoint, _ = k1
    root, stems = city
    outputs = {}
    for name, flags in {"f32": [], "bf16": ["--mixed-precision", "bf16"], "low": ["--low-memory"]}.items():
        out = tmp_path / name
        assert main(["--checkpoint", checkpoint, "--labels", root, "--out", str(out), "--no-progress", *flags]) == 0
        outputs[name] = _read(out / f"{stems[0]}.png").astype(int)
    assert np.abs(outputs["low"] - outputs["f32"]).max() <= 1
    difference = np.abs(outputs["bf16"] - outputs["f32"])
    assert 0 < difference.mean() < 4  # bf16 really ran, and its images stay close


def _error(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("synthesizing")]
    assert code == 1, err
    assert len(lines) == 1 and lines[0].startswith("crn-demo: error:") and "Traceback" not in err, err
    return lines[0]


def test_bad_inputs_are_one_line_errors(k1, tmp_path, capsys):
    checkpoint, _ = k1
    out = str(tmp_path / "out")
    message = _error(["--checkpoint", str(tmp_path / "missing"), "--labels", str(tmp_path), "--out", out], capsys)
    assert "missing" in message and "checkpoint" in message

    weird = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    weird[:2, :3] = (1, 2, 3)
    Image.fromarray(weird).save(tmp_path / "weird.png")
    message = _error(["--checkpoint", checkpoint, "--labels", str(tmp_path / "weird.png"), "--out", out], capsys)
    assert "weird.png" in message and "(1,2,3) (6 pixels)" in message

    (tmp_path / "notes.png").write_text("not an image")
    message = _error(["--checkpoint", checkpoint, "--labels", str(tmp_path / "notes.png"), "--out", out], capsys)
    assert "notes.png" in message and "not a readable" in message

    (tmp_path / "empty").mkdir()
    message = _error(["--checkpoint", checkpoint, "--labels", str(tmp_path / "empty"), "--out", out], capsys)
    assert "empty" in message

    with pytest.raises(SystemExit) as exit_info:
        main(["--mixed-precision", "fp8"])
    assert exit_info.value.code == 2


def test_a_bad_label_is_named_from_its_example_not_from_the_error_text(k1, tmp_path, capsys):
    """A batch that fails to decode: the file comes from the batch's examples (the NumPy reader re-reads them),
    also for corrupt pixel data, whose TensorFlow error names no file."""
    checkpoint, _ = k1
    rng = np.random.default_rng(1)
    labels = tmp_path / "labels"
    labels.mkdir()
    for i in range(3):
        classes = rng.integers(0, 19, (HEIGHT, WIDTH)).astype(np.uint8)
        Image.fromarray(classes_to_colors(classes)).save(labels / f"s{i}.png")
    colors = _read(labels / "s1.png").copy()
    colors[10:12, 20:22] = (1, 2, 3)  # the 4 pixels survive the (identity) resize
    Image.fromarray(colors).save(labels / "s1.png")
    base = ["--checkpoint", checkpoint, "--labels", str(labels), "--out", str(tmp_path / "out"), "--batch-size", "2"]
    message = _error(base, capsys)
    assert message == f"crn-demo: error: {labels / 's1.png'}: colours that are neither a class nor void in the " \
                      "cityscapes label set: (1,2,3) (4 pixels)"
    Image.fromarray(classes_to_colors(np.zeros((HEIGHT, WIDTH), np.uint8))).save(labels / "s1.png")
    data = bytearray((labels / "s2.png").read_bytes())
    data[200:400] = bytes(200)  # header and IEND intact: only decoding finds it
    (labels / "s2.png").write_bytes(bytes(data))
    message = _error(base, capsys)
    assert message.startswith(f"crn-demo: error: {labels / 's2.png'}: corrupt PNG data"), message


def test_colliding_output_names_are_refused(k9, tmp_path, capsys):
    checkpoint, _ = k9
    for stem in ("a", "a_1"):
        Image.fromarray(classes_to_colors(np.zeros((HEIGHT, WIDTH), np.uint8))).save(tmp_path / f"{stem}.png")
    message = _error(["--checkpoint", checkpoint, "--labels", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert "a_1.png" in message


@pytest.mark.slow
def test_no_argument_demo_in_subprocess(tmp_path):
    assert os.path.isdir(DEFAULT_CHECKPOINT), "the shipped demo checkpoint is missing"
    assert os.path.isdir(DEFAULT_LABELS), "the sample layouts are missing"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, os.path.join(REPO, "demo.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "results" / "demo"
    assert str(os.path.join("results", "demo")) in done.stdout
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs and (out / "index.html").is_file()
    page = (out / "index.html").read_text()
    assert all((out / src).is_file() for src in re.findall(r'src="([^"]+)"', page))
    first = _read(out / pngs[0])
    assert first.std() > 1.0  # a picture, not a constant


def test_low_memory_choice_is_reported(k1, city, tmp_path, capsys):
    checkpoint, _ = k1
    root, _ = city
    base = ["--checkpoint", checkpoint, "--labels", root, "--no-progress"]
    assert main(base + ["--out", str(tmp_path / "on"), "--low-memory"]) == 0
    assert "banded low-memory pass (--low-memory on)" in capsys.readouterr().out
    assert main(base + ["--out", str(tmp_path / "auto")]) == 0  # a tiny model fits: plain
    out = capsys.readouterr().out
    assert "plain pass (auto: the plain pass needs about" in out and ": fits)" in out


def test_overview_rows_are_layout_first_images_and_photo(k9, city, tmp_path, capsys):
    checkpoint, model = k9
    root, stems = city
    overview = tmp_path / "overview.png"
    assert main(["--checkpoint", checkpoint, "--labels", root, "--out", str(tmp_path / "out"),
                 "--overview", str(overview), "--no-progress"]) == 0
    assert f"overview: {overview}" in capsys.readouterr().out
    picture = _read(overview)
    rows = []
    for stem in sorted(stems):
        tiles = [_read(tmp_path / "out" / "page" / f"{stem}_layout.png")]
        tiles += [_read(tmp_path / "out" / name) for name in output_names(stem, 9)[:3]]
        tiles += [_read(tmp_path / "out" / "page" / f"{stem}_real.jpg")]
        rows += tiles
    np.testing.assert_array_equal(picture, make_grid(rows, columns=5))
    assert picture.shape[1] >= 5 * WIDTH and picture.shape[0] >= len(stems) * HEIGHT


def test_training_notes_name_the_run_a_checkpoint_was_initialised_from():
    from crn_tf.demo import _training_notes

    assert _training_notes({"step": 2038, "epochs": 1, "options": {"init_from": "runs/stage2"}}) == [
        "trained for 2038 steps (1 epoch), initialised from runs/stage2"]
    # A run from scratch (init_from None) says only its own steps.
    assert _training_notes({"step": 576, "epochs": 12, "options": {"init_from": None}}) == [
        "trained for 576 steps (12 epochs)"]
    # A random-VGG run says what to expect of it.
    notes = _training_notes({"step": 4000, "epochs": 2, "options": {"vgg_weights": "random"}})
    assert notes[0] == "trained for 4000 steps (2 epochs)"
    assert notes[1].startswith("note: trained with a RANDOM-weight VGG-19 loss") and "not photographs" in notes[1]
    assert _training_notes({"step": 10, "options": {"vgg_weights": "imagenet"}}) == ["trained for 10 steps"]
