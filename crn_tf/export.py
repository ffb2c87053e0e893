"""Export a CRN checkpoint as a TensorFlow SavedModel (TF Serving, `tf.saved_model.load`), TFLite and ONNX.

The SavedModel needs nothing from crn_tf to run. Its signatures:

* `serving_default`: `labels` uint8 `[batch, H, W]` class indices (Cityscapes trainIds,
  255 = void) at the model's size -> `images` uint8 `[batch, k, H, W, 3]`, rounded as the
  original saves its pictures (clip to 0..255, round half up).
* `synthesize_layout`: `layout` float32 one-hot `[batch, H, W, C + 1]` (void last) ->
  `images` float32 `[batch, k, H, W, 3]`, about 0..255, unclipped (the Keras model's output).

Inputs of the wrong size, or label values that are neither a class nor 255, fail with an
`InvalidArgumentError` whose message names the expected shape and values. Both signatures run
`crn_tf.nn.inference.forward`: the plain pass, or with `--low-memory` (auto by default: when the
plain pass would not fit this machine's memory) the banded one, whose bands are sized for
batch 1. The TFLite model is always the plain pass (the interpreter plans its own memory).

`--onnx FILE` also writes `serving_default` as an ONNX model (through tf2onnx, the `[onnx]`
extra) for onnxruntime, TensorRT and other ONNX runtimes: `labels` uint8 `[batch, H, W]` ->
`images` uint8 `[batch, k, H, W, 3]`, H and W fixed in the model so that the runtime checks them.

    python -m crn_tf.export --checkpoint checkpoints/synthetic_city_64x128 --out exported/crn [--onnx crn.onnx]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from typing import Sequence

from crn_tf.core.files import write_atomic
from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import parse_cli
from crn_tf.labels import VOID
from crn_tf.nn.memory import add_low_memory_flag

SERVING_KEY = "serving_default"
LAYOUT_KEY = "synthesize_layout"
EXPORT_INFO = "crn_export.json"
"""A JSON note in the SavedModel's `assets.extra/` folder: sizes, classes, signatures (ignored by TF Serving)."""
ONNX_OPSET = 17
"""ONNX operator set of `--onnx` (onnxruntime >= 1.12, TensorRT >= 8.6 run it)."""
ONNX_METADATA_KEY = "crn_export"
"""The ONNX model's metadata entry holding the same JSON note (onnxruntime: `get_modelmeta().custom_metadata_map`)."""



class ExportError(RuntimeError):
    """The export could not be written (e.g. the TFLite converter refused an op); the message says why."""


def _tf():
    import tensorflow as tf

    return tf


def images_to_uint8(images):
    """Float images about 0..255 -> uint8 in TF: clip, then round half up (`crn_tf.core.images.to_uint8`)."""
    tf = _tf()
    return tf.cast(tf.floor(tf.clip_by_value(images, 0.0, 255.0) + 0.5), tf.uint8)


def _describe(model) -> dict:
    height, width = model.output_size
    label_set = getattr(model, "label_set", None)
    return {
        "height": int(height),
        "width": int(width),
        "num_classes": int(model.num_classes),
        "num_images": int(model.num_images),
        "class_names": list(label_set.names) if label_set is not None else None,
        "label_set": label_set.name if label_set is not None else None,
    }


def _checked_shape(tensor, expected: Sequence[int], message: str, name: str):
    """`tensor` [batch, *expected] with its static shape set; an assert naming `message` otherwise.

    The assert runs before the shape is fixed, so a wrong input reports `message` and the
    shape it got rather than TensorFlow's generic shape error.
    """
    tf = _tf()
    shape = tf.shape(tensor)  # (rank,)
    rank = len(expected) + 1
    padded = tf.concat([shape, tf.zeros([rank], tf.int32)], axis=0)[1:rank]
    right = tf.logical_and(tf.equal(tf.size(shape), rank), tf.reduce_all(tf.equal(padded, list(expected))))
    check = tf.debugging.Assert(right, [message, shape], summarize=rank + 2, name=name)
    with tf.control_dependencies([check]):
        return tf.ensure_shape(tf.identity(tensor), [None, *expected])


