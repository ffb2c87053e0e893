"""The benchmark's human-readable report (`python -m crn_tf.bench` without --json)."""
from __future__ import annotations

from typing import Any


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f} MiB"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report."""
    config, machine = report["config"], report.get("machine", {})
    lines = [
        f"crn_tf benchmark  {report['date']}  load {report['load_average_start']} -> {report['load_average_end']}",
        f"machine: {machine.get('device')}; CPU kind: {machine.get('cpu_kind')}; bf16 path: {machine.get('cpu_bf16_path')}; "
        f"TF {machine.get('tensorflow')}, Keras {machine.get('keras')}; threads intra {machine.get('intra_op_threads')} "
        f"inter {machine.get('inter_op_threads')} of {machine.get('cores_available')} cores; "
        f"policy {machine.get('precision_policy')}{', XLA' if config['xla'] else ''}",
    ]
    for key, when in (("peak", "before"), ("peak_after", "after")):
        peak = report.get(key)
        if not peak:
            continue
        convs = ", ".join(
            f"{c['batch']}x{c['height']}x{c['width']} {c['in_channels']}->{c['out_channels']} ({c['where']}, "
            f"{100 * c['share']:.0f}%): {c['tflops']:.3f}" for c in peak["convs"]
        )
        covered = ", ".join(f"{part} {100 * share:.0f}%" for part, share in peak["coverage"].items())
        lines.append(
            f"device peak {when} ({peak['dtype']}, {peak['mode']}: {peak['runs']} run(s) per shape): matmul "
            f"{peak['matmul']['n']}^3 {peak['matmul_peak_tflops']:.3f} TFLOP/s; the {peak['workload']}'s own 3x3 conv "
            f"shapes (batch x H x W, share of its conv FLOPs) {convs} TFLOP/s -> conv peak "
            f"{peak['conv_peak_tflops']:.3f} TFLOP/s; these shapes carry {covered} of the conv FLOPs"
        )
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
            + (f"; CPU time {result['cpu_median_s']:.2f} s per run ({result['cpu_median_s'] / result['median_s']:.2f} "
               f"cores busy)" if result.get("cpu_median_s") else "")
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
            + (f" = {100 * util:.1f}% {result['utilisation_note']}" if util is not None
               else f"; utilisation not given: {result.get('utilisation_note')}")
        )
        ab = result.get("ab")
        if ab:
            lines.append(
                f"  A/B in one process, alternating: plain median {ab['plain']['median_s']:.4f} s (min "
                f"{ab['plain']['min_s']:.4f}), banded {ab['banded']['median_s']:.4f} s (min {ab['banded']['min_s']:.4f}): "
                f"banded/plain = {ab['banded_over_plain']:.3f} (CPU time {ab['plain']['cpu_median_s']:.2f} / "
                f"{ab['banded']['cpu_median_s']:.2f} s = {ab['banded_over_plain_cpu']:.3f}); first calls (tracing "
                f"included, plain first) "
                f"{ab['first_call_s']['plain']:.3f} / {ab['first_call_s']['banded']:.3f} s"
            )
        memory = f"  peak RSS {_mb(result['peak_rss_bytes'])} (before the model {_mb(result['rss_before_model_bytes'])})"
        if ab:
            memory += " (both passes: the plain one's)"
        if result.get("gpu_peak_bytes") is not None:
            memory += f"; GPU peak {_mb(result['gpu_peak_bytes'])}"
        if result.get("traces") is not None:
            memory += f"; traced {result['traces']}x"
        lines.append(memory + ("" if config["isolate"] else " (one process for all parts: cumulative)"))
        if result.get("profile"):
            from crn_tf.bench.profiling import format_profile

            lines.append(format_profile(result["profile"]))
    for part, peer in (report.get("torch_peer") or {}).items():
        lines.append(f"PyTorch peer ({part}, load {peer['load_average'][0]} -> {peer['load_average'][1]}): "
                     f"{peer['output']}; crn_tf is {peer['speedup_of_crn_tf']:.2f}x its speed")
        lines += [f"  PyTorch peer: {line}" for line in peer["peaks"]]
    lines.append("FLOPs: 2*H*W*kh*kw*cin*cout per convolution (crn_tf.bench.flops); train step = generator fwd + bwd (~3x fwd) "
                 "+ VGG-19 to conv5_2 fwd on k+1 images + bwd into the k fakes")
    return "\n".join(lines)
