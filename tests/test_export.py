"""SavedModel / TFLite export: reload without crn_tf, same pixels as Keras, clear input errors."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from crn_tf.core.images import to_uint8
from crn_tf.data.pipeline import classes_to_layout
from crn_tf.export import EXPORT_INFO, LAYOUT_KEY, SERVING_KEY, images_to_uint8, main
from crn_tf.labels import VOID, classes_to_onehot

HEIGHT, WIDTH, K = 32, 64, 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny k=2 CRN saved as a checkpoint directory, exported once through the CLI."""
    from crn_tf.nn.model import CRN
    from crn_tf.weights.checkpoint import save_model

    root = tmp_path_factory.mktemp("export")
    model = CRN(output_size=(HEIGHT, WIDTH), widths=(8, 8, 8, 8), num_images=K)
    model.build()
    # Spread the output over 0..255 so rounding and clipping are exercised, not just mid-grey.
    kernel, bias = model.output_conv.get_weights()
    model.output_conv.set_weights([kernel * 4.0, bias])
    checkpoint = save_model(model, root / "checkpoint")
    saved = root / "saved_model"
    assert main(["--checkpoint", str(checkpoint), "--out", str(saved), "--tflite"]) == 0
    return model, str(checkpoint), str(saved), root


def _labels(rng, batch=2):
    labels = rng.integers(0, 19, size=(batch, HEIGHT, WIDTH)).astype(np.uint8)
    labels[:, :5] = VOID
    return labels


def test_classes_to_layout_matches_numpy(rng):
    labels = _labels(rng)
    np.testing.assert_array_equal(classes_to_layout(labels, 19).numpy(), classes_to_onehot(labels, 19))


def test_images_to_uint8_matches_numpy_rounding():
    values = np.array([-3.0, 0.49, 0.5, 1.5, 127.5, 254.49, 254.5, 300.0], np.float32)
    np.testing.assert_array_equal(images_to_uint8(values).numpy(), to_uint8(values))
    np.testing.assert_array_equal(to_uint8(values), [0, 0, 1, 2, 128, 254, 255, 255])


_RELOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    saved, data = sys.argv[1], sys.argv[2]
    loaded = tf.saved_model.load(saved)
    serve = loaded.signatures["serving_default"]
    layout_fn = loaded.signatures["synthesize_layout"]
    labels = np.load(data + "/labels.npy")
    np.save(data + "/served.npy", serve(labels=tf.constant(labels))["images"].numpy())
    layout = np.load(data + "/layout.npy")
    np.save(data + "/served_float.npy", layout_fn(layout=tf.constant(layout))["images"].numpy())

    def error_of(fn, **kwargs):
        try:
            fn(**kwargs)
        except Exception as error:
            return type(error).__name__ + ": " + str(error)
        return None

    report = {
        "crn_tf_imported": any(name.split(".")[0] == "crn_tf" for name in sys.modules),
        "inputs": {k: [str(v.dtype.name), v.shape.as_list()] for k, v in serve.structured_input_signature[1].items()},
        "outputs": {k: [str(v.dtype.name), v.shape.as_list()] for k, v in serve.structured_outputs.items()},
        "wrong_size": error_of(serve, labels=tf.zeros([1, 16, 64], tf.uint8)),
        "wrong_rank": error_of(serve, labels=tf.zeros([32, 64], tf.uint8)),
        "wrong_dtype": error_of(serve, labels=tf.zeros([1, 32, 64], tf.int32)),
        "label_ids": error_of(serve, labels=tf.fill([1, 32, 64], tf.constant(26, tf.uint8))),
        "wrong_channels": error_of(layout_fn, layout=tf.zeros([1, 32, 64, 19])),
    }
    # The TF1-style loader that TensorFlow Serving and `saved_model_cli run` use: a session
    # restoring the variables by name, fed through the signature's tensor names.
    with tf.compat.v1.Session(graph=tf.Graph()) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], saved)
        signature = meta.signature_def["serving_default"]
        source, target = signature.inputs["labels"].name, signature.outputs["images"].name
        np.save(data + "/served_v1.npy", session.run(target, {source: labels}))
        report["v1_wrong_size"] = error_of(lambda: session.run(target, {source: np.zeros([1, 16, 64], np.uint8)}))
    print("REPORT " + json.dumps(report))
    """
)


@pytest.mark.slow
def test_saved_model_reloads_in_fresh_process_and_matches_keras(tiny, rng):
    model, _, saved, root = tiny
    data = root / "data"
    data.mkdir(exist_ok=True)
    labels = _labels(rng)
    layout = classes_to_onehot(labels, 19)
    np.save(data / "labels.npy", labels)
    np.save(data / "layout.npy", layout)
    script = root / "reload.py"
    script.write_text(_RELOAD_SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # Run outside the repository so that `import crn_tf` could not succeed by accident of the cwd.
    done = subprocess.run([sys.executable, str(script), saved, str(data)], capture_output=True, text=True,
                          env=env, cwd=str(root), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.split("REPORT ", 1)[1])

    expected_float = model(layout).numpy()
    served_float = np.load(data / "served_float.npy")
    np.testing.assert_allclose(served_float, expected_float, rtol=1e-4, atol=1e-2)
    served = np.load(data / "served.npy")
    np.testing.assert_array_equal(np.load(data / "served_v1.npy"), served)
    assert f"shape [batch, {HEIGHT}, {WIDTH}]" in report["v1_wrong_size"]
    assert served.dtype == np.uint8 and served.shape == (2, K, HEIGHT, WIDTH, 3)
    assert np.abs(served.astype(int) - to_uint8(expected_float).astype(int)).max() <= 1
    assert 0 in served and 255 in served  # the scaled output conv reaches both clip limits

    assert report["crn_tf_imported"] is False
    assert report["inputs"] == {"labels": ["uint8", [None, None, None]]}
    assert report["outputs"] == {"images": ["uint8", [None, K, HEIGHT, WIDTH, 3]]}
    for key in ("wrong_size", "wrong_rank"):
        assert f"shape [batch, {HEIGHT}, {WIDTH}]" in report[key], report[key]
    assert "[1 16 64]" in report["wrong_size"]
    assert "uint8" in report["wrong_dtype"]
    assert "class indices 0..18 or 255" in report["label_ids"] and "[26]" in report["label_ids"]
    assert f"[batch, {HEIGHT}, {WIDTH}, 20]" in report["wrong_channels"]


def test_export_info_and_signatures_on_disk(tiny):
    _, _, saved, _ = tiny
    assert os.path.isfile(os.path.join(saved, "saved_model.pb"))
    with open(os.path.join(saved, "assets.extra", EXPORT_INFO)) as f:
        info = json.load(f)
    assert (info["height"], info["width"], info["num_classes"], info["num_images"]) == (HEIGHT, WIDTH, 19, K)
    assert info["class_names"][0] == "road" and len(info["class_names"]) == 19
    assert set(info["signatures"]) == {SERVING_KEY, LAYOUT_KEY}


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_tflite_converts_and_matches(tiny, rng):
    model, _, saved, _ = tiny
    path = os.path.join(saved, "model.tflite")
    assert os.path.getsize(path) > 1000
    import tensorflow as tf

    try:
        interpreter = tf.lite.Interpreter(model_path=path)
    except (AttributeError, ImportError, ValueError) as error:  # interpreter not shipped in this TF build
        pytest.skip(f"TFLite interpreter unavailable: {error}")
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(source["shape"]) == [1, HEIGHT, WIDTH] and source["dtype"] == np.uint8
    assert list(target["shape"]) == [1, K, HEIGHT, WIDTH, 3] and target["dtype"] == np.uint8
    labels = _labels(rng, batch=1)
    interpreter.set_tensor(source["index"], labels)
    interpreter.invoke()
    result = interpreter.get_tensor(target["index"]).astype(int)
    expected = to_uint8(model(classes_to_onehot(labels, 19)).numpy()).astype(int)
    assert np.abs(result - expected).max() <= 2


def test_cli_missing_checkpoint_is_one_line_error(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("crn-export: error:") and "nope" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_cli_refuses_to_overwrite_without_flag(tiny, tmp_path, capsys):
    _, checkpoint, _, _ = tiny
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["--checkpoint", checkpoint, "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").exists()


def test_cli_usage_error_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code != 0
    assert "--checkpoint" in capsys.readouterr().err


def test_onnx_runs_in_onnxruntime_and_matches_keras(tiny, rng, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="the ONNX export needs the [onnx] extra: tf2onnx, onnxruntime")
    pytest.importorskip("tf2onnx", reason="the ONNX export needs the [onnx] extra: tf2onnx, onnxruntime")
    model, checkpoint, _, _ = tiny
    path = tmp_path / "crn.onnx"
    assert main(["--checkpoint", checkpoint, "--out", str(tmp_path / "saved"), "--onnx", str(path)]) == 0
    assert f"ONNX model written to {path}" in capsys.readouterr().out
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (source,), (target,) = session.get_inputs(), session.get_outputs()
    assert (source.name, source.type, source.shape) == ("labels", "tensor(uint8)", ["batch", HEIGHT, WIDTH])
    assert (target.name, target.type, target.shape) == ("images", "tensor(uint8)", ["batch", K, HEIGHT, WIDTH, 3])
    labels = _labels(rng, batch=3)
    images = session.run(["images"], {"labels": labels})[0]
    expected = to_uint8(model(classes_to_onehot(labels, 19)).numpy())
    assert images.dtype == np.uint8 and images.shape == (3, K, HEIGHT, WIDTH, 3)
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= 1
    assert 0 in images and 255 in images  # the scaled output conv reaches both clip limits
    info = json.loads(session.get_modelmeta().custom_metadata_map["crn_export"])
    assert (info["height"], info["width"], info["num_images"], info["class_names"][0]) == (HEIGHT, WIDTH, K, "road")

    def error_of(array):
        with pytest.raises(Exception) as error:
            session.run(None, {"labels": array})
        return str(error.value)

    assert "Got invalid dimensions for input: labels" in error_of(np.zeros((1, 16, WIDTH), np.uint8))
    assert "Unexpected input data type. Actual: (tensor(int32)) , expected: (tensor(uint8))" in error_of(
        np.zeros((1, HEIGHT, WIDTH), np.int32))
    assert "Invalid rank for input: labels Got: 2 Expected: 3" in error_of(np.zeros((HEIGHT, WIDTH), np.uint8))


def test_onnx_without_tf2onnx_says_what_to_install(tiny, tmp_path, monkeypatch):
    from crn_tf.export import ExportError, export_onnx

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # `import tf2onnx` raises ImportError
    with pytest.raises(ExportError, match=r"--onnx needs tf2onnx and onnxruntime: pip install 'crn_tf\[onnx\]'"):
        export_onnx(tiny[0], tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_banded_signatures_match_the_plain_model(tiny, rng, tmp_path):
    # --low-memory on: the SavedModel computes every large module in row bands (tiny bands here),
    # restorable like the plain one, and serves the same images.
    import tensorflow as tf

    from crn_tf.export import build_export_archive

    model = tiny[0]
    build_export_archive(model, banded=True, band_bytes=4096).write_out(str(tmp_path / "banded"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "banded"))
    labels = _labels(rng)
    layout = classes_to_onehot(labels, 19)
    served = loaded.signatures[LAYOUT_KEY](layout=tf.constant(layout))["images"].numpy()
    np.testing.assert_allclose(served, model(layout).numpy(), rtol=1e-5, atol=1e-3)
    library = loaded.signatures[LAYOUT_KEY].graph.as_graph_def().library
    ops = {node.op for function in library.function for node in function.node_def}
    assert "GatherV2" in ops  # the banded upsample's row blending: really the banded graph


def test_cli_low_memory_choices(tiny, tmp_path, capsys):
    _, checkpoint, _, _ = tiny
    assert main(["--checkpoint", checkpoint, "--out", str(tmp_path / "on"), "--low-memory"]) == 0
    assert "(banded low-memory pass; --low-memory on)" in capsys.readouterr().out
    with open(tmp_path / "on" / "assets.extra" / EXPORT_INFO) as f:
        assert json.load(f)["low_memory"] is True
    assert main(["--checkpoint", checkpoint, "--out", str(tmp_path / "auto")]) == 0  # a tiny model fits anywhere
    assert "(plain pass; auto: the plain pass needs about" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint", checkpoint, "--out", str(tmp_path / "bad"), "--low-memory", "sometimes"])
    assert exit_info.value.code == 2 and "choose one of auto, on, off" in capsys.readouterr().err
