"""Old home of `crn_tf.synthetic.writer`; `python -m crn_tf.data.synthetic` and `import crn_tf.data.synthetic` still work."""
import sys

from crn_tf.synthetic import writer as _module

if __name__ == "__main__":
    sys.exit(_module.main())
sys.modules[__name__] = _module
