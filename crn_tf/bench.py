"""`python -m crn_tf.bench`: how fast the CRN runs here, and how close to the machine's limit.

For the generator alone and for a full training step (generator + VGG loss + backward + Adam),
it prints the median and spread of N timed runs after warm-up, images/s, the FLOPs per layout
from the configuration (`crn_tf.flops`), the device's own peak in the same precision (a large
matmul and large 3x3 convolutions timed right before), the utilisation (model FLOP/s over the
conv peak), the peak memory and the machine. Each measurement runs in its own subprocess, so
its peak RSS (VmHWM, per process) is its own.

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
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Sequence

from crn_tf.precision import PRECISION_POLICIES
from crn_tf.quiet import quiet_start

PRECISIONS = {name: PRECISION_POLICIES[name] for name in ("fp32", "bf16", "fp16")}
"""--precision -> Keras dtype policy of the generator and VGG (None = float32)."""
COMPUTE_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MODES = ("generator", "train", "both")
PEAK_SHAPES = {
    # matmul n (n x n times n x n); 3x3 convs (height, width, in, out) at batch 1, the sizes of
    # the 256p model's heaviest layers.
    "full": {"matmul": 4096, "convs": ((64, 128, 1024, 1024), (128, 256, 512, 512))},
    "quick": {"matmul": 512, "convs": ((16, 32, 64, 64),)},
}
RESULT_PREFIX = "CRN_BENCH_RESULT "


class BenchError(ValueError):
    """A benchmark cannot run as asked; the message says why."""


@dataclasses.dataclass
class BenchConfig:
    """What to measure (the CLI's flags)."""

    preset: str = "256p"
    size: str | None = None
    width_multiplier: float = 1.0
    num_images: int | None = None
    precision: str = "fp32"
    xla: bool = False
    batch_size: int = 1
    runs: int = 5
    warmup: int = 1
    mode: str = "generator"
    low_memory: bool = False
    recompute: bool = False
    recompute_scope: str = "all"
    peak: str = "full"
    peak_runs: int = 3
    threads: int | None = None
    isolate: bool = True
    torch_python: str | None = None
    torch_script: str | None = None
    profile: bool = False
    memory_guard_gb: float = 1.0

    def validate(self) -> None:
        from crn_tf.model import PRESETS, parse_size

        if self.preset not in PRESETS:
            raise BenchError(f"unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        if self.size is not None:
            parse_size(self.size)
        if self.precision not in PRECISIONS:
            raise BenchError(f"unknown precision {self.precision!r}; choose one of {sorted(PRECISIONS)}")
        if self.mode not in MODES:
            raise BenchError(f"unknown mode {self.mode!r}; choose one of {MODES}")
        if self.peak not in (*PEAK_SHAPES, "off"):
            raise BenchError(f"--peak must be one of {(*PEAK_SHAPES, 'off')}, got {self.peak!r}")
        for name in ("batch_size", "runs", "peak_runs"):
            if getattr(self, name) < 1:
                raise BenchError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.width_multiplier <= 0:
            raise BenchError("--warmup must be >= 0 and --width-multiplier > 0")
        if self.low_memory and self.xla:
            raise BenchError("--low-memory runs eagerly, module by module; it cannot be combined with --xla")
        if self.recompute_scope not in ("generator", "all"):
            raise BenchError(f"--recompute-scope must be generator or all, got {self.recompute_scope!r}")
        if self.torch_python and (self.size is not None or self.width_multiplier != 1.0 or self.batch_size != 1
                                  or self.precision == "fp16" or self.num_images is not None):
            raise BenchError("the PyTorch peer only runs the presets as they are (full width, the preset's k, "
                             "batch 1) in fp32 or bf16")
        if self.low_memory and self.mode != "generator":
            raise BenchError("--low-memory is an inference path: use it with --mode generator")


# === Machine ===

def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_path(flags: set[str] | None = None) -> str:
    """Which bf16 matrix path the CPU has: AMX tiles, AVX-512 BF16 dot products only, or none."""
    flags = cpu_flags() if flags is None else flags
    if "amx_bf16" in flags:
        return "AMX (amx_bf16" + (", avx512_bf16)" if "avx512_bf16" in flags else ")")
    if "avx512_bf16" in flags:
        return "AVX-512 BF16 only (no AMX)"
    return "none (bf16 is converted to fp32)"


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """Device, CPU, bf16 path, TensorFlow/Keras versions and threads (imports TensorFlow)."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"GPU: {details.get('device_name', gpus[0].name)}" + (f" (x{len(gpus)})" if len(gpus) > 1 else "")
    else:
        device = f"CPU: {cpu_model()}"
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "device": device,
        "cpu": cpu_model(),
        "cpu_bf16_path": bf16_path(),
        "cores_available": affinity,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or affinity,
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or affinity,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
    }


# === Memory ===

def _proc_status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (e.g. "VmHWM"), in bytes; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int | None:
    """This process's peak resident set (VmHWM), in bytes; getrusage where /proc is missing."""
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        return None


def current_rss_bytes() -> int | None:
    """This process's resident set now (VmRSS), in bytes."""
    return _proc_status_bytes("VmRSS")


def gpu_memory_reset() -> None:
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")


def gpu_peak_bytes() -> int | None:
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return None
    return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])


