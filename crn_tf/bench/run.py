"""`python -m crn_tf.bench`: how fast the CRN runs here, and how close to the machine's limit.

For the generator alone and for a full training step (generator + VGG loss + backward + Adam),
it prints the median and spread of N timed runs after warm-up, images/s, the FLOPs per layout
from the configuration (`crn_tf.bench.flops`), the device's own peak in the same precision, measured
on the workload's own heaviest convolution shapes right before and right after the model
(`crn_tf.bench.peaks`), the utilisation (model FLOP/s over that conv peak; not printed when it
cannot be backed), the peak memory and the machine (`crn_tf.core.machine`). Each measurement runs
in its own subprocess, so its peak RSS (VmHWM, per process) is its own.

Examples:
    python -m crn_tf.bench --preset 256p --precision bf16 --mode generator
    python -m crn_tf.bench --preset 1024p --mode generator --low-memory --runs 1
    python -m crn_tf.bench --size 64x128 --width-multiplier 0.0625 --mode both --json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

from crn_tf.bench import peaks, torch_peer
from crn_tf.bench.report import format_report
from crn_tf.bench.timing import summarize_times, time_runs
from crn_tf.bench.timing import sync as _sync
from crn_tf.core import machine
from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.machine import (
    current_rss_bytes,
    gpu_memory_reset,
    gpu_peak_bytes,
    load_average,
    peak_rss_bytes,
)
from crn_tf.core.precision import BENCH_PRECISIONS, get_precision
from crn_tf.core.quiet import parse_cli
from crn_tf.core.sizes import parse_size
from crn_tf.nn.presets import (
    DEFAULT_PRESET,
    PRESET_TABLE,
    uses_diversity,
)

MODES = ("generator", "train", "both")
LOW_MEMORY_MODES = ("off", "on", "ab")
RESULT_PREFIX = "CRN_BENCH_RESULT "


class BenchError(ValueError):
    """A benchmark cannot run as asked; the message says why."""


@dataclasses.dataclass
class BenchConfig:
    """What to measure (the CLI's flags)."""

    preset: str = DEFAULT_PRESET
    size: str | None = None
    width_multiplier: float = 1.0
    num_images: int | None = None
    precision: str = "fp32"
    xla: bool = False
    batch_size: int = 1
    runs: int = 5
    warmup: int = 1
    mode: str = "generator"
    low_memory: str = "off"  # off | on | ab (both passes in one process, timed alternately)
    recompute: bool = False
    recompute_scope: str = "all"
    peak: str = "full"
    peak_runs: int = 3
    threads: int | None = None
    isolate: bool = True
    torch_python: str | None = None
    torch_script: str | None = None
    torch_train_script: str | None = None
    profile: bool = False
    memory_guard_gb: float = 1.0

    def validate(self) -> None:
        if self.preset not in PRESET_TABLE:
            raise BenchError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESET_TABLE)}")
        if self.size is not None:
            parse_size(self.size)
        if self.precision not in BENCH_PRECISIONS:
            raise BenchError(f"unknown precision {self.precision!r}; choose one of {sorted(BENCH_PRECISIONS)}")
        if self.mode not in MODES:
            raise BenchError(f"unknown mode {self.mode!r}; choose one of {MODES}")
        if self.peak not in (*peaks.PEAK_MODES, "off"):
            raise BenchError(f"--peak must be one of {(*peaks.PEAK_MODES, 'off')}, got {self.peak!r}")
        for name in ("batch_size", "runs", "peak_runs"):
            if getattr(self, name) < 1:
                raise BenchError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.width_multiplier <= 0:
            raise BenchError("--warmup must be >= 0 and --width-multiplier > 0")
        if self.low_memory not in LOW_MEMORY_MODES:
            raise BenchError(f"--low-memory must be one of {LOW_MEMORY_MODES}, got {self.low_memory!r}")
        if self.low_memory != "off" and self.xla:
            raise BenchError("--low-memory orders its bands with control dependencies for TensorFlow's executor; "
                             "XLA schedules memory itself: it cannot be combined with --xla")
        if self.recompute_scope not in ("generator", "all"):
            raise BenchError(f"--recompute-scope must be generator or all, got {self.recompute_scope!r}")
        if self.torch_python and (self.size is not None or self.width_multiplier != 1.0 or self.batch_size != 1
                                  or self.precision == "fp16" or self.num_images is not None):
            raise BenchError("the PyTorch peer only runs the presets as they are (full width, the preset's k, "
                             "batch 1) in fp32 or bf16")
        if self.torch_python and self.mode != "generator" and self.preset == "512p":
            raise BenchError("the PyTorch training-step peer runs 256p and 1024p only")
        if self.low_memory != "off" and self.mode != "generator":
            raise BenchError("--low-memory is an inference path: use it with --mode generator")


