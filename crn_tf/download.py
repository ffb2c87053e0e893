"""Old home of `crn_tf.weights.download`; `python -m crn_tf.download` and `import crn_tf.download` still work."""
import sys

from crn_tf.weights import download as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
