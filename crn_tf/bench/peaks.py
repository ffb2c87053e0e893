"""The device's own convolution rate on the benchmarked model's shapes: the denominator of every
utilisation `crn_tf.bench.run` prints, and the rule for when it may print one.

The peak is measured on the heaviest 3x3 convolution shapes of the very workload being
timed: the generator's (batch, height, width, c_in, c_out), and for a training step also the
loss's VGG-19 convolutions at batch k + 1, each weighted by the FLOPs it carries in that
workload (a generator conv 3x, forward plus its two backward products; a VGG conv (2k + 1)/(k + 1)x,
forward on k + 1 images plus the data gradient into k). Each shape is timed as one forward
SAME convolution in the benchmark's precision; the conv peak is the best rate among them.
`full` measures the shapes that carry >= 75% of the workload's convolution FLOPs (at most 6),
`quick` the ones that carry >= 50% (at most 4) with a single timed run: fewer runs and shapes,
never smaller ones.

A utilisation is printed only when it is backed: a peak was measured, its shapes carry at
least half of the workload's convolution FLOPs, and the model's rate does not exceed it
(which would mean the peak was taken under more load than the model, or on other shapes).
Otherwise the report says which of these failed instead of giving a percentage.
"""
from __future__ import annotations

import dataclasses
import statistics
from typing import Any, Sequence

from crn_tf.bench import flops
from crn_tf.core.precision import get_precision

PEAK_MODES: dict[str, dict[str, Any]] = {
    "full": {"coverage": 0.75, "max_shapes": 6, "runs": None},  # runs: --peak-runs
    "quick": {"coverage": 0.5, "max_shapes": 4, "runs": 1},
}
MIN_COVERAGE = 0.5
"""A peak backs a utilisation only if its shapes carry at least this share of the workload's conv FLOPs."""
MATMUL_N = 4096


@dataclasses.dataclass(frozen=True)
class PeakShape:
    """One convolution shape of the workload and the share of its conv FLOPs it carries."""

    batch: int
    height: int
    width: int
    in_channels: int
    out_channels: int
    share: float
    where: str  # the workload's convs of this shape, e.g. "g_256/conv2"

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        return (self.batch, self.height, self.width, self.in_channels, self.out_channels)

    @property
    def flops(self) -> int:
        return self.batch * flops.conv_flops(self.height, self.width, 3, self.in_channels, self.out_channels)


def workload_convs(model, mode: str, batch_size: int = 1) -> list[tuple[flops.ConvCount, int, float]]:
    """(convolution, its batch, FLOPs it carries in the workload) of every 3x3 conv that a
    generator pass or a training step (`mode` "generator" / "train") of `model` runs."""
    generator = [(c, batch_size, float(c.flops * batch_size)) for c in flops.model_convs(model) if c.kernel == 3]
    if mode == "generator":
        return generator
    k = model.num_images
    vgg_batch = batch_size * (k + 1)
    height, width = model.output_size
    vgg = [(c, vgg_batch, c.flops * vgg_batch * (2 * k + 1) / (k + 1)) for c in flops.vgg19_convs(height, width)]
    return [(c, b, 3 * w) for c, b, w in generator] + vgg


def representative_shapes(convs: Sequence[tuple[flops.ConvCount, int, float]], coverage: float, max_shapes: int) -> list[PeakShape]:
    """The heaviest distinct shapes of `convs`, heaviest first, until they carry `coverage` of
    the FLOPs or `max_shapes` are taken."""
    groups: dict[tuple[int, int, int, int, int], list] = {}
    for conv, batch, weight in convs:
        key = (batch, conv.height, conv.width, conv.in_channels, conv.out_channels)
        entry = groups.setdefault(key, [0.0, []])
        entry[0] += weight
        entry[1].append(conv.name)
    total = sum(entry[0] for entry in groups.values())
    shapes, covered = [], 0.0
    for key, (weight, names) in sorted(groups.items(), key=lambda item: -item[1][0]):
        if covered >= coverage or len(shapes) >= max_shapes:
            break
        shapes.append(PeakShape(*key, share=weight / total, where=", ".join(names)))
        covered += weight / total
    return shapes