def serving_functions(model, banded: bool = False, band_bytes: int | None = None) -> dict:
    """The two signatures as {name: (function, input_signature)}, each function closing over
    `model`; `banded` selects the low-memory pass (`crn_tf.nn.inference.forward`, bands of
    `band_bytes`, by default its own)."""
    tf = _tf()
    from crn_tf.data.pipeline import classes_to_layout
    from crn_tf.nn.inference import DEFAULT_BAND_BYTES, forward

    band_bytes = band_bytes or DEFAULT_BAND_BYTES

    info = _describe(model)
    height, width, num_classes = info["height"], info["width"], info["num_classes"]
    channels = num_classes + 1
    size_message = (
        f"labels must be uint8 class indices of shape [batch, {height}, {width}] (the model's size); "
        f"resize label maps to {height}x{width} (nearest neighbour) first. Got shape"
    )
    value_message = (
        f"labels must hold class indices 0..{num_classes - 1} or {VOID} (void); found another value "
        f"(label ids instead of trainIds?). Largest such value:"
    )
    layout_message = (
        f"layout must be float32 one-hot of shape [batch, {height}, {width}, {channels}] "
        f"({num_classes} classes + void last). Got shape"
    )

    def serve_labels(labels):
        labels = _checked_shape(labels, (height, width), size_message, "check_labels_shape")
        valid = tf.logical_or(labels < num_classes, tf.equal(labels, VOID))
        worst = tf.reduce_max(tf.where(valid, tf.zeros_like(labels), labels))
        check = tf.debugging.Assert(tf.reduce_all(valid), [value_message, worst], name="check_labels_values")
        with tf.control_dependencies([check]):
            layout = classes_to_layout(labels, num_classes)  # (B, H, W, C + 1)
        images = forward(model, layout, banded=banded, band_bytes=band_bytes)  # (B, k, H, W, 3)
        return {"images": images_to_uint8(images)}

    def serve_layout(layout):
        layout = _checked_shape(layout, (height, width, channels), layout_message, "check_layout_shape")
        return {"images": tf.cast(forward(model, layout, banded=banded, band_bytes=band_bytes), tf.float32)}

    return {
        SERVING_KEY: (serve_labels, [tf.TensorSpec([None, None, None], tf.uint8, name="labels")]),
        LAYOUT_KEY: (serve_layout, [tf.TensorSpec([None, None, None, None], tf.float32, name="layout")]),
    }


