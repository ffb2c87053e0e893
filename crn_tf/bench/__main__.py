"""`python -m crn_tf.bench`: see `crn_tf.bench.run`."""
import sys

from crn_tf.bench.run import main

sys.exit(main())
