"""`python -m crn_tf.synthetic OUT ...`: write a synthetic street dataset (see crn_tf.synthetic.writer)."""
import sys

from crn_tf.synthetic.writer import main

if __name__ == "__main__":
    sys.exit(main())