def measure_peaks(config: BenchConfig) -> dict[str, Any]:
    """The device's conv (and matmul) rates on the heaviest conv shapes of the configured
    workload(s) (`crn_tf.bench.peaks`), and the share of each workload's conv FLOPs they carry."""
    model = generator_geometry(config)
    parts = ("generator", "train") if config.mode == "both" else (config.mode,)
    shapes = []
    for part in parts:
        shapes += [s for s in peaks.peak_shapes(model, part, config.batch_size, config.peak)
                   if s.key not in {t.key for t in shapes}]
    runs = peaks.PEAK_MODES[config.peak]["runs"] or config.peak_runs
    result = peaks.measure_peaks(config.precision, shapes, runs)
    result.update({"mode": config.peak, "workload": " and ".join(parts), "runs": runs})
    result["coverage"] = {part: peaks.coverage(shapes, peaks.workload_convs(model, part, config.batch_size))
                          for part in ("generator", "train")}
    return result


# === The model ===

def _generator_args(config: BenchConfig) -> dict[str, Any]:
    args: dict[str, Any] = {"num_classes": 19, "recompute": config.recompute}
    if config.size is not None:
        args["output_size"] = parse_size(config.size)
    return args


def generator_geometry(config: BenchConfig):
    """The benchmarked CRN unbuilt (no weights): its sizes, widths and k."""
    from crn_tf.nn.model import CRN

    return CRN.from_preset(config.preset, num_images=config.num_images, width_multiplier=config.width_multiplier,
                           **_generator_args(config))


def build_generator(config: BenchConfig, inference: bool = False):
    """The benchmarked CRN (built, random Glorot weights) in the configured precision: the
    training step's mixed policy, or with `inference` the policy demo loads a model with
    (`crn_tf.core.precision.INFERENCE_POLICIES`: kernels stored in the compute dtype)."""
    from crn_tf.nn.model import CRN

    precision = get_precision(config.precision)
    policy = precision.inference_policy if inference else precision.training_policy
    model = CRN.from_preset(config.preset, num_images=config.num_images, width_multiplier=config.width_multiplier,
                            **_generator_args(config), **({"dtype": policy} if policy else {}))
    model.build()
    return model


def random_layout(model, batch_size: int, seed: int = 0, dtype: str = "float32"):
    """A random one-hot layout (batch, H, W, C); the cost does not depend on the values."""
    import tensorflow as tf

    height, width = model.output_size
    classes = tf.random.stateless_uniform((batch_size, height, width), (seed, 1), 0, model.num_channels, tf.int32)
    return tf.one_hot(classes, model.num_channels, dtype=dtype)


def model_description(model) -> dict[str, Any]:
    return {
        "output_size": list(model.output_size),
        "num_images": model.num_images,
        "widths": list(model.widths),
        "num_modules": model.num_modules,
        "parameters": int(sum(int(v.shape.num_elements()) for v in model.weights)),
        "dtype_policy": model.dtype_policy.name,
    }


