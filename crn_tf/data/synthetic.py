"""The synthetic city's old module name: `python -m crn_tf.data.synthetic` and its imports keep working.

The writer lives in `crn_tf.synthetic.writer` (the scenes in `crn_tf.synthetic`); import from there.
"""
import sys

from crn_tf.synthetic.writer import *  # noqa: F401,F403  (the old public names)
from crn_tf.synthetic.writer import main

if __name__ == "__main__":
    sys.exit(main())