def available_memory_bytes() -> int | None:
    """MemAvailable of the machine (/proc/meminfo), in bytes."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def start_memory_guard(min_available_bytes: int, interval: float = 0.05) -> None:
    """Ends this process (exit 3, one line on stderr) if the machine's available memory falls
    below `min_available_bytes`: a benchmark must not push a shared machine into the OOM killer."""
    import threading

    def watch():
        while True:
            available = available_memory_bytes()
            if available is not None and available < min_available_bytes:
                rss = current_rss_bytes() or 0
                print(f"error: stopped by the memory guard: the machine had {available / 2**30:.2f} GiB available "
                      f"(< {min_available_bytes / 2**30:.2f}) at this process's RSS {rss / 2**30:.2f} GiB",
                      file=sys.stderr, flush=True)
                os._exit(3)
            time.sleep(interval)

    threading.Thread(target=watch, daemon=True, name="memory-guard").start()


# === Timing ===

def summarize_times(times: Sequence[float]) -> dict[str, Any]:
    """Median and spread (min, max, (max - min) / median) of timed runs, in seconds."""
    median = statistics.median(times)
    return {
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "spread": (max(times) - min(times)) / median if median > 0 else 0.0,
        "times_s": list(times),
    }


def time_runs(run: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    """Wall-clock seconds of `runs` calls of `run` after `warmup` untimed ones. `run` must
    return only when its work is done (read a scalar of the result back)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def _sync(tensor) -> None:
    """Waits for `tensor` (one element read back: no large copy, works on GPU streams)."""
    import tensorflow as tf

    tf.reshape(tensor, [-1])[0].numpy()


def measure_peaks(precision: str, shapes: str = "full", runs: int = 3) -> dict[str, Any]:
    """The device's own matmul and 3x3 convolution rates in `precision`, TFLOP/s.

    `conv_peak_tflops` is the best of the convolutions: the denominator of utilisation.
    """
    import tensorflow as tf

    dtype = COMPUTE_DTYPES[precision]
    spec = PEAK_SHAPES[shapes]
    generator = tf.random.Generator.from_seed(0)
    n = spec["matmul"]
    a = tf.cast(generator.normal((n, n)), dtype)
    b = tf.cast(generator.normal((n, n)), dtype)
    matmul = tf.function(lambda: tf.matmul(a, b))
    times = time_runs(lambda: _sync(matmul()), runs, warmup=1)
    median = statistics.median(times)
    result = {
        "precision": precision,
        "dtype": dtype,
        "matmul": {"n": n, "median_s": median, "tflops": 2 * n**3 / median / 1e12},
        "convs": [],
    }
    del a, b
    for height, width, cin, cout in spec["convs"]:
        x = tf.cast(generator.normal((1, height, width, cin)), dtype)
        kernel = tf.cast(generator.normal((3, 3, cin, cout), stddev=0.02), dtype)
        conv = tf.function(lambda: tf.nn.conv2d(x, kernel, 1, "SAME"))
        times = time_runs(lambda: _sync(conv()), runs, warmup=1)
        median = statistics.median(times)
        flops = 2 * height * width * 9 * cin * cout
        result["convs"].append(
            {"shape": [1, height, width, cin, cout], "median_s": median, "tflops": flops / median / 1e12}
        )
    result["matmul_peak_tflops"] = result["matmul"]["tflops"]
    result["conv_peak_tflops"] = max(c["tflops"] for c in result["convs"])
    return result


