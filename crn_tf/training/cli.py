"""`crn-train` / `python train.py`: parse the flags, run `crn_tf.training.run.train`.

Exit status: 0 done (also after SIGINT/SIGTERM, which save a checkpoint first); 2 user errors
(bad flags, bad data, a checkpoint that does not fit or none that reads), one line (data problems
list their files); 3 a NaN/Inf loss; 4 a file of the run could not be written (disk full, no
permission, I/O error: one line naming the path, the step, the cause and the checkpoint a re-run
resumes from); 5 another process trains in the run directory (the line names it); 130 a second
Ctrl-C aborted without saving.
"""
from __future__ import annotations

import sys
from typing import Sequence

from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import quiet_start


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    argv = quiet_start(argv)
    from crn_tf.training.options import parse_options, resolve_options
    from crn_tf.training.strategy import is_chief_task

    options = parse_options(argv)  # argparse exits 2 with its own one-line message
    from crn_tf.core.files import WRITE_FAILED_EXIT, WriteError
    from crn_tf.core.locks import LOCKED_EXIT, DirectoryLock, LockError

    try:
        # The run directory's lock before TensorFlow starts: a second run there is refused at once.
        # (train() takes it again, nested; only the chief worker holds it.)
        resolved = resolve_options(options)
        with DirectoryLock(resolved.run_dir, enabled=is_chief_task(resolved.strategy),
                           warn=lambda line: print(line, file=sys.stderr, flush=True)):
            return _train(options)
    except (WriteError, LockError) as error:
        return cli_error("crn-train", error, WRITE_FAILED_EXIT if isinstance(error, WriteError) else LOCKED_EXIT)
    except ValueError as error:
        return cli_error("crn-train", error, 2)


def _train(options) -> int:
    """train(options) -> an exit status; WriteError and LockError go up to main()."""
    from crn_tf.data.readers import DataError
    from crn_tf.labels import LabelError
    from crn_tf.loss.vgg import VGGWeightsError
    from crn_tf.training.loop import NonFiniteLossError
    from crn_tf.training.run import train
    from crn_tf.weights.checkpoint import CheckpointError

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
        return cli_error("crn-train", error, 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