def measure_generator(config: BenchConfig) -> dict[str, Any]:
    """Times the generator's forward pass as `crn_tf.nn.inference.synthesize` runs it (plain or banded)."""
    from crn_tf.bench import flops
    from crn_tf.nn import inference

    rss_before = current_rss_bytes()
    model = build_generator(config, inference=True)
    # The layout in the compute dtype, as a demo would hand it over (one-hot is exact in bf16).
    layout = random_layout(model, config.batch_size, dtype=model.compute_dtype)
    compiled = []

    def compile_pass(banded: bool):
        function = inference.forward_function(model, banded, jit_compile=config.xla)  # what synthesize() runs
        compiled.append(function)
        return lambda: _sync(function(layout))

    gpu_memory_reset()
    ab = None
    if config.low_memory == "ab":
        # Both passes in this process, timed alternately: the load moves both alike.
        passes = {"plain": compile_pass(False), "banded": compile_pass(True)}
        first = {name: time_runs(run, 1, 0)[0] for name, run in passes.items()}  # tracing included
        for run in passes.values():
            time_runs(run, 0, config.warmup)
        timed = {name: [] for name in passes}
        cpu = {name: [] for name in passes}
        for _ in range(config.runs):
            for name, run in passes.items():
                timed[name] += time_runs(run, 1, 0, cpu[name])
        ab = {name: summarize_times(times, cpu[name]) for name, times in timed.items()}
        ab["first_call_s"] = first
        ab["banded_over_plain"] = ab["banded"]["median_s"] / ab["plain"]["median_s"]
        ab["banded_over_plain_cpu"] = ab["banded"]["cpu_median_s"] / ab["plain"]["cpu_median_s"]
        times, cpu_times, forward = timed["banded"], cpu["banded"], passes["banded"]
    else:
        forward = compile_pass(config.low_memory == "on")
        cpu_times = []
        times = time_runs(forward, config.runs, config.warmup, cpu_times)
    measured = _measured(forward, times, cpu_times, config, rss_before)
    per_layout = flops.generator_flops(model)
    path = {"off": "tf.function", "on": "tf.function, banded low-memory pass",
            "ab": "tf.function, banded low-memory pass (A/B against the plain pass)"}[config.low_memory]
    return {
        "what": "generator",
        "model": model_description(model),
        "path": path + (" + XLA" if config.xla else ""),
        "layouts_per_s": config.batch_size / measured["median_s"],
        "images_per_s": config.batch_size * model.num_images / measured["median_s"],
        "flops_per_layout": per_layout,
        "achieved_tflops": per_layout * config.batch_size / measured["median_s"] / 1e12,
        "traces": max(function.experimental_get_tracing_count() for function in compiled),
        "ab": ab,
        **measured,
    }


def build_loss(config: BenchConfig, num_images: int):
    """The loss train.py builds for this preset and k (`loss.perceptual.build_loss`), on a random
    VGG-19 in the configured precision (its values do not change the cost)."""
    from crn_tf.loss.perceptual import build_loss as build

    return build(None, diversity=uses_diversity(config.preset, num_images), preset=config.preset,
                 precision=config.precision, recompute=config.recompute and config.recompute_scope == "all")


def measure_train(config: BenchConfig) -> dict[str, Any]:
    """Times full training steps: generator + VGG-19 loss + backward + Adam (CRNTrainer's step)."""
    import tensorflow as tf

    from crn_tf.bench import flops
    from crn_tf.training.loop import CRNTrainer

    rss_before = current_rss_bytes()
    model = build_generator(config)
    loss = build_loss(config, model.num_images)
    trainer = CRNTrainer(model, loss, global_batch_size=config.batch_size,
                         mixed_precision=get_precision(config.precision).mixed_precision, xla=config.xla)
    layout = random_layout(model, config.batch_size)
    height, width = model.output_size
    image = tf.random.stateless_uniform((config.batch_size, height, width, 3), (0, 2), 0.0, 255.0)
    iterator = iter(tf.data.Dataset.from_tensors((image, layout)).repeat())
    gpu_memory_reset()
    step = lambda: _sync(trainer.train_step(iterator)[0])  # noqa: E731
    cpu_times = []
    times = time_runs(step, config.runs, config.warmup, cpu_times)
    measured = _measured(step, times, cpu_times, config, rss_before)
    step_flops = flops.train_step_flops(model)
    return {
        "what": "train",
        "model": model_description(model),
        "loss": {"diversity": loss.diversity, "layer_weights": loss.layer_weights_name,
                 "vgg_weights": "random (cost only)"},
        "recompute": ("generator modules + VGG segments" if config.recompute_scope == "all" else "generator modules")
        if config.recompute else "off",
        "path": "tf.function step (CRNTrainer)" + (", XLA forward+backward" if config.xla else ""),
        "steps_per_s": 1.0 / measured["median_s"],
        "layouts_per_s": config.batch_size / measured["median_s"],
        "flops_per_layout": step_flops.total,
        "flops_breakdown": step_flops.as_dict(),
        "achieved_tflops": step_flops.total * config.batch_size / measured["median_s"] / 1e12,
        "traces": trainer.trace_count,
        **measured,
    }


