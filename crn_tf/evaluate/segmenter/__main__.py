"""`python -m crn_tf.evaluate.segmenter train|score` / `crn-segmenter`: train a segmenter, score it on real photos.

Thin CLI: parse flags -> SegmenterOptions -> `train_segmenter`, or -> `score_real_photos`.
User errors (bad flags, bad data, a SavedModel that does not fit) print one line and exit 2, as
train.py; a NaN/Inf loss exits 3; SIGINT/SIGTERM save a checkpoint and the SavedModel and exit 0
(run the same command again to resume); a second Ctrl-C aborts without saving (exit 130).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import parse_cli
from crn_tf.core.sizes import size_type

PROG = "crn-segmenter"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _subcommand(commands, name: str, help: str, description: str) -> argparse.ArgumentParser:
    """A subcommand parser whose first argument is the dataset."""
    parser = commands.add_parser(name, help=help, description=description,
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("data", help="Cityscapes root, paired folder (images/ + labels/) or label folder")
    return parser


def build_parser() -> argparse.ArgumentParser:
    from crn_tf.evaluate.segmenter.options import SegmenterOptions

    defaults = SegmenterOptions(data="", out="")
    parser = argparse.ArgumentParser(
        prog=PROG, description="A compact U-Net segmenter for the segmentation score of crn-evaluate: train it on "
        "any dataset's photo -> label pairs, or score one on a split's real photos.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = _subcommand(
        commands, "train", "train (or resume) a segmenter; writes OUT/saved_model",
        "Train a U-Net segmenter on the photo -> label pairs of DATA (rerun the same command to resume). "
        "Writes OUT/checkpoints (the resumable state) and OUT/saved_model (for crn-evaluate --segmenter OUT).")
    train.add_argument("--out", required=True, help="output folder: checkpoints/, saved_model/, loss_log.txt")
    train.add_argument("--size", default=defaults.size, help="training size HxW (photos resized as train.py resizes them, MATLAB bicubic; labels nearest)")
    train.add_argument("--label-set", default=defaults.label_set, help="label set: 'cityscapes' or a JSON file")
    train.add_argument("--split", default=defaults.split, help="split to train on")
    train.add_argument("--val-data", default=None, help="validation data (default: DATA)")
    train.add_argument("--val-split", default=defaults.val_split,
                       help="split scored after each epoch ('none': no validation score)")
    train.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs")
    train.add_argument("--steps", type=int, default=None, help="stop after this many steps in total (overrides --epochs)")
    train.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per step")
    train.add_argument("--lr", type=_positive_float, default=defaults.lr, help="Adam learning rate")
    train.add_argument("--lr-schedule", default=defaults.lr_schedule, choices=("cosine", "constant"),
                       help="cosine: from --lr down to 0 over the run")
    train.add_argument("--seed", type=int, default=defaults.seed, help="seed of the initial weights, data order and flips")
    train.add_argument("--base-width", type=int, default=defaults.base_width,
                       help="width of the first level (level l has base * 2^l)")
    train.add_argument("--depth", type=int, default=defaults.depth, help="U-Net levels")
    train.add_argument("--norm", default=defaults.norm, choices=("batch", "group"), help="normalisation after each conv")
    train.add_argument("--no-flip", action="store_true", help="no horizontal-flip augmentation")
    train.add_argument("--augment", choices=("none", "photometric"), default=defaults.augment,
                       help="photometric: also blur (half of the batches, by a random factor up to --max-blur) and "
                       "jitter brightness, tint and contrast, so the segmenter reads soft or tinted images too")
    train.add_argument("--max-blur", type=_positive_float, default=defaults.max_blur,
                       help="with --augment photometric: the largest blur (shrink by this factor, enlarge back)")
    train.add_argument("--class-weights", default=defaults.class_weights, choices=("none", "enet"),
                       help="none: every non-void pixel counts the same; enet: weight 1/ln(1.02 + class share) "
                            "(rare classes up to 50x), counted on the training labels")
    train.add_argument("--mixed-precision", default=defaults.mixed_precision, choices=("off", "bf16"),
                       help="bf16: bfloat16 compute, float32 weights (fast on CPUs with AVX-512 BF16 or AMX); "
                            "the SavedModel is float32 either way")
    train.add_argument("--skip-bad", action="store_true", help="skip bad image/label pairs with a warning instead of stopping")
    train.add_argument("--save-every", type=int, default=defaults.save_every,
                       help="checkpoint every N steps (also at each epoch end and on SIGINT/SIGTERM)")
    train.add_argument("--keep-checkpoints", type=int, default=defaults.keep_checkpoints, help="checkpoints kept")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")

    score = _subcommand(
        commands, "score", "mIoU / pixel accuracy / per-class IoU of a segmenter on real photos",
        "Score a segmenter SavedModel on the real photos of a split, with crn-evaluate's protocol "
        "(photos resized with PIL bicubic, labels by nearest neighbour, void ignored, one confusion matrix).")
    score.add_argument("--segmenter", required=True, help="SavedModel directory (or a segmenter train --out folder)")
    score.add_argument("--split", default="val", help="split to score")
    score.add_argument("--size", type=size_type(), default=None,
                       help="evaluation size HxW (default: the segmenter's training size; else the photos' own)")
    score.add_argument("--label-set", default=None, help="label set (default: the segmenter's own, else cityscapes)")
    score.add_argument("--batch-size", type=int, default=8, help="images per segmenter call")
    score.add_argument("--limit", type=int, default=None, help="only the first N photos")
    score.add_argument("--blur", type=float, default=0.0,
                       help="score the photos after a Gaussian blur of this sigma (pixels, at the evaluation size): "
                            "how much of its score the segmenter keeps on soft images")
    score.add_argument("--json", default=None, help="also write the scores (with the confusion matrix) to this file")
    score.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _train(args: argparse.Namespace) -> int:
    from crn_tf.evaluate.segmenter.options import SegmenterOptions, validate

    fields = {f.name for f in dataclasses.fields(SegmenterOptions)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    options = SegmenterOptions(**values, flip=not args.no_flip, progress=not args.no_progress)
    validate(options)  # before TensorFlow is loaded
    from crn_tf.evaluate.segmenter.training import train_segmenter
    from crn_tf.training.loop import NonFiniteLossError

    try:
        result = train_segmenter(options)
    except NonFiniteLossError as error:
        print(f"{PROG}: {error}; stopped (the last good checkpoint is kept; lower --lr)", file=sys.stderr)
        return 3
    if result.status == "interrupted":
        print(f"stopped at step {result.step}; run the same command again to resume", file=sys.stderr)
    else:
        speed = f" ({result.seconds_per_step:.3g} s/step)" if result.seconds_per_step else ""
        loss = f", last loss {result.last_loss:.4g}" if result.last_loss is not None else ""
        print(f"done: {result.step} steps{loss}{speed}", file=sys.stderr)
    if result.val_scores:
        print(f"val mIoU {result.val_scores['miou']:.4f}, pixel accuracy {result.val_scores['pixel_accuracy']:.4f}",
              file=sys.stderr)
    print(f"segmenter: {result.saved_model}\nuse it: python -m crn_tf.evaluate DATA --checkpoint CKPT "
          f"--segmenter {result.saved_model} --segment-real", file=sys.stderr)
    return 0


def _score(args: argparse.Namespace) -> int:
    from crn_tf.core.files import write_atomic
    from crn_tf.evaluate.segmenter.scoring import format_scores, score_real_photos

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    scores = score_real_photos(args.data, args.segmenter, split=args.split, size=args.size, label_set=args.label_set,
                               batch_size=args.batch_size, limit=args.limit, progress=not args.no_progress,
                               blur=args.blur)
    print(format_scores(scores))
    if args.json:
        write_atomic(args.json, json.dumps(scores, indent=2) + "\n")
    return 0


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)  # the quiet start; argparse exits 2 with its own one-line message
    from crn_tf.data.readers import DataError
    from crn_tf.labels import LabelError

    try:
        return _train(args) if args.command == "train" else _score(args)
    except KeyboardInterrupt:
        print(f"{PROG}: aborted (the last checkpoint in the output folder is kept)", file=sys.stderr)
        return 130
    except (ValueError, DataError, LabelError, OSError) as error:  # SegmenterError is a ValueError
        # As train.py: one message, no traceback (data problems list their files, one per line).
        return cli_error(PROG, error, 2)


if __name__ == "__main__":
    sys.exit(main())