# === The model ===

def build_generator(config: BenchConfig):
    """The benchmarked CRN (built, random Glorot weights) in the configured precision."""
    from crn_tf.model import parse_size
    from crn_tf.training.modules import build_model

    mixed = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}[config.precision]
    size = None if config.size is None else "x".join(map(str, parse_size(config.size)))
    return build_model(
        config.preset, num_classes=19, size=size, width_multiplier=config.width_multiplier,
        num_images=config.num_images, mixed_precision=mixed, recompute=config.recompute,
    )


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
    """Times the generator's forward pass (a tf.function, or the eager low-memory path)."""
    import tensorflow as tf

    from crn_tf import flops, inference

    rss_before = current_rss_bytes()
    model = build_generator(config)
    # The layout in the compute dtype, as a demo would hand it over (one-hot is exact in bf16).
    layout = random_layout(model, config.batch_size, dtype=model.compute_dtype)
    traces = []
    if config.low_memory:
        forward = lambda: inference.low_memory_forward(model, layout)  # noqa: E731
    else:

        def generate(x):
            traces.append(1)  # Python side effect: runs only while tracing
            return model(x, training=False)

        compiled = tf.function(generate, jit_compile=config.xla)
        forward = lambda: compiled(layout)  # noqa: E731
    gpu_memory_reset()
    times = time_runs(lambda: _sync(forward()), config.runs, config.warmup)
    peak_rss, gpu_peak = peak_rss_bytes(), gpu_peak_bytes()
    per_layout = flops.generator_flops(model)
    summary = summarize_times(times)
    profile = _profile(lambda: _sync(forward())) if config.profile else None
    return {
        "what": "generator",
        "model": model_description(model),
        "path": "low-memory (eager, banded)" if config.low_memory else ("tf.function + XLA" if config.xla else "tf.function"),
        **summary,
        "layouts_per_s": config.batch_size / summary["median_s"],
        "images_per_s": config.batch_size * model.num_images / summary["median_s"],
        "flops_per_layout": per_layout,
        "achieved_tflops": per_layout * config.batch_size / summary["median_s"] / 1e12,
        "traces": len(traces) if not config.low_memory else None,
        "rss_before_model_bytes": rss_before,
        "peak_rss_bytes": peak_rss,
        "gpu_peak_bytes": gpu_peak,
        "profile": profile,
    }


