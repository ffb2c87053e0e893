"""Synthesis with a trained CRN: the forward pass as inference runs it, whole or in row bands.

`synthesize(model, layout)` runs `forward` in a `tf.function` traced once per model, pass and
layout shape (`forward_function`: the one wrapper of the model call, which demo, evaluate, the
trainer's sample images and bench share). `forward` walks the refinement modules itself rather
than calling `model(layout)`, so that inference, not the layers, chooses the fastest form of each step:
for bfloat16 at batch 1 on a CPU, each layer norm's per-channel multiply-add and the LReLU run
as one fused oneDNN op (`affine_leaky_relu_1x1`); the layers keep the paper's maths as
training uses it. Same output to float rounding.

The plain pass materialises, in each of the last modules, the full-size upsampled features
and their concat with the layout: at 1024x2048 the last module's 148-channel input alone is
1.2 GB in float32, and the graph of the 1024p network peaks at about 4-5 GB of RSS in float32.
The low-memory (banded) pass holds each large module's activations as horizontal row bands
(`crn_tf.nn.banding`): conv1 upsamples only the feature rows a band needs (plus a one-row halo
for the 3x3 kernel; exactly the rows of the full bilinear upsample), concats them with the
band's layout rows and convolves; conv2 reads each band with one row of its neighbours; the
layer-norm statistics are summed over the bands in float32 and applied by the layer's own
`affine`; the 1x1 output conv runs per band. In the graph, control dependencies make the
bands run one after another, so that at most one band's temporaries exist at a time.
`low_memory="auto"` bands exactly when `crn_tf.nn.memory` estimates that the plain pass would not
fit the memory available.
"""
from __future__ import annotations

import logging
import weakref

import tensorflow as tf

from crn_tf.nn import memory
from crn_tf.nn.banding import (  # noqa: F401  (interpolation_rows, upsample_rows: part of this module's API)
    BandOrder,
    banded_conv,
    banded_conv1,
    banded_moments,
    interpolation_rows,
    join_bands,
    map_bands,
    rows_per_band,
    upsample_rows,
)
from crn_tf.nn.ops import area_downsample

logger = logging.getLogger(__name__)

DEFAULT_BAND_BYTES = 64 * 2**20
"""A module is computed in bands when its merged input (upsampled features + layout) would be
larger than this; each band's merged input then stays under it."""

GROUP_SIZE = 64
"""Channels per group of the fused affine + LReLU convolution."""

_functions: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_choices_logged: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def synthesize(
    model,
    layout,
    low_memory: bool | str = False,
    band_rows: int | None = None,
    band_bytes: int = DEFAULT_BAND_BYTES,
) -> tf.Tensor:
    """Images `(batch, k, height, width, 3)`, float32 in about 0..255, for a one-hot `layout`
    `(batch, height, width, num_classes + 1)`.

    Args:
        model: a `crn_tf.nn.model.CRN`.
        layout: float layout tensor or array.
        low_memory: bool or "on" / "off" / "auto". Run the banded low-memory pass instead of
            the plain graph; "auto" bands when `crn_tf.nn.memory.plain_pass_fits` says the plain
            pass would not fit. Same output to float rounding.
        band_rows: int. Rows per band in every module after the first (forces banding;
            for tests). Defaults to what keeps each band's input under `band_bytes`.
        band_bytes: int. Size above which a module's merged input is computed in bands.
    """
    layout = tf.convert_to_tensor(layout)
    if not layout.dtype.is_floating:
        layout = tf.cast(layout, tf.float32)
    model._check_layout(layout)
    if band_rows is not None and band_rows < 1:
        raise ValueError(f"band_rows must be >= 1, got {band_rows}")
    banded, reason = memory.choose_low_memory(low_memory, model, int(layout.shape[0] or 1))
    logged = _choices_logged.setdefault(model, set())
    if (banded, reason) not in logged:
        logged.add((banded, reason))
        # DEBUG, a detail: the CLIs show INFO and up, and demo and export print this choice themselves.
        logger.debug("%s pass (%s)", "banded low-memory" if banded else "plain", reason)
    return forward_function(model, banded, band_rows, band_bytes)(layout)


