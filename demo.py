"""Synthesize photos from semantic layouts: `python demo.py` runs the shipped checkpoint on the samples.

A thin wrapper of `crn_tf.demo.main` (also installed as `crn-demo`); `python demo.py --help` for options.
"""
import sys

from crn_tf.demo import main

if __name__ == "__main__":
    sys.exit(main())
