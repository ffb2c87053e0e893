"""crn_tf: Cascaded Refinement Networks (Chen & Koltun, ICCV 2017) in TensorFlow 2 / Keras 3.

`CRN.from_preset("256p")` builds the paper's generator; `load_model(dir)` / `save_model(model, dir)`
read and write checkpoint directories. TensorFlow is imported only when a model is asked for,
so label and data tools start fast.
"""
import importlib
import importlib.abc
import importlib.machinery
import sys

from crn_tf.labels import CITYSCAPES, LabelClass, LabelSet

__version__ = "0.1.0"

_LAZY = {
    "CRN": "crn_tf.nn.model",
    "RefinementModule": "crn_tf.nn.model",
    "PRESETS": "crn_tf.nn.model",
    "load_model": "crn_tf.weights.checkpoint",
    "save_model": "crn_tf.weights.checkpoint",
}

MOVED_MODULES = {
    "banding": "crn_tf.nn.banding",
    "bench_report": "crn_tf.bench.report",
    "checkpoint": "crn_tf.weights.checkpoint",
    "conv": "crn_tf.nn.conv",
    "fetch": "crn_tf.weights.fetch",
    "files": "crn_tf.core.files",
    "flops": "crn_tf.bench.flops",
    "images": "crn_tf.core.images",
    "inference": "crn_tf.nn.inference",
    "layers": "crn_tf.nn.layers",
    "locks": "crn_tf.core.locks",
    "losses": "crn_tf.loss.perceptual",
    "machine": "crn_tf.core.machine",
    "memory": "crn_tf.nn.memory",
    "model": "crn_tf.nn.model",
    "ops": "crn_tf.nn.ops",
    "peaks": "crn_tf.bench.peaks",
    "precision": "crn_tf.core.precision",
    "profiling": "crn_tf.bench.profiling",
    "progress": "crn_tf.core.progress",
    "quiet": "crn_tf.core.quiet",
    "recompute": "crn_tf.loss.recompute",
    "report_page": "crn_tf.core.page",
    "sizes": "crn_tf.core.sizes",
    "timing": "crn_tf.bench.timing",
    "torch_peer": "crn_tf.bench.torch_peer",
    "vgg": "crn_tf.loss.vgg",
}
"""Old module names (before the packages) -> their homes: `import crn_tf.model` still works and
gives the very module `crn_tf.nn.model` (one object, so patches and isinstance agree)."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `crn_tf.<old name>` to the moved module, imported under its new name."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != "crn_tf" or name not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(MOVED_MODULES[spec.name.partition(".")[2]])

    def exec_module(self, module):
        """Nothing to run: the new module is already imported."""


if not any(type(finder).__name__ == "_MovedModuleFinder" for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crn_tf' has no attribute {name!r}")


__all__ = ["CITYSCAPES", "LabelClass", "LabelSet", *_LAZY]
