"""Importing the authors' TF1 checkpoints: names, shapes, and the forward pass on imported weights."""
import os
import re

import numpy as np
import pytest
import reference
import tensorflow as tf

from crn_tf.nn.model import CRN
from crn_tf.weights.checkpoint import load_model
from crn_tf.weights.tf1_import import (
    PUBLISHED_CHECKPOINTS,
    TF1ImportError,
    import_tf1,
    infer_model_args,
    main,
    published_matches,
    tf1_variable_names,
    verify_tf1_files,
)

VARIABLES_FILE = os.path.join(os.path.dirname(__file__), "data", "tf1_checkpoint_variables.txt")


def published_variables():
    """result_256p/512p/1024p -> {name: shape}, from the list read off the published .index files."""
    found, current = {}, None
    for line in open(VARIABLES_FILE):
        header = re.match(r"## result_(\w+) (\d+) variables (\d+) parameters", line)
        if header:
            current = header.group(1)
            found[current] = {}
        elif current and line.strip() and not line.startswith("#"):
            name, shape = line.split(" ", 1)
            found[current][name] = tuple(int(v) for v in shape.strip(" []\n").split(","))
    return found


def write_tf1_checkpoint(prefix, variables):
    """A V2 checkpoint with exactly these names, as TF1's Saver writes them (plus an Adam slot)."""
    names = list(variables) + ["g_4_conv1/weights/Adam", "beta1_power"]
    tensors = [tf.constant(v) for v in variables.values()]
    tensors += [tf.zeros_like(tensors[0]), tf.constant(0.9)]
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)


def tiny_tf1_variables(rng, heights=(4, 8, 16), widths=(6, 5, 4), k=3):
    variables, previous = {}, 0
    for height, width in zip(heights, widths):
        for conv, cin in (("conv1", previous + 20), ("conv2", width)):
            variables[f"g_{height}_{conv}/weights"] = rng.normal(0, 0.3, (3, 3, cin, width)).astype(np.float32)
            variables[f"g_{height}_{conv}/LayerNorm/gamma"] = rng.uniform(0.5, 1.5, width).astype(np.float32)
            variables[f"g_{height}_{conv}/LayerNorm/beta"] = rng.normal(0, 0.2, width).astype(np.float32)
        previous = width
    variables[f"g_{heights[-1]}_conv100/weights"] = rng.normal(0, 0.3, (1, 1, previous, 3 * k)).astype(np.float32)
    variables[f"g_{heights[-1]}_conv100/biases"] = rng.normal(0, 0.1, 3 * k).astype(np.float32)
    return variables


@pytest.mark.parametrize("preset", ["256p", "512p", "1024p"])
def test_model_variables_match_the_published_checkpoints(preset):
    published = published_variables()[preset]
    model = CRN.from_preset(preset)
    model.build()
    assert tf1_variable_names(model) == published


def test_import_and_forward_against_numpy(tmp_path, rng):
    variables = tiny_tf1_variables(rng)
    write_tf1_checkpoint(tmp_path / "model.ckpt", variables)
    model = import_tf1(str(tmp_path / "model.ckpt"))
    assert (model.output_size, model.num_images, model.widths) == ((16, 32), 3, (6, 5, 4))
    layout = np.eye(20, dtype=np.float32)[rng.integers(0, 20, (1, 16, 32))]
    modules = [
        {
            "conv1": variables[f"g_{h}_conv1/weights"].astype(np.float64),
            "gamma1": variables[f"g_{h}_conv1/LayerNorm/gamma"],
            "beta1": variables[f"g_{h}_conv1/LayerNorm/beta"],
            "conv2": variables[f"g_{h}_conv2/weights"].astype(np.float64),
            "gamma2": variables[f"g_{h}_conv2/LayerNorm/gamma"],
            "beta2": variables[f"g_{h}_conv2/LayerNorm/beta"],
        }
        for h in (4, 8, 16)
    ]
    expected = reference.crn_forward(
        layout[0].astype(np.float64), modules, variables["g_16_conv100/weights"], variables["g_16_conv100/biases"], 3
    )
    assert np.abs(model(layout).numpy()[0] - expected).max() < 1e-3