def build_export_archive(model, banded: bool = False, band_bytes: int | None = None):
    """A `keras.export.ExportArchive` tracking `model`, with the two signatures as endpoints.

    Keras' archive (not a bare `tf.Module`) is what makes the variables restorable by the
    TF1-style loader that TensorFlow Serving and `saved_model_cli run` use.
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (function, signature) in serving_functions(model, banded, band_bytes).items():
        archive.add_endpoint(name, function, input_signature=signature)
    return archive


@dataclasses.dataclass
class ExportResult:
    """Where the export went."""

    saved_model: str
    tflite: str | None = None
    tflite_error: str | None = None
    onnx: str | None = None
    onnx_error: str | None = None
    low_memory: bool = False
    low_memory_reason: str = ""


def export_saved_model(model, directory: str | os.PathLike, overwrite: bool = False, banded: bool = False) -> str:
    """Writes `model` as a SavedModel with the `serving_default` and `synthesize_layout` signatures
    (`banded`: computing the large modules in row bands, `crn_tf.nn.inference`)."""
    directory = os.fspath(directory)
    if os.path.exists(directory) and os.listdir(directory):
        if not overwrite:
            raise ExportError(f"{directory}: exists and is not empty (pass --overwrite to replace it)")
        shutil.rmtree(directory)
    build_export_archive(model, banded).write_out(directory, verbose=False)
    info = _describe(model)
    info["low_memory"] = bool(banded)
    info["signatures"] = {
        SERVING_KEY: {"inputs": {"labels": f"uint8 [batch, {info['height']}, {info['width']}]"},
                      "outputs": {"images": f"uint8 [batch, {info['num_images']}, {info['height']}, {info['width']}, 3]"}},
        LAYOUT_KEY: {"inputs": {"layout": f"float32 [batch, {info['height']}, {info['width']}, {info['num_classes'] + 1}]"},
                     "outputs": {"images": f"float32 [batch, {info['num_images']}, {info['height']}, {info['width']}, 3]"}},
    }
    extra = os.path.join(directory, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, EXPORT_INFO), "w") as f:
        json.dump(info, f, indent=2)
    return directory


def export_tflite(model, path: str | os.PathLike) -> str:
    """Writes a TFLite flatbuffer: uint8 labels [1, H, W] -> uint8 images [1, k, H, W, 3].

    Batch 1 and no input checks (the TFLite interpreter checks shapes itself). Only builtin
    TFLite ops are allowed, so the file runs on the plain interpreter; ExportError otherwise.
    """
    tf = _tf()
    from crn_tf.data.pipeline import classes_to_layout

    info = _describe(model)
    height, width, num_classes = info["height"], info["width"], info["num_classes"]

    from crn_tf.nn.inference import forward

    @tf.function(input_signature=[tf.TensorSpec([1, height, width], tf.uint8, name="labels")])
    def synthesize(labels):
        images = forward(model, classes_to_layout(labels, num_classes))
        return {"images": images_to_uint8(images)}

    # Freeze the weights into constants first: converting the function (or a SavedModel of
    # it) as is keeps Keras 3 weights as resource variables that the TFLite interpreter never
    # initialises, so every output would be computed from zeros.
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(synthesize.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # the converter raises several private error types
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"TFLite conversion failed (an op has no TFLite builtin): {first}") from error
    return write_atomic(path, flatbuffer)


def export_onnx(model, path: str | os.PathLike, opset: int = ONNX_OPSET) -> str:
    """Writes `serving_default` as ONNX: uint8 labels [batch, H, W] -> uint8 images [batch, k, H, W, 3].

    Converted with tf2onnx from the same function as the SavedModel's signature, with H and W
    fixed so that the ONNX runtime itself refuses another size. ONNX has no assert: a label
    value that is neither a class nor 255 is taken as void rather than refused.
    """
    try:
        import tf2onnx  # noqa: F401  (the [onnx] extra)
    except ImportError as error:
        raise ExportError(f"--onnx needs tf2onnx and onnxruntime: pip install 'crn_tf[onnx]' ({error})") from error
    info = _describe(model)
    try:
        proto = _onnx_model(model, info, opset)
    except Exception as error:  # tf2onnx raises several types for an op it cannot convert
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"ONNX conversion failed: {first}") from error
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"  # tf2onnx names it unk__N
    proto.metadata_props.add(key=ONNX_METADATA_KEY, value=json.dumps(info))
    return write_atomic(path, proto.SerializeToString())


def _onnx_model(model, info: dict, opset: int):
    """The ONNX ModelProto of `serving_default`, frozen by TensorFlow, converted and optimised by tf2onnx.

    Not `tf2onnx.convert.from_function`: its grappler pass and its optimiser, which copies the
    whole graph before each of a dozen passes (to undo one that fails), took more than 19 GB
    for the 256p generator (390 MB of weights) and stopped with the machine out of memory.
    TensorFlow's own freezing (as for TFLite) and tf2onnx's passes run once each, with the
    safety copy kept only for the transpose pass, peak at 8.5 GB for 256p (docs/serving.md).
    """
    import gc
    from collections import OrderedDict

    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )
    from tf2onnx import optimizer, tfonnx

    tf = _tf()
    function, _ = serving_functions(model)[SERVING_KEY]
    signature = tf.TensorSpec([None, info["height"], info["width"]], tf.uint8, name="labels")
    frozen = convert_variables_to_constants_v2(tf.function(function).get_concrete_function(signature))
    inputs, outputs = [t.name for t in frozen.inputs], [t.name for t in frozen.outputs]
    graph_def = frozen.graph.as_graph_def()
    del frozen
    gc.collect()  # each copy of the weights goes as soon as the next one exists (the graphs hold cycles)
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        del graph_def
        onnx_graph = tfonnx.process_tf_graph(graph, opset=opset, input_names=inputs, output_names=outputs,
                                             tensors_to_rename={inputs[0]: "labels", outputs[0]: "images"})
    del graph
    gc.collect()
    transpose = OrderedDict(optimize_transpose=optimizer.TransposeOptimizer)  # NHWC <-> NCHW pairs around each conv
    onnx_graph = optimizer.optimize_graph(onnx_graph, catch_errors=True, optimizers=transpose)
    gc.collect()
    rest = OrderedDict(fold_constants=optimizer.ConstFoldOptimizer, remove_identity=optimizer.IdentityOptimizer,
                       remove_back_to_back=optimizer.BackToBackOptimizer,
                       merge_duplication=optimizer.MergeDuplicatedNodesOptimizer,
                       reshape_optimizer=optimizer.ReshapeOptimizer, remove_redundant_upsample=optimizer.UpsampleOptimizer)
    onnx_graph = optimizer.optimize_graph(onnx_graph, catch_errors=False, optimizers=rest)
    gc.collect()
    return onnx_graph.make_model("crn_tf serving_default")


def export(model, directory: str | os.PathLike, tflite: bool = False, overwrite: bool = False,
           onnx: str | os.PathLike | None = None, low_memory: bool | str = "auto") -> ExportResult:
    """SavedModel into `directory`; with `tflite` also `<directory>/model.tflite`, with `onnx` an ONNX file there.

    `low_memory` (auto / on / off) chooses the signatures' pass, auto by this machine's memory
    for batch 1 (`crn_tf.nn.memory.choose_low_memory`). A TFLite or ONNX conversion failure does not
    undo the SavedModel: it is reported in `tflite_error` / `onnx_error`.
    """
    from crn_tf.nn.memory import choose_low_memory

    banded, reason = choose_low_memory(low_memory, model, 1)
    saved = export_saved_model(model, directory, overwrite=overwrite, banded=banded)
    result = ExportResult(saved_model=saved, low_memory=banded, low_memory_reason=reason)
    if tflite:
        try:
            result.tflite = export_tflite(model, os.path.join(saved, "model.tflite"))
        except ExportError as error:
            result.tflite_error = str(error)
    if onnx is not None:
        try:
            result.onnx = export_onnx(model, onnx)
        except ExportError as error:
            result.onnx_error = str(error)
    return result


# === Command line ===
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crn-export",
        description="Export a CRN checkpoint as a TensorFlow SavedModel (and optionally TFLite and ONNX).",
    )
    parser.add_argument("--checkpoint", required=True,
                        help="checkpoint directory (config.json + model.weights.h5), a training run directory, "
                             "or a name of the authors' weights (authors-256p, ...; see crn_tf.weights.download)")
    parser.add_argument("--out", required=True, help="SavedModel directory to write")
    parser.add_argument("--tflite", action="store_true", help="also write <out>/model.tflite (batch 1, uint8 in/out)")
    parser.add_argument("--onnx", metavar="FILE", default=None,
                        help="also write serving_default as an ONNX model to FILE (needs pip install 'crn_tf[onnx]')")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_low_memory_flag(parser, "signatures that compute the large modules in row bands (same images, far less "
                                "memory when serving 1024p); auto bands when the plain pass would not fit this "
                                "machine's memory")
    return parser


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)
    from crn_tf.weights.checkpoint import CheckpointError, load_model
    from crn_tf.weights.download import resolve_checkpoint

    try:
        model = load_model(resolve_checkpoint(args.checkpoint))
        height, width = model.output_size
        print(f"exporting {args.checkpoint} ({height}x{width}, k = {model.num_images}) ...", file=sys.stderr)
        result = export(model, args.out, tflite=args.tflite, overwrite=args.overwrite, onnx=args.onnx,
                        low_memory=args.low_memory)
    except (ExportError, CheckpointError) as error:
        return cli_error("crn-export", error, 1)
    height, width = model.output_size
    print(f"SavedModel written to {result.saved_model} ({'banded low-memory' if result.low_memory else 'plain'} "
          f"pass; {result.low_memory_reason})")
    print(f"  serving_default: labels uint8 [batch, {height}, {width}] -> images uint8 "
          f"[batch, {model.num_images}, {height}, {width}, 3]")
    print(f"  {LAYOUT_KEY}: layout float32 [batch, {height}, {width}, {model.num_classes + 1}] -> images float32")
    if result.tflite:
        print(f"TFLite model written to {result.tflite}")
    if result.onnx:
        print(f"ONNX model written to {result.onnx}: labels uint8 [batch, {height}, {width}] -> images uint8 "
              f"[batch, {model.num_images}, {height}, {width}, 3]")
    failed = False
    if result.tflite_error:
        print(f"crn-export: error: no TFLite model written: {result.tflite_error}", file=sys.stderr)
        failed = True
    if result.onnx_error:
        print(f"crn-export: error: no ONNX model written: {result.onnx_error}", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