def forward_function(
    model, banded: bool, band_rows: int | None = None, band_bytes: int = DEFAULT_BAND_BYTES, jit_compile: bool = False
):
    """The cached `tf.function` of `forward` for `model`: the one traced model call of demo,
    evaluate, the trainer's sample images and bench (`jit_compile`: XLA, bench's `--xla`).

    Held weakly (the cache does not keep the model alive). The plain one is traced once per
    layout shape, then generalised (`reduce_retracing`); the banded one is traced per batch
    size, since its bands are sized for it. `experimental_get_tracing_count()` counts traces.
    """
    functions = _functions.setdefault(model, {})
    key = ((banded, band_rows, band_bytes) if banded else (False,)) + (bool(jit_compile),)
    if key not in functions:
        model_ref = weakref.ref(model)
        functions[key] = tf.function(
            lambda x: forward(model_ref(), x, banded=banded, band_rows=band_rows, band_bytes=band_bytes),
            reduce_retracing=not banded,
            jit_compile=True if jit_compile else None,  # None: TensorFlow's default, as without XLA
            autograph=False,  # plain Python loops over modules and bands: nothing for AutoGraph to convert
        )
    return functions[key]


def forward(
    model, layout: tf.Tensor, banded: bool = False, band_rows: int | None = None, band_bytes: int = DEFAULT_BAND_BYTES
) -> tf.Tensor:
    """`model(layout, training=False)`, module by module: images `(B, k, H, W, 3)` float32.

    With `banded`, every module after the first whose merged input is larger than
    `band_bytes` (every one, with `band_rows`) is computed in row bands. Runs eagerly or,
    for speed and the band order, inside a `tf.function` (`forward_function`).
    """
    # As CRN.call: the layout in the compute dtype, area-downsampled to each module's size.
    layouts = [area_downsample(tf.cast(layout, model.compute_dtype), size) for size in model.module_sizes]
    features = None  # a tensor, or a list of row bands after a banded module
    for index, module in enumerate(model.refinement_modules):
        scaled, layouts[index] = layouts[index], None  # (B, h_i, w_i, C)
        if features is None:
            features = refine(module, scaled)
            continue
        rows = (band_rows or rows_per_band(_first(features), scaled, band_bytes)) if banded else None
        if rows is None or rows >= int(scaled.shape[1]):
            features = refine(module, [join_bands(features) if isinstance(features, list) else features, scaled])
            continue
        # The full-size module reads the caller's layout, cast to the compute dtype band by band.
        band_layout = layout if tuple(scaled.shape[1:3]) == tuple(layout.shape[1:3]) else scaled
        scaled = None
        features = refine_in_bands(module, features if isinstance(features, list) else [features], band_layout, rows)
    if isinstance(features, list):
        # The 1x1 output conv is per pixel: band by band, then the model's own arrangement.
        order, outputs = BandOrder(), []
        for band in features:
            outputs.append(order.done(model.output_conv(tf.cast(order.gate(band), tf.float32))))
        features.clear()
        return model.arrange_images(join_bands(outputs))
    return model.to_images(features)


def refine(module, inputs) -> tf.Tensor:
    """A refinement module on whole tensors: as `module(inputs)`, with inference's norm + LReLU."""
    x = module.merge_inputs(inputs)  # (B, H, W, d_prev + C)
    x = norm_leaky_relu(module.norm1, module.conv1(x), module.leak)  # (B, H, W, d)
    return norm_leaky_relu(module.norm2, module.conv2(x), module.leak)


def _first(features) -> tf.Tensor:
    return features[0] if isinstance(features, list) else features


def refine_in_bands(module, features: list, layout: tf.Tensor, band_rows: int) -> list:
    """A refinement module on [upsample(features), layout] as row bands of `band_rows`, from the
    previous module's features as row bands (consumed); the layout at the module's size, in
    any float dtype (cast band by band)."""
    order = BandOrder()
    bands = banded_conv1(module, _convolution(module.conv1), features, layout, band_rows, order)  # [(B, rows, W, d)]
    norm_leaky_relu_bands(module.norm1, bands, module.leak, order)
    bands = banded_conv(_convolution(module.conv2), bands, order)
    norm_leaky_relu_bands(module.norm2, bands, module.leak, order)
    return bands