def _measured(run: Callable[[], Any], times: list[float], cpu_times: list[float], config: BenchConfig,
              rss_before: int | None) -> dict[str, Any]:
    """What every measurement reports after its timed runs: the time summary, the memory peaks
    (read right after the runs) and, with --profile, the op profile of one more run."""
    peak_rss, gpu_peak = peak_rss_bytes(), gpu_peak_bytes()
    return {**summarize_times(times, cpu_times), "rss_before_model_bytes": rss_before, "peak_rss_bytes": peak_rss,
            "gpu_peak_bytes": gpu_peak, "profile": _profile(run) if config.profile else None}


def _profile(run: Callable[[], Any]) -> dict[str, Any]:
    from crn_tf.bench.profiling import profile_ops

    return profile_ops(run, runs=2)


# === Orchestration ===

def _configure_threads(threads: int | None) -> None:
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def run_part(part: str, config: BenchConfig) -> dict[str, Any]:
    """One measurement ("peak", "generator" or "train") in this process."""
    _configure_threads(config.threads)
    if config.isolate and config.memory_guard_gb > 0:
        machine.start_memory_guard(int(config.memory_guard_gb * 2**30))
    if part == "peak":
        result = measure_peaks(config)
    elif part == "generator":
        result = measure_generator(config)
    elif part == "train":
        result = measure_train(config)
    else:
        raise BenchError(f"unknown benchmark part {part!r}")
    result["machine"] = machine.machine_info()
    result["load_average"] = load_average()
    return result


