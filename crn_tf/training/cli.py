"""`crn-train` / `python train.py`: parse the flags, run `crn_tf.training.run.train`.

User errors (bad flags, bad data, a checkpoint that does not fit) print one line and exit 2;
a NaN/Inf loss prints its message and exits 3; SIGINT/SIGTERM save a checkpoint and exit 0; a
second Ctrl-C aborts without saving (exit 130).
"""
from __future__ import annotations

import sys
from typing import Sequence

from crn_tf.quiet import quiet_start


def main(argv: Sequence[str] | None = None) -> int:
    argv = quiet_start(argv)
    from crn_tf.training.options import parse_options

    options = parse_options(argv)  # argparse exits 2 with its own one-line message
    from crn_tf.checkpoint import CheckpointError
    from crn_tf.data.readers import DataError
    from crn_tf.labels import LabelError
    from crn_tf.training.loop import NonFiniteLossError
    from crn_tf.training.run import train
    from crn_tf.vgg import VGGWeightsError

    try:
        train(options)
    except KeyboardInterrupt:
        print("crn-train: aborted (the last checkpoint in the run directory is kept)", file=sys.stderr)
        return 130
    except NonFiniteLossError as error:
        print(f"crn-train: {error}", file=sys.stderr)
        return 3
    except (ValueError, DataError, CheckpointError, LabelError, VGGWeightsError, FileNotFoundError) as error:
        # One message, no traceback (data problems list their files, one per line).
        print(f"crn-train: error: {str(error).strip()}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
