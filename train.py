"""Train a Cascaded Refinement Network: `python train.py --help`.

With no arguments it trains a small CRN on a synthetic city for a few minutes on the CPU and
prints the demo command; see docs/training.md for the paper's 256p -> 512p -> 1024p schedule.
"""
import sys

from crn_tf.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
