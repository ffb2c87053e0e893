"""The benchmark's FLOP counts (against hand computation), its helpers and its CLI (no timing assertions)."""
import json

import pytest

from crn_tf.bench import flops, peaks, timing
from crn_tf.bench import run as bench
from crn_tf.core import machine
from crn_tf.nn.model import CRN


def test_generator_flops_by_hand():
    # 2 modules at 4x8 and 8x16, widths 6 and 5, 3 classes + void = 4 channels, k = 2.
    model = CRN(output_size=(8, 16), num_classes=3, num_images=2, widths=(6, 5))
    expected = (
        2 * 4 * 8 * 9 * 4 * 6  # g_4/conv1: layout (4 ch) -> 6
        + 2 * 4 * 8 * 9 * 6 * 6  # g_4/conv2
        + 2 * 8 * 16 * 9 * (6 + 4) * 5  # g_8/conv1: [upsampled 6 + layout 4] -> 5
        + 2 * 8 * 16 * 9 * 5 * 5  # g_8/conv2
        + 2 * 8 * 16 * 1 * 5 * 6  # g_8/conv100: 1x1, 5 -> 3k = 6
    )
    assert flops.generator_flops(model) == expected
    names = [c.name for c in flops.model_convs(model)]
    assert names == ["g_4/conv1", "g_4/conv2", "g_8/conv1", "g_8/conv2", "g_8/conv100"]


def test_vgg_flops_by_hand_and_against_the_vgg_module():
    from crn_tf.loss.vgg import CONV_LAYERS

    convs = flops.vgg19_convs(32, 64)
    assert [c.name.split("/")[1] for c in convs] == [name for name, _, _ in CONV_LAYERS]
    assert [c.out_channels for c in convs] == [filters for _, _, filters in CONV_LAYERS]
    assert flops.vgg19_flops(32, 64, "conv1_2") == 2 * 32 * 64 * 9 * (3 * 64 + 64 * 64)
    assert flops.vgg19_flops(32, 64, "conv2_1") - flops.vgg19_flops(32, 64, "conv1_2") == 2 * 16 * 32 * 9 * 64 * 128
    # SAME average pooling rounds odd sizes up: 6x10 -> 3x5 -> 2x3.
    conv3_1 = flops.vgg19_convs(6, 10, "conv3_1")[-1]
    assert (conv3_1.height, conv3_1.width) == (2, 3)
    with pytest.raises(ValueError, match="unknown VGG-19 layer"):
        flops.vgg19_convs(32, 64, "fc6")


def test_train_step_flops_composition():
    model = CRN(output_size=(32, 64), num_images=3, widths=(4, 4, 4, 4))
    step = flops.train_step_flops(model)
    forward = flops.generator_flops(model)
    first = flops.model_convs(model)[0].flops
    vgg = flops.vgg19_flops(32, 64)
    assert step.generator_forward == forward
    assert step.generator_backward == 2 * forward - first
    assert step.vgg_forward == 4 * vgg  # k fakes + the real image
    assert step.vgg_backward == 3 * vgg  # into the k fakes only
    assert step.total == sum(v for k, v in step.as_dict().items() if k != "total")


def test_paper_256p_flops():
    model = CRN.from_preset("256p")
    # 2.15 TFLOP per forward; the 256x512 modules (d = 512, input 512 + 20) are the largest part.
    assert 2.14e12 < flops.generator_flops(model) < 2.16e12
    assert 8.2e12 < flops.train_step_flops(model).total < 8.4e12


def test_bf16_path_and_cpu_kind_from_flags():
    assert machine.bf16_path({"amx_bf16", "avx512_bf16"}).startswith("AMX")
    assert machine.bf16_path({"avx512_bf16", "avx512f"}) == "AVX-512 BF16 only (no AMX)"
    assert machine.bf16_path({"avx2"}).startswith("none")
    assert machine.cpu_kind({"avx512_bf16"}, "AMD EPYC") == "AMD EPYC (AVX-512 BF16, no AMX)"
    assert machine.cpu_kind({"amx_bf16", "avx512_bf16"}, "Intel(R) Xeon(R) Processor") == "Intel(R) Xeon(R) Processor (AMX)"


def test_peak_shapes_are_the_workloads_heaviest():
    # 256p, k = 9: the generator's conv FLOPs by shape, computed here from the widths.
    model = CRN.from_preset("256p")
    convs = [c for c in flops.model_convs(model) if c.kernel == 3]
    total = sum(c.flops for c in convs)
    g256_conv1 = 2 * 256 * 512 * 9 * (512 + 20) * 512  # [upsampled 512 + layout 20] -> 512
    g256_conv2 = 2 * 256 * 512 * 9 * 512 * 512
    quick = peaks.peak_shapes(model, "generator", 1, "quick")
    assert [s.key for s in quick] == [(1, 256, 512, 532, 512), (1, 256, 512, 512, 512)]
    assert quick[0].share == pytest.approx(g256_conv1 / total) and quick[0].where == "g_256/conv1"
    assert sum(s.share for s in quick) >= 0.5
    train = peaks.peak_shapes(model, "train", 1, "quick")  # the training step's shapes reach 50% too
    assert peaks.coverage(train, peaks.workload_convs(model, "train")) >= 0.5
    full = peaks.peak_shapes(model, "generator", 1, "full")
    assert full[:2] == quick and 0.75 <= sum(s.share for s in full) and len(full) <= 6
    assert peaks.coverage(quick, peaks.workload_convs(model, "generator")) == pytest.approx(
        (g256_conv1 + g256_conv2) / total)