def run_part_subprocess(part: str, config: BenchConfig) -> dict[str, Any]:
    """`run_part` in a fresh Python process (its own VmHWM); raises BenchError on failure."""
    command = [sys.executable, "-m", "crn_tf.bench", "--worker", part, "--worker-config",
               json.dumps(dataclasses.asdict(config))]
    env = dict(os.environ)
    process = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in reversed(process.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    lines = (process.stderr or "").strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        raise BenchError(errors[-1][len("error: "):])
    tail = "\n".join(lines[-15:])
    raise BenchError(f"the {part} benchmark process failed (exit {process.returncode}):\n{tail}")


def run_benchmark(config: BenchConfig, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything the CLI prints, as a dict: peaks, generator and/or train results, utilisation."""
    config.validate()
    say = progress or (lambda message: None)
    run = run_part_subprocess if config.isolate else run_part
    report: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_start": load_average(),
    }
    if config.peak != "off":
        say(f"measuring the device peak ({config.precision}, {config.peak} shapes)...")
        report["peak"] = run("peak", config)
    parts = ("generator", "train") if config.mode == "both" else (config.mode,)
    for part in parts:
        say(f"measuring the {part} ({config.runs} runs after {config.warmup} warm-up)...")
        report[part] = run(part, config)
        report["machine"] = report[part].pop("machine")
    if config.peak != "off":
        # Measured again after the model: on a shared machine the load moves, and the
        # utilisation is taken against the higher of the two peaks (the conservative figure).
        say("measuring the device peak again...")
        report["peak_after"] = run("peak", config)
        report["peak_after"].pop("machine", None)
        report["conv_peak_tflops"] = max(report["peak"]["conv_peak_tflops"], report["peak_after"]["conv_peak_tflops"])
        report["matmul_peak_tflops"] = max(report["peak"]["matmul_peak_tflops"], report["peak_after"]["matmul_peak_tflops"])
    for part in parts:
        util, why = peaks.utilisation(report[part]["achieved_tflops"], [report.get("peak"), report.get("peak_after")], part)
        report[part]["utilisation_of_conv_peak"], report[part]["utilisation_note"] = util, why
    if "machine" not in report and "peak" in report:
        report["machine"] = report["peak"].pop("machine")
    report.get("peak", {}).pop("machine", None)
    precision = get_precision(config.precision)
    report["machine"]["precision_policy"] = (precision.inference_policy if config.mode == "generator"
                                             else precision.training_policy) or "float32"
    if config.torch_python:
        report["torch_peer"] = {}
        for part in parts:
            say(f"timing the PyTorch peer of the {part}...")
            peer = torch_peer.run_torch_peer(config, part)
            peer["speedup_of_crn_tf"] = peer["median_s"] / report[part]["median_s"]
            report["torch_peer"][part] = peer
    report["load_average_end"] = load_average()
    return report


# === CLI ===

def _fraction(text: str) -> float:
    """'0.0625' or '1/16' -> 0.0625."""
    from fractions import Fraction

    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crn_tf.bench",
        description="Time the CRN generator and a full training step; compare with the device's own peak.",
    )
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help=f"{', '.join(PRESET_TABLE)} (default {DEFAULT_PRESET})")
    parser.add_argument("--size", help="output size HxW instead of the preset's (paper widths for each module height)")
    parser.add_argument("--width-multiplier", type=_fraction, default=1.0,
                        help="scale every feature width, e.g. 0.0625 or 1/16 (default 1)")
    parser.add_argument("--num-images", type=int, help="k, images per layout (default: the preset's)")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (Keras mixed policy)")
    parser.add_argument("--xla", action="store_true", help="compile with XLA (jit_compile)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--mode", default="generator", help="generator, train or both (default generator)")
    parser.add_argument("--low-memory", nargs="?", const="on", default="off",
                        help="generator: on = time the banded low-memory pass (a bare --low-memory), ab = time it "
                             "and the plain pass alternately in one process and print their ratio (default off)")
    parser.add_argument("--recompute", action="store_true",
                        help="train: recompute activations in the backward pass (gradient checkpointing)")
    parser.add_argument("--recompute-scope", default="all",
                        help="with --recompute: 'generator' (CRN(recompute=True) alone, as train.py --recompute) "
                             "or 'all' (also the loss's VGG, crn_tf.loss.recompute; default)")
    parser.add_argument("--peak", default="full",
                        help="device peak on the workload's own heaviest conv shapes: full (shapes carrying 75%% of "
                             "its conv FLOPs, --peak-runs runs), quick (50%%, one run) or off (default full)")
    parser.add_argument("--peak-runs", type=int, default=3)
    parser.add_argument("--threads", type=int, help="TensorFlow intra-op threads (default: TensorFlow's)")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="run every part in this process (faster; peak RSS is then cumulative)")
    parser.add_argument("--torch-python",
                        help="a Python with torch: also time the PyTorch peer of each part (torch_crn.py for the "
                             "generator, torch_crn_train.py for the training step)")
    parser.add_argument("--torch-script", help="the generator's PyTorch peer (default ../shared/peers/torch_crn.py)")
    parser.add_argument("--torch-train-script",
                        help="the training step's PyTorch peer (default torch_crn_train.py beside --torch-script)")
    parser.add_argument("--profile", action="store_true",
                        help="after timing, trace 2 runs with tf.profiler and list the top ops")
    parser.add_argument("--memory-guard-gb", type=float, default=1.0,
                        help="stop a measurement when the machine has less than this available (GiB; 0 = off)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-config", help=argparse.SUPPRESS)
    return parser


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)
    if args.worker:
        try:
            result = run_part(args.worker, BenchConfig(**json.loads(args.worker_config)))
        except (BenchError, ValueError) as error:  # a configuration the model rejects
            return cli_error(None, error, 2)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    fields = {f.name for f in dataclasses.fields(BenchConfig)}
    config = BenchConfig(**{k: v for k, v in vars(args).items() if k in fields})
    progress = None if args.json else (lambda message: print(message, file=sys.stderr, flush=True))
    try:
        report = run_benchmark(config, progress)
    except (BenchError, ValueError) as error:
        return cli_error(None, error, 2)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