def _convolution(conv):
    """The Keras 3x3 SAME, bias-free `conv` as a function of its input, its kernel read (and cast
    to the compute dtype) once: the same op as `conv(x)`, without the layer call per band."""
    kernel = tf.cast(conv.kernel, conv.compute_dtype)  # (3, 3, c_in, c_out)
    return lambda x: tf.nn.conv2d(tf.cast(x, conv.compute_dtype), kernel, strides=1, padding="SAME")


def norm_leaky_relu(norm, x: tf.Tensor, leak: float) -> tf.Tensor:
    """LReLU(norm(x)) of a whole tensor."""
    scale, shift = norm.affine(*norm.moments(x))
    return affine_leaky_relu(x, scale, shift, leak)


def norm_leaky_relu_bands(norm, bands: list, leak: float, order: BandOrder) -> None:
    """LReLU(norm(x)) of the tensor held as row `bands`, in place, band by band."""
    scale, shift = norm.affine(*banded_moments(bands, order))
    map_bands(affine_leaky_relu_function(bands[0], scale, shift, leak), bands)


def affine_leaky_relu(x: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, leak: float) -> tf.Tensor:
    """max(leak * y, y) for y = x * scale + shift (float32 per-channel `scale`, `shift` as
    `LayerNorm.affine` gives them), as `LayerNorm.normalize` and the module's LReLU compute it;
    as one fused op where `fused_affine_leaky_relu_applies`."""
    return affine_leaky_relu_function(x, scale, shift, leak)(x)


def affine_leaky_relu_function(like: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, leak: float):
    """`affine_leaky_relu` with these `scale` and `shift` as a function of tensors like `like`
    (same dtype, batch and channels), its constants made once (for all the bands of a tensor)."""
    if fused_affine_leaky_relu_applies(like):
        return affine_leaky_relu_1x1(like, scale, shift, leak)
    scale, shift = tf.cast(scale, like.dtype), tf.cast(shift, like.dtype)
    return lambda x: tf.nn.leaky_relu(x * scale + shift, alpha=leak)


def fused_affine_leaky_relu_applies(x: tf.Tensor) -> bool:
    """Whether `affine_leaky_relu_1x1` is the faster way here: bfloat16, batch 1, inside a
    tf.function (where TensorFlow's remapper fuses it), on a machine without GPUs."""
    return (
        x.dtype == tf.bfloat16
        and x.shape.rank == 4
        and x.shape[0] == 1
        and not tf.executing_eagerly()
        and not tf.config.list_logical_devices("GPU")
    )


def affine_leaky_relu_1x1(like: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, leak: float):
    """x -> max(leak * y, y) for y = x * scale + shift (per channel, batch 1), as ONE oneDNN
    primitive, for tensors x like `like`.

    On CPUs TensorFlow's bfloat16 elementwise kernels take three slow passes for the multiply,
    the add and the LReLU; written as a 1x1 convolution with the diagonal kernel diag(scale)
    plus a bias, the remapper fuses all three into one AMX/AVX-512 convolution (the extra
    multiply-adds per pixel are by zero and cost less than the passes they replace). The
    result is x * scale + shift accumulated in float32 and rounded once: the same maths.
    """
    channels, dtype = int(like.shape[-1]), like.dtype
    # A grouped conv of 64-channel groups (block-diagonal; each block diagonal) does 64 instead
    # of C multiply-adds per output: output channel o reads input o % n of its group.
    n = GROUP_SIZE if channels % GROUP_SIZE == 0 else channels
    kernel = tf.tile(tf.eye(n, dtype=dtype), (1, channels // n)) * tf.cast(tf.reshape(scale, (1, channels)), dtype)
    kernel = kernel[tf.newaxis, tf.newaxis]  # (1, 1, n, C)
    bias = tf.cast(tf.reshape(shift, [-1]), dtype)
    return lambda x: tf.nn.leaky_relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "VALID"), bias), alpha=leak)
