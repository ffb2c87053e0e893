"""crn_tf: Cascaded Refinement Networks (Chen & Koltun, ICCV 2017) in TensorFlow 2 / Keras 3.

`CRN.from_preset("256p")` builds the paper's generator; `load_model(dir)` / `save_model(model, dir)`
read and write checkpoint directories. TensorFlow is imported only when a model is asked for,
so label and data tools start fast.
"""
from crn_tf.labels import CITYSCAPES, LabelClass, LabelSet

__version__ = "0.1.0"

_LAZY = {
    "CRN": "crn_tf.model",
    "RefinementModule": "crn_tf.model",
    "PRESETS": "crn_tf.model",
    "load_model": "crn_tf.checkpoint",
    "save_model": "crn_tf.checkpoint",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crn_tf' has no attribute {name!r}")


__all__ = ["CITYSCAPES", "LabelClass", "LabelSet", *_LAZY]
