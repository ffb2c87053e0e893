"""Precision names of the command lines and the Keras dtype policies they stand for.

Kept free of TensorFlow imports, so tools that start fast (the benchmark's parent process) can use it.
"""

PRECISION_POLICIES: dict[str, str | None] = {
    "off": None,
    "fp32": None,
    "bf16": "mixed_bfloat16",
    "fp16": "mixed_float16",
}
"""A --mixed-precision / --precision name -> the Keras dtype policy (None = float32)."""

INFERENCE_POLICIES: dict[str, str | None] = {
    "off": None,
    "fp32": None,
    "bf16": "bfloat16",
}
"""A precision name -> the Keras dtype policy a model is loaded with for inference (demo).

Inference never updates the weights, so under bf16 the convolution kernels are stored in
bfloat16, which is what the mixed policy casts them to at every call: the same outputs, bit
for bit, at half the weight memory and without the per-call casts. The layer norms' gamma and
beta and the output conv stay float32 under every policy (`crn_tf.nn.layers`, `crn_tf.nn.model`)."""
