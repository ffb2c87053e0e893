"""`python -m crn_tf.evaluate` / `crn-evaluate`: FID, KID and segmentation score of a CRN on a split.

Thin CLI: parse flags -> EvaluationOptions -> `crn_tf.evaluate.run.evaluate` (see docs/evaluate.md).
Exit status: 0; 2 bad input; 4 an output could not be written (one line naming it); 5 another
evaluation holds --out (`OUT/crn_tf.lock`).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import parse_cli
from crn_tf.core.sizes import size_type
from crn_tf.evaluate.run import DEFAULT_CACHE_DIR, EvaluationOptions
from crn_tf.evaluate.synthesize import REAL_RESIZE
from crn_tf.nn.memory import add_low_memory_flag

PROG = "crn-evaluate"


def _image_index(text: str) -> int | str:
    if text == "all" or text.isdigit():
        return text if text == "all" else int(text)
    raise argparse.ArgumentTypeError(f"image index must be a number or 'all', got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Evaluate a CRN on a split: synthesize every layout (or read a folder of synthesized images), "
        "then FID/KID against the real photos and/or a segmentation score (mIoU, pixel accuracy) with your "
        "segmenter. Writes report.json and report.md (beside the published CRN/pix2pixHD/SPADE figures).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    what = parser.add_argument_group("what to evaluate")
    what.add_argument("data", help="Cityscapes root, paired folder (labels/ + images/), or label folder (with --images)")
    what.add_argument("--split", default="val", choices=("train", "val", "test"), help="split of a Cityscapes root or paired folder")
    what.add_argument("--images", dest="images_dir", default=None, help="real photos (same stems) for a label folder")
    source = what.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint directory (or training run directory, or a name of the "
                        "authors' weights: authors-256p, ...) to synthesize with")
    source.add_argument("--synthesized", help="score this existing folder of synthesized <stem>.png instead")
    what.add_argument("--label-set", default=None, help="label set (name or JSON) when no checkpoint gives one")
    what.add_argument("--image-index", type=_image_index, default=0,
                      help="for a k-image model: which image to score (0..k-1) or 'all'")
    what.add_argument("--limit", type=int, default=None, help="only the first N layouts (quick checks)")
    what.add_argument("--out", default=os.path.join("results", "evaluate"), help="output folder (images, report)")
    what.add_argument("--name", default=None, help="name of the model in the report")
    what.add_argument("--batch-size", type=int, default=4, help="layouts per generator / segmenter call")
    add_low_memory_flag(what, "synthesize with the banded low-memory forward pass (same images, far less memory; "
                              "for 512p/1024p on small machines); auto bands when the plain pass would not fit")

    fid = parser.add_argument_group("FID and KID")
    fid.add_argument("--inception", default=None,
                     help="TTUR's Inception graph: classify_image_graph_def.pb, inception-2015-12-05.tgz or a folder "
                          "with either (comparable FID); 'keras' for keras.applications.InceptionV3 (NOT comparable). "
                          "Omit to skip FID/KID")
    fid.add_argument("--keras-weights", default="imagenet", help="weights for --inception keras: 'imagenet' or an .h5 path")
    fid.add_argument("--real", default=None, help="existing folder of real <stem>.png at the evaluation size "
                                                   "(default: the split's photos, resized into OUT/real)")
    fid.add_argument("--real-resize", default="bicubic", choices=tuple(REAL_RESIZE),
                     help="how the real photos are resized to the evaluation size: a PIL filter (default bicubic, "
                          "SPADE's loader, the protocol of published FIDs) or matlab-bicubic (MATLAB's imresize, "
                          "as the original's training photos)")
    fid.add_argument("--fid-batch-size", type=int, default=50, help="images per Inception call")
    fid.add_argument("--kid-subsets", type=int, default=100, help="KID: number of random subsets")
    fid.add_argument("--kid-subset-size", type=int, default=1000, help="KID: images per subset (capped at the set size)")
    fid.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="feature cache folder")
    fid.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")

    seg = parser.add_argument_group("segmentation score")
    seg.add_argument("--segmenter", default=None,
                     help="SavedModel: serving_default takes images [B,H,W,3] uint8/float 0..255 and returns class "
                          "indices [B,H,W] or logits [B,H,W,classes] (or the --out folder of "
                          "python -m crn_tf.evaluate.segmenter train). Omit to skip")
    seg.add_argument("--segmenter-size", type=size_type(), default=None,
                     help="run the segmenter at HxW (default: the synthesized images' size)")
    seg.add_argument("--segment-real", action="store_true", help="also score the real photos (the segmenter's upper bound)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def options_from_args(args: argparse.Namespace) -> EvaluationOptions:
    return EvaluationOptions(
        data=args.data, out=args.out, split=args.split, images_dir=args.images_dir, checkpoint=args.checkpoint,
        synthesized=args.synthesized, real=args.real, label_set=args.label_set, batch_size=args.batch_size,
        low_memory=args.low_memory, image_index=args.image_index, limit=args.limit, inception=args.inception,
        keras_weights=args.keras_weights, fid_batch_size=args.fid_batch_size, kid_subsets=args.kid_subsets,
        kid_subset_size=args.kid_subset_size, cache_dir=None if args.no_cache else args.cache_dir,
        real_resize=args.real_resize, segmenter=args.segmenter, segmenter_size=args.segmenter_size,
        segment_real=args.segment_real, name=args.name, progress=not args.no_progress,
    )


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)
    from crn_tf.core.files import WRITE_FAILED_EXIT, WriteError
    from crn_tf.core.locks import LOCKED_EXIT, DirectoryLock, LockError
    from crn_tf.evaluate.run import evaluate

    try:
        with DirectoryLock(args.out, warn=lambda line: print(line, file=sys.stderr)):  # one evaluation per --out
            report = evaluate(options_from_args(args))
    except (WriteError, LockError) as error:  # a full disk, ...; another evaluation writing --out
        return cli_error(PROG, error, WRITE_FAILED_EXIT if isinstance(error, WriteError) else LOCKED_EXIT)
    except (ValueError, OSError) as error:  # DataError, CheckpointError, InceptionError, SegmenterError, missing files
        message = " ".join(str(error).split())
        return cli_error(PROG, message, 2)
    with open(report["report_files"][1]) as f:
        print(f.read(), end="")
    print(f"wrote {report['report_files'][0]} and {report['report_files'][1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