def peak_shapes(model, mode: str, batch_size: int, peak: str) -> list[PeakShape]:
    """The shapes a `peak` ("full" / "quick") measurement times for this workload."""
    spec = PEAK_MODES[peak]
    return representative_shapes(workload_convs(model, mode, batch_size), spec["coverage"], spec["max_shapes"])


def measure_peaks(precision: str, shapes: Sequence[PeakShape], runs: int) -> dict[str, Any]:
    """The device's rate, TFLOP/s, on each of `shapes` (a forward 3x3 SAME conv) and on an
    n^3 matmul, in `precision`. `conv_peak_tflops` is the best conv rate: the denominator of
    utilisation; `coverage` is the share of the workload's conv FLOPs its shapes carry."""
    import tensorflow as tf

    from crn_tf.bench.timing import sync, time_runs

    dtype = get_precision(precision).compute_dtype
    generator = tf.random.Generator.from_seed(0)
    a = tf.cast(generator.normal((MATMUL_N, MATMUL_N)), dtype)
    b = tf.cast(generator.normal((MATMUL_N, MATMUL_N)), dtype)
    matmul = tf.function(tf.matmul)
    median = statistics.median(time_runs(lambda: sync(matmul(a, b)), runs, 1))
    result = {
        "precision": precision,
        "dtype": dtype,
        "matmul": {"n": MATMUL_N, "median_s": median, "tflops": 2 * MATMUL_N**3 / median / 1e12},
        "convs": [],
    }
    a = b = None
    conv = tf.function(lambda x, kernel: tf.nn.conv2d(x, kernel, 1, "SAME"))  # traced once per shape
    for shape in shapes:
        x = tf.cast(generator.normal((shape.batch, shape.height, shape.width, shape.in_channels)), dtype)
        kernel = tf.cast(generator.normal((3, 3, shape.in_channels, shape.out_channels), stddev=0.02), dtype)
        median = statistics.median(time_runs(lambda: sync(conv(x, kernel)), runs, 1))
        result["convs"].append({**dataclasses.asdict(shape), "median_s": median, "tflops": shape.flops / median / 1e12})
        x = kernel = None
    result["matmul_peak_tflops"] = result["matmul"]["tflops"]
    result["conv_peak_tflops"] = max((c["tflops"] for c in result["convs"]), default=None)
    return result


def coverage(shapes: Sequence[PeakShape], convs: Sequence[tuple[flops.ConvCount, int, float]]) -> float:
    """The share of the FLOPs of the workload `convs` (`workload_convs`) that convolutions of
    the measured `shapes` carry."""
    measured = {shape.key for shape in shapes}
    total = sum(weight for _, _, weight in convs)
    hit = sum(weight for c, b, weight in convs if (b, c.height, c.width, c.in_channels, c.out_channels) in measured)
    return hit / total if total else 0.0


def utilisation(achieved_tflops: float, peaks: Sequence[dict[str, Any]], workload: str) -> tuple[float | None, str]:
    """The achieved rate of `workload` ("generator" / "train") over the higher conv peak of
    `peaks` (measured before and after the model), or None and why no utilisation can be backed."""
    measured = [p for p in peaks if p and p.get("conv_peak_tflops")]
    if not measured:
        return None, "no peak measured (--peak off)"
    shares = [p.get("coverage", {}).get(workload, 0.0) for p in measured]
    coverage = min(shares)
    if coverage < MIN_COVERAGE:
        return None, (f"the peak's shapes carry only {100 * coverage:.0f}% of this workload's conv FLOPs "
                      f"(< {100 * MIN_COVERAGE:.0f}%): not representative")
    peak = max(p["conv_peak_tflops"] for p in measured)
    if achieved_tflops > peak:
        return None, (f"the model ran at {achieved_tflops:.3f} TFLOP/s, above the measured peak {peak:.3f}: "
                      "the peak was taken under more load; re-run")
    return achieved_tflops / peak, f"of the conv peak {peak:.3f} TFLOP/s"