def measure_train(config: BenchConfig) -> dict[str, Any]:
    """Times full training steps: generator + VGG-19 loss + backward + Adam (CRNTrainer's step)."""
    import tensorflow as tf

    from crn_tf import flops
    from crn_tf.losses import CRNLoss
    from crn_tf.model import PRESET_TRAINING, PRESETS
    from crn_tf.training.loop import CRNTrainer
    from crn_tf.vgg import VGG19Features

    rss_before = current_rss_bytes()
    model = build_generator(config)
    policy = PRECISIONS[config.precision]
    vgg = VGG19Features(None, dtype=policy) if policy else VGG19Features(None)  # values do not change the cost
    features = vgg
    if config.recompute and config.recompute_scope == "all":
        from crn_tf.recompute import RecomputedVGGFeatures

        features = RecomputedVGGFeatures(vgg)  # the loss's VGG too, segment by segment
    preset_k = PRESETS[config.preset]["num_images"]
    diversity = PRESET_TRAINING[config.preset]["diversity"] if model.num_images == preset_k else model.num_images > 1
    layer_weights = ("256p" if diversity else "1024p" if config.preset == "1024p" else "512p")
    loss = CRNLoss(features, layer_weights=layer_weights, diversity=diversity)
    mixed = {"fp32": "off", "bf16": "bf16", "fp16": "fp16"}[config.precision]
    trainer = CRNTrainer(model, loss, global_batch_size=config.batch_size, mixed_precision=mixed, xla=config.xla)
    layout = random_layout(model, config.batch_size)
    height, width = model.output_size
    image = tf.random.stateless_uniform((config.batch_size, height, width, 3), (0, 2), 0.0, 255.0)
    iterator = iter(tf.data.Dataset.from_tensors((image, layout)).repeat())
    gpu_memory_reset()
    step = lambda: _sync(trainer.train_step(iterator)[0])  # noqa: E731
    times = time_runs(step, config.runs, config.warmup)
    peak_rss, gpu_peak = peak_rss_bytes(), gpu_peak_bytes()
    step_flops = flops.train_step_flops(model)
    summary = summarize_times(times)
    profile = _profile(step) if config.profile else None
    return {
        "what": "train",
        "model": model_description(model),
        "loss": {"diversity": diversity, "layer_weights": layer_weights, "vgg_weights": "random (cost only)"},
        "recompute": ("generator modules + VGG segments" if config.recompute_scope == "all" else "generator modules")
        if config.recompute else "off",
        "path": "tf.function step (CRNTrainer)" + (", XLA forward+backward" if config.xla else ""),
        **summary,
        "steps_per_s": 1.0 / summary["median_s"],
        "layouts_per_s": config.batch_size / summary["median_s"],
        "flops_per_layout": step_flops.total,
        "flops_breakdown": step_flops.as_dict(),
        "achieved_tflops": step_flops.total * config.batch_size / summary["median_s"] / 1e12,
        "traces": trainer.trace_count,
        "rss_before_model_bytes": rss_before,
        "peak_rss_bytes": peak_rss,
        "gpu_peak_bytes": gpu_peak,
        "profile": profile,
    }


def _profile(run: Callable[[], Any]) -> dict[str, Any]:
    from crn_tf.profiling import profile_ops

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
        start_memory_guard(int(config.memory_guard_gb * 2**30))
    if part == "peak":
        result = measure_peaks(config.precision, config.peak, config.peak_runs)
    elif part == "generator":
        result = measure_generator(config)
    elif part == "train":
        result = measure_train(config)
    else:
        raise BenchError(f"unknown benchmark part {part!r}")
    result["machine"] = machine_info()
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


