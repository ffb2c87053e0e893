"""Old home of `crn_tf.weights.tf1_import`; `python -m crn_tf.tf1_import` and `import crn_tf.tf1_import` still work."""
import sys

from crn_tf.weights import tf1_import as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
