"""Old home of `crn_tf.bench.pipeline`; `python -m crn_tf.data.bench` and `import crn_tf.data.bench` still work."""
import sys

from crn_tf.bench import pipeline as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