def run_torch_peer(config: BenchConfig) -> dict[str, Any]:
    """Times the PyTorch peer (shared/peers/torch_crn.py) with another Python that has torch."""
    script = config.torch_script or os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "shared", "peers", "torch_crn.py")
    if not os.path.isfile(script):
        raise BenchError(f"{script}: no such file (pass --torch-script)")
    command = [config.torch_python, script, config.preset, config.precision, str(config.runs)]
    try:
        process = subprocess.run(command, capture_output=True, text=True)
    except OSError as error:
        raise BenchError(f"cannot run the PyTorch peer with {config.torch_python}: {error}") from error
    if process.returncode != 0:
        raise BenchError(f"the PyTorch peer failed (exit {process.returncode}): {process.stderr.strip()[-500:]}")
    line = process.stdout.strip().splitlines()[-1]
    median = float(line.split("median")[1].split()[0])
    return {"command": " ".join(command), "output": line, "median_s": median, "load_average": load_average()}


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
        conv_peak = max(report["peak"]["conv_peak_tflops"], report["peak_after"]["conv_peak_tflops"])
        matmul_peak = max(report["peak"]["matmul_peak_tflops"], report["peak_after"]["matmul_peak_tflops"])
        report["conv_peak_tflops"], report["matmul_peak_tflops"] = conv_peak, matmul_peak
        for part in parts:
            report[part]["utilisation_of_conv_peak"] = report[part]["achieved_tflops"] / conv_peak
            report[part]["utilisation_of_matmul_peak"] = report[part]["achieved_tflops"] / matmul_peak
    if "machine" not in report and "peak" in report:
        report["machine"] = report["peak"].pop("machine")
    report.get("peak", {}).pop("machine", None)
    report["machine"]["precision_policy"] = PRECISIONS[config.precision] or "float32"
    if config.torch_python:
        say("timing the PyTorch peer...")
        report["torch_peer"] = run_torch_peer(config)
        if "generator" in report:
            report["torch_peer"]["speedup_of_crn_tf"] = report["torch_peer"]["median_s"] / report["generator"]["median_s"]
    report["load_average_end"] = load_average()
    return report


# === Output ===

