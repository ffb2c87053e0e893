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
