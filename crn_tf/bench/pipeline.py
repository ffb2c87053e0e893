"""Input-pipeline benchmark: images per second, raw Cityscapes-size PNGs vs a prepared folder.

    python -m crn_tf.data.bench [--num 20] [--size 256x512] [--batch-size 1] [--epochs 3] [--photo-resize area]

Writes a synthetic city at full Cityscapes size (1024x2048) into a temporary folder, then
times (a) raw PNGs -> resized one-hot batches, beside the bare PNG decode rate of the same
files (the bound (a) can reach), and (b) the folder `prepare` writes at the training size.
Figures, not a test: other processes on the machine change them.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Sequence

from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import quiet_start
from crn_tf.core.sizes import size_type
from crn_tf.data.prepare import prepare
from crn_tf.data.resize import DEFAULT_PHOTO_RESIZE, PHOTO_RESIZE_METHODS
from crn_tf.data.sources import find_examples

if TYPE_CHECKING:
    import tensorflow as tf

logger = logging.getLogger("crn_tf.bench.pipeline")  # not __name__: that is __main__ under python -m


def images_per_second(dataset: tf.data.Dataset, epochs: int) -> tuple[float, float]:
    """(images per second, CPU milliseconds per image) over `epochs` passes, after one warm-up pass.

    CPU time (all threads of this process) does not depend on what else runs on the machine,
    so `cores * 1000 / cpu_ms` estimates the rate on idle cores when the wall rate is shared.
    """
    import tensorflow as tf

    for _ in dataset:
        pass
    count, start, cpu_start = 0, time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for element in dataset:
            count += tf.nest.flatten(element)[0].shape[0]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return count / wall, 1000.0 * cpu / count


def decode_only(source: str, split: str = "train") -> tf.data.Dataset:
    """Reading and decoding each photo and label PNG, nothing else (batched by 1 to count them)."""
    import tensorflow as tf

    from crn_tf.data.pipeline import AUTOTUNE

    examples = find_examples(source, split)
    paths = tf.data.Dataset.from_tensor_slices(([e.image_path for e in examples], [e.label_path for e in examples]))

    def decode(image_path, label_path):
        image = tf.io.decode_png(tf.io.read_file(image_path), channels=3)
        label = tf.io.decode_png(tf.io.read_file(label_path), channels=0)
        return tf.shape(image)[:1] + tf.shape(label)[:1] * 0  # both decoded, nothing else kept

    return paths.map(decode, num_parallel_calls=AUTOTUNE, deterministic=False).batch(1).prefetch(AUTOTUNE)


def run(num: int, size: tuple[int, int], batch_size: int, epochs: int, workdir: str,
        source_size: tuple[int, int] = (1024, 2048),
        photo_resize: str = DEFAULT_PHOTO_RESIZE) -> dict[str, tuple[float, float]]:
    """Writes the data into `workdir` (reused if already there); returns {name: (images/s, CPU ms/image)}."""
    from crn_tf.data.pipeline import make_dataset
    from crn_tf.synthetic import write_synthetic_city

    city = os.path.join(workdir, "city")
    prepared = os.path.join(workdir, "prepared")
    if len(find_examples(city)) != num if os.path.isdir(city) else True:
        logger.info("writing %d synthetic %dx%d scenes to %s ...", num, *source_size, city)
        write_synthetic_city(city, num_train=num, num_val=0, size=source_size, seed=0, instances=False)
    logger.info("preparing %dx%d folder %s ...", *size, prepared)
    prepare(city, prepared, split="train", size=size, progress=False, photo_resize=photo_resize)
    rates = {}
    options = dict(size=size, batch_size=batch_size, deterministic=False, photo_resize=photo_resize)
    rates["raw_decode"] = images_per_second(decode_only(city), epochs)
    rates["raw"] = images_per_second(make_dataset(city, **options), epochs)
    rates["prepared_decode"] = images_per_second(decode_only(prepared), epochs)
    rates["prepared"] = images_per_second(make_dataset(prepared, **options), epochs)
    rates["prepared_cached"] = images_per_second(make_dataset(prepared, cache=True, **options), epochs)
    return rates


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    argv = quiet_start(argv)
    parser = argparse.ArgumentParser(prog="python -m crn_tf.data.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=20, help="synthetic scenes to write (default: 20)")
    parser.add_argument("--size", type=size_type(), default=(256, 512), help="training size HxW (default: 256x512)")
    parser.add_argument("--source-size", type=size_type(), default=(1024, 2048), help="raw size (default: 1024x2048)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size (default: 1, as the original)")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes over the data (default: 3)")
    parser.add_argument("--workdir", default=None, help="keep the data here (reused on the next run)")
    parser.add_argument("--photo-resize", choices=PHOTO_RESIZE_METHODS, default=DEFAULT_PHOTO_RESIZE,
                        help="photo resize timed in (a) and used by prepare (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.num < 1 or args.epochs < 1 or args.batch_size < 1:
        return cli_error(None, "--num, --epochs and --batch-size must be at least 1", 2)
    with tempfile.TemporaryDirectory() as temporary:
        rates = run(args.num, args.size, args.batch_size, args.epochs, args.workdir or temporary, args.source_size,
                    args.photo_resize)
    h, w = args.size
    sh, sw = args.source_size
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    def line(label: str, key: str, note: str = "") -> str:
        rate, cpu_ms = rates[key]
        return f"  {label:<52} {rate:7.1f} images/s  {cpu_ms:7.1f} CPU ms/image (~{cores * 1000 / cpu_ms:.0f}/s idle){note}"

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"input pipeline: {args.num} images, batch {args.batch_size}, photos {args.photo_resize}, {cores} cores, "
          f"load average {load:.1f}")
    print(line(f"(a) raw {sh}x{sw} PNGs -> {h}x{w} one-hot batches", "raw"))
    print(line("    bare PNG decode of the same pairs", "raw_decode",
               f"  -> (a) runs at {100 * rates['raw'][0] / rates['raw_decode'][0]:.0f}% of the decode rate"))
    print(line(f"(b) prepared {h}x{w} folder -> one-hot batches", "prepared"))
    print(line("    bare PNG decode of the same pairs", "prepared_decode"))
    print(line("    prepared with cache=True (epochs after the first)", "prepared_cached"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