def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f} MB"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report."""
    config, machine = report["config"], report.get("machine", {})
    lines = [
        f"crn_tf benchmark  {report['date']}  load {report['load_average_start']} -> {report['load_average_end']}",
        f"machine: {machine.get('device')}; bf16 path: {machine.get('cpu_bf16_path')}; "
        f"TF {machine.get('tensorflow')}, Keras {machine.get('keras')}; threads intra {machine.get('intra_op_threads')} "
        f"inter {machine.get('inter_op_threads')} of {machine.get('cores_available')} cores; "
        f"policy {machine.get('precision_policy')}{', XLA' if config['xla'] else ''}",
    ]
    for key, when in (("peak", "before"), ("peak_after", "after")):
        peak = report.get(key)
        if not peak:
            continue
        convs = ", ".join(
            f"{'x'.join(map(str, c['shape'][1:3]))} {c['shape'][3]}->{c['shape'][4]}: {c['tflops']:.3f}" for c in peak["convs"]
        )
        lines.append(
            f"device peak {when} ({peak['dtype']}): matmul {peak['matmul']['n']}^3 {peak['matmul_peak_tflops']:.3f} "
            f"TFLOP/s; 3x3 conv {convs} TFLOP/s -> conv peak {peak['conv_peak_tflops']:.3f} TFLOP/s"
        )
    if "conv_peak_tflops" in report:
        lines.append(f"utilisation is against the higher conv peak: {report['conv_peak_tflops']:.3f} TFLOP/s")
    for part in ("generator", "train"):
        result = report.get(part)
        if not result:
            continue
        model = result["model"]
        lines.append(
            f"{part}: {model['output_size'][0]}x{model['output_size'][1]}, k={model['num_images']}, "
            f"widths {model['widths']}, {model['parameters']:,} parameters, batch {config['batch_size']}, {result['path']}"
            + (f", recompute: {result['recompute']}" if result.get("recompute", "off") != "off" else "")
        )
        rate = (
            f"{result['images_per_s']:.3f} images/s ({result['layouts_per_s']:.3f} layouts/s)"
            if part == "generator" else f"{result['steps_per_s']:.3f} steps/s ({result['layouts_per_s']:.3f} layouts/s)"
        )
        lines.append(
            f"  time: median {result['median_s']:.4f} s (min {result['min_s']:.4f}, max {result['max_s']:.4f}, "
            f"spread {100 * result['spread']:.1f}%) over {len(result['times_s'])} runs; {rate}"
        )
        flops_line = f"  FLOPs per layout: {result['flops_per_layout'] / 1e9:,.1f} GFLOP"
        if part == "train":
            b = result["flops_breakdown"]
            flops_line += (
                f" (generator fwd {b['generator_forward'] / 1e9:,.1f} + bwd {b['generator_backward'] / 1e9:,.1f}, "
                f"VGG fwd {b['vgg_forward'] / 1e9:,.1f} + bwd {b['vgg_backward'] / 1e9:,.1f})"
            )
        lines.append(flops_line)
        util = result.get("utilisation_of_conv_peak")
        lines.append(
            f"  achieved {result['achieved_tflops']:.3f} TFLOP/s"
            + (f" = {100 * util:.1f}% of the conv peak ({100 * result['utilisation_of_matmul_peak']:.1f}% of matmul)" if util is not None else "")
        )
        memory = f"  peak RSS {_mb(result['peak_rss_bytes'])} (before the model {_mb(result['rss_before_model_bytes'])})"
        if result.get("gpu_peak_bytes") is not None:
            memory += f"; GPU peak {_mb(result['gpu_peak_bytes'])}"
        if result.get("traces") is not None:
            memory += f"; traced {result['traces']}x"
        lines.append(memory + ("" if config["isolate"] else " (one process for all parts: cumulative)"))
        if result.get("profile"):
            from crn_tf.profiling import format_profile

            lines.append(format_profile(result["profile"]))
    peer = report.get("torch_peer")
    if peer:
        speedup = peer.get("speedup_of_crn_tf")
        lines.append(f"PyTorch peer: {peer['output']}" + (f"; crn_tf is {speedup:.2f}x its speed" if speedup else ""))
    lines.append("FLOPs: 2*H*W*kh*kw*cin*cout per convolution (crn_tf.flops); train step = generator fwd + bwd (~3x fwd) "
                 "+ VGG-19 to conv5_2 fwd on k+1 images + bwd into the k fakes")
    return "\n".join(lines)


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
    parser.add_argument("--preset", default="256p", help="256p, 512p or 1024p (default 256p)")
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
    parser.add_argument("--low-memory", action="store_true", help="generator: the banded low-memory inference path")
    parser.add_argument("--recompute", action="store_true",
                        help="train: recompute activations in the backward pass (gradient checkpointing)")
    parser.add_argument("--recompute-scope", default="all",
                        help="with --recompute: 'generator' (CRN(recompute=True) alone, as train.py --recompute) "
                             "or 'all' (also the loss's VGG, crn_tf.recompute; default)")
    parser.add_argument("--peak", default="full", help="device peak shapes: full, quick or off (default full)")
    parser.add_argument("--peak-runs", type=int, default=3)
    parser.add_argument("--threads", type=int, help="TensorFlow intra-op threads (default: TensorFlow's)")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="run every part in this process (faster; peak RSS is then cumulative)")
    parser.add_argument("--torch-python", help="a Python with torch: also time shared/peers/torch_crn.py")
    parser.add_argument("--torch-script", help="path of the PyTorch peer (default ../shared/peers/torch_crn.py)")
    parser.add_argument("--profile", action="store_true",
                        help="after timing, trace 2 runs with tf.profiler and list the top ops")
    parser.add_argument("--memory-guard-gb", type=float, default=1.0,
                        help="stop a measurement when the machine has less than this available (GiB; 0 = off)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-config", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = quiet_start(argv)
    args = build_parser().parse_args(argv)
    if args.worker:
        try:
            result = run_part(args.worker, BenchConfig(**json.loads(args.worker_config)))
        except (BenchError, ValueError) as error:  # a configuration the model rejects
            print(f"error: {error}", file=sys.stderr, flush=True)
            return 2
        print(RESULT_PREFIX + json.dumps(result), flush=True)
        return 0
    fields = {f.name for f in dataclasses.fields(BenchConfig)}
    config = BenchConfig(**{k: v for k, v in vars(args).items() if k in fields})
    progress = None if args.json else (lambda message: print(message, file=sys.stderr, flush=True))
    try:
        report = run_benchmark(config, progress)
    except (BenchError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