def test_cli_writes_a_checkpoint_directory(tmp_path, rng, capsys):
    write_tf1_checkpoint(tmp_path / "model.ckpt", tiny_tf1_variables(rng, k=1))
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')
    assert main([str(tmp_path), str(tmp_path / "out")]) == 0  # a directory with a 'checkpoint' file works too
    assert "3 modules, 16x32, k=1" in capsys.readouterr().out
    loaded = load_model(tmp_path / "out")
    assert loaded.checkpoint_info["source"] == "tf1_import"
    assert loaded.checkpoint_info["published_generator"] == []  # not shaped as any of the four published ones
    np.testing.assert_array_equal(loaded.output_conv.bias.numpy(), import_tf1(str(tmp_path / "model.ckpt")).output_conv.bias.numpy())


def test_missing_and_misshapen_variables_are_listed(tmp_path, rng):
    variables = tiny_tf1_variables(rng)
    del variables["g_8_conv2/LayerNorm/beta"]
    variables["g_16_conv2/weights"] = variables["g_16_conv2/weights"][:, :, :3]
    write_tf1_checkpoint(tmp_path / "model.ckpt", variables)
    with pytest.raises(TF1ImportError) as error:
        import_tf1(str(tmp_path / "model.ckpt"))
    message = str(error.value)
    assert "missing: g_8_conv2/LayerNorm/beta" in message
    assert "misshapen: g_16_conv2/weights [3, 3, 3, 4] (model expects [3, 3, 4, 4])" in message


def test_not_a_checkpoint(tmp_path, capsys):
    with pytest.raises(TF1ImportError, match="no TensorFlow checkpoint here"):
        import_tf1(str(tmp_path / "nothing.ckpt"))
    assert main([str(tmp_path / "nothing.ckpt"), str(tmp_path / "out")]) == 2
    assert "error:" in capsys.readouterr().err


def gta_variables():
    """result_GTA's generator listing. GTA_Diversity_256p.py builds the 256p generator (the same
    recursive_generator, widths and 27-channel output), so its names and shapes are result_256p's;
    the listing file holds a result_GTA section only if one was read off its .index file."""
    published = published_variables()
    return published.get("GTA", published["256p"])


def test_the_gta_model_is_recognised_as_a_published_generator():
    def shapes_only(listing):  # zero-memory arrays: only names and shapes matter here
        return {name: np.broadcast_to(np.float32(0), shape) for name, shape in listing.items()}

    gta = infer_model_args(shapes_only(gta_variables()), source="result_GTA")
    assert gta == {"output_size": (256, 512), "num_classes": 19, "num_images": 9,
                   "widths": [1024] * 5 + [512] * 2, "num_modules": 7}
    assert published_matches(gta) == ["result_256p", "result_GTA"]
    model = CRN.from_preset(PUBLISHED_CHECKPOINTS["result_GTA"][0])
    model.build()
    assert tf1_variable_names(model) == gta_variables()  # what import_tf1 checks name for name, shape for shape
    assert published_matches(infer_model_args(shapes_only(published_variables()["512p"]))) == ["result_512p"]
    assert published_matches(infer_model_args(shapes_only(published_variables()["1024p"]))) == ["result_1024p"]
    assert published_matches(infer_model_args(tiny_tf1_variables(np.random.default_rng(0)))) == []


def test_verify_reads_every_tensor_and_names_a_damaged_one(tmp_path, rng):
    variables = tiny_tf1_variables(rng)
    write_tf1_checkpoint(tmp_path / "model.ckpt", variables)
    assert verify_tf1_files(str(tmp_path / "model.ckpt")) == len(variables) + 2  # + the Adam slot and beta1_power
    data = tmp_path / "model.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:-8])  # beta1_power is cut: import_tf1 never reads it, the check does
    import_tf1(str(tmp_path / "model.ckpt"))
    with pytest.raises(TF1ImportError, match=r"variable beta1_power is damaged \(Read less bytes than requested\)"):
        verify_tf1_files(str(tmp_path / "model.ckpt"))