def test_training_workload_weights_generator_3x_and_vgg_on_k_plus_1_images():
    model = CRN(output_size=(32, 64), num_images=3, widths=(4, 4, 4, 4))
    work = peaks.workload_convs(model, "train", batch_size=2)
    generator = [(c, b, w) for c, b, w in work if c.name.startswith("g_")]
    vgg = [(c, b, w) for c, b, w in work if c.name.startswith("vgg/")]
    assert all(b == 2 and w == 3 * 2 * c.flops for c, b, w in generator)
    assert all(b == 2 * 4 and w == pytest.approx(c.flops * 8 * 7 / 4) for c, b, w in vgg)  # (2k + 1) / (k + 1)
    # The 1x1 output conv is no 3x3 peak shape.
    assert not any(c.kernel == 1 for c, _, _ in work)


def test_utilisation_only_where_a_peak_backs_it():
    peak = {"conv_peak_tflops": 2.0, "coverage": {"generator": 0.6, "train": 0.3}}
    assert peaks.utilisation(1.0, [peak, dict(peak, conv_peak_tflops=1.6)], "generator") == (
        0.5, "of the conv peak 2.000 TFLOP/s")  # against the higher peak
    util, why = peaks.utilisation(1.0, [None, None], "generator")
    assert util is None and "no peak measured" in why
    util, why = peaks.utilisation(1.0, [peak], "train")
    assert util is None and "only 30%" in why and "not representative" in why
    util, why = peaks.utilisation(2.5, [peak], "generator")  # faster than the "peak": the peak cannot be right
    assert util is None and "above the measured peak" in why


def test_summarize_times():
    summary = timing.summarize_times([2.0, 1.0, 4.0])
    assert summary["median_s"] == 2.0 and summary["min_s"] == 1.0 and summary["max_s"] == 4.0
    assert summary["spread"] == pytest.approx(1.5)


@pytest.mark.slow
def test_cli_json_on_a_tiny_config(capsys):
    code = bench.main([
        "--size", "32x64", "--width-multiplier", "0.0078125", "--num-images", "2", "--mode", "both",
        "--runs", "2", "--warmup", "0", "--peak", "quick", "--peak-runs", "1", "--no-isolate", "--json",
    ])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    machine = report["machine"]
    for key in ("device", "cpu_bf16_path", "tensorflow", "intra_op_threads", "precision_policy"):
        assert key in machine
    assert report["peak"]["conv_peak_tflops"] > 0 and report["peak_after"]["matmul_peak_tflops"] > 0
    assert report["conv_peak_tflops"] == max(report["peak"]["conv_peak_tflops"], report["peak_after"]["conv_peak_tflops"])
    generator, train = report["generator"], report["train"]
    model = CRN(output_size=(32, 64), num_images=2, widths=generator["model"]["widths"])
    assert generator["flops_per_layout"] == flops.generator_flops(model)
    assert train["flops_per_layout"] == flops.train_step_flops(model).total
    for result in (generator, train):
        assert len(result["times_s"]) == 2 and result["min_s"] <= result["median_s"] <= result["max_s"]
        assert result["peak_rss_bytes"] > 0 and result["traces"] == 1
        util = result["utilisation_of_conv_peak"]
        assert (util is not None and 0 < util <= 1) or "above the measured peak" in result["utilisation_note"]
    for key in ("peak", "peak_after"):  # the peak was taken on the workloads' own shapes
        assert report[key]["coverage"]["generator"] >= 0.5 and report[key]["coverage"]["train"] >= 0.5
    assert generator["images_per_s"] == pytest.approx(2 * generator["layouts_per_s"])
    # The loss train.py builds for 256p at k = 2: the diversity loss with the release's 256p constants.
    assert (train["loss"]["diversity"], train["loss"]["layer_weights"]) == (True, "256p")


@pytest.mark.slow
def test_generator_runs_in_each_precision_of_the_table(capsys):
    # fp16 has an inference policy (kernels stored in float16) like bf16; it used to stop with a KeyError.
    for precision, policy in (("fp16", "float16"), ("bf16", "bfloat16"), ("fp32", "float32")):
        code = bench.main(["--size", "32x64", "--width-multiplier", "1/128", "--precision", precision, "--runs", "1",
                           "--warmup", "0", "--peak", "off", "--no-isolate", "--json"])
        assert code == 0
        report = json.loads(capsys.readouterr().out)
        assert report["machine"]["precision_policy"] == policy
        assert report["generator"]["model"]["dtype_policy"] == policy


def test_cli_rejects_bad_options(capsys):
    assert bench.main(["--precision", "int8"]) == 2
    assert "unknown precision 'int8'" in capsys.readouterr().err
    assert bench.main(["--mode", "train", "--low-memory"]) == 2
    assert "--low-memory" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_isolated_worker_reports_its_own_peak_rss_and_one_line_errors(capsys):
    # Each measurement runs in its own process: its VmHWM is its own, errors come back as one line.
    code = bench.main(["--size", "32x64", "--width-multiplier", "1/128", "--runs", "1", "--warmup", "0",
                       "--peak", "off", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["generator"]["peak_rss_bytes"] > report["generator"]["rss_before_model_bytes"] > 0
    assert report["generator"]["utilisation_of_conv_peak"] is None  # no peak: no percentage
    assert "utilisation not given: no peak measured" in bench.format_report(report)
    assert bench.main(["--size", "24x64", "--runs", "1", "--peak", "off"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: output height 24 is not 4 times a power of two")
