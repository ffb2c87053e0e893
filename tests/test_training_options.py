"""Training options: flags -> TrainOptions, auto defaults, printing, saving, resume checks."""
import json

import pytest

from crn_tf.training.callbacks import LossLog
from crn_tf.training.options import (
    PAPER_DEFAULTS,
    SMOKE_DATA,
    SMOKE_DEFAULTS,
    TrainOptions,
    check_resume_compatible,
    format_options,
    load_options,
    parse_options,
    parse_train_modules,
    resolve_options,
    save_options,
)


def test_flags_parse_into_options():
    options = parse_options(["--data", "d", "--lr", "2e-4", "--width-multiplier", "1/16", "--xla",
                             "--mixed-precision", "bf16", "--train-modules", "last2", "--batch-size", "4"])
    assert options.data == "d" and options.lr == pytest.approx(2e-4) and options.width_multiplier == 0.0625
    assert options.xla and options.mixed_precision == "bf16" and options.batch_size == 4
    assert parse_options([]) == TrainOptions()


def test_no_data_means_the_small_default_run_and_data_means_the_paper():
    smoke = resolve_options(TrainOptions())
    assert smoke.data == SMOKE_DATA and smoke.val_data == SMOKE_DATA
    assert (smoke.size, smoke.width_multiplier, smoke.vgg_weights) == ("64x128", 1 / 16, "random")
    paper = resolve_options(TrainOptions(data="cityscapes"))
    assert paper.vgg_weights == "imagenet" and paper.epochs == 200 and paper.width_multiplier == 1.0
    assert paper.lr == 1e-4 and paper.batch_size == 1 and paper.preset == "256p" and paper.size is None
    assert paper.run_dir == "runs/256p"
    assert (smoke.epochs, smoke.train_modules, paper.train_modules) == (12, "all", "all")
    assert paper.photo_resize == smoke.photo_resize == "matlab-bicubic"
    assert (paper.mixed_precision, paper.xla, paper.recompute, paper.vgg_pooling) == ("off", False, False, "avg")
    assert (paper.layer_weights, paper.init_from, paper.num_images) == ("original", None, None)  # k: the preset's
    # What the user sets wins over either table.
    assert resolve_options(TrainOptions(epochs=3)).epochs == 3
    assert set(SMOKE_DEFAULTS) == set(PAPER_DEFAULTS)


@pytest.mark.parametrize("preset, epochs, train_modules", [("256p", 200, "all"), ("512p", 20, "all"),
                                                            ("1024p", 5, "last2")])
def test_paper_schedule_per_preset_is_the_release_scripts(preset, epochs, train_modules):
    """demo_256p.py `for epoch in range(1,201)`, demo_512p.py `range(1,21)`, demo_1024p.py `range(1,6)`;
    demo_1024p.py trains only `g_512` and `g_1024` (its G_opt var_list), the others every `g_` variable."""
    paper = resolve_options(TrainOptions(data="cityscapes", preset=preset))
    assert (paper.epochs, paper.train_modules) == (epochs, train_modules)
    mine = resolve_options(TrainOptions(data="cityscapes", preset=preset, epochs=7, train_modules="all"))
    assert (mine.epochs, mine.train_modules) == (7, "all")  # explicit options win
    assert parse_options(["--photo-resize", "area"]).photo_resize == "area"
    with pytest.raises(SystemExit):
        parse_options(["--photo-resize", "bicubic"])


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--train-modules", "first3"], "--train-modules must be"),
    (["--size", "64by128"], "HEIGHTxWIDTH"),
])
def test_bad_values_are_one_line_errors(flags, message):
    with pytest.raises(ValueError, match=message):
        resolve_options(parse_options(flags))


def test_train_modules_spec():
    assert parse_train_modules("all") == ("all", None)
    assert parse_train_modules("last2") == ("last", 2)
    assert parse_train_modules("512, 1024") == ("heights", (512, 1024))


def test_options_listing_marks_non_defaults_and_round_trips(tmp_path):
    options = resolve_options(TrainOptions(data="d", lr=3e-4, run_dir=str(tmp_path / "run")))
    text = format_options(options)
    lr_line = next(line for line in text.splitlines() if line.strip().startswith("lr:"))
    seed_line = next(line for line in text.splitlines() if line.strip().startswith("seed:"))
    assert "[default: 0.0001]" in lr_line and "default" not in seed_line
    save_options(options, options.run_dir)
    assert load_options(options.run_dir) == options
    assert json.loads((tmp_path / "run" / "options.json").read_text())["lr"] == 3e-4
    assert (tmp_path / "run" / "opt.txt").read_text().strip() == text.strip()
    assert load_options(tmp_path / "elsewhere") is None


def test_resume_needs_the_same_model_options(tmp_path):
    saved = resolve_options(TrainOptions(data="d", run_dir=str(tmp_path)))
    check_resume_compatible(saved, resolve_options(TrainOptions(data="d", run_dir=str(tmp_path), epochs=300)))
    with pytest.raises(ValueError, match=r"--preset 256p -> 512p"):
        check_resume_compatible(saved, resolve_options(TrainOptions(data="d", run_dir=str(tmp_path), preset="512p")))


def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys):
    from crn_tf.training.cli import main

    code = main(["--data", str(tmp_path / "missing"), "--run-dir", str(tmp_path / "run"), "--strategy", "default"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[0].startswith("crn-train: error:") and "Traceback" not in "\n".join(err)
    assert any("missing" in line for line in err)
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "2048p"])
    assert exit_info.value.code == 2


def test_loss_log(tmp_path):
    log = LossLog(tmp_path / "loss_log.txt")
    log.write(10, 0, 2.5, 3.0)
    log.write(20, 1, 1.25, 3.5)
    assert [(r["step"], r["epoch"], r["loss"]) for r in log.read()] == [(10, 0, 2.5), (20, 1, 1.25)]



def test_recompute_and_pooling_options_reach_the_loss(rng):
    import numpy as np

    from crn_tf.loss.recompute import RecomputedVGGFeatures
    from crn_tf.training.run import build_loss

    max_pooled = build_loss(resolve_options(TrainOptions(vgg_weights="random", vgg_pooling="max")), diversity=False)
    plain = build_loss(resolve_options(TrainOptions(vgg_weights="random")), diversity=False)
    recomputed = build_loss(resolve_options(TrainOptions(vgg_weights="random", recompute=True)), diversity=False)
    assert max_pooled._features.pooling == "max" and plain._features.pooling == "avg"
    assert plain.layer_weights_name == "512p"  # --layer-weights original: the release's single-image constants
    auto = build_loss(resolve_options(TrainOptions(vgg_weights="random", layer_weights="auto")), diversity=True)
    assert auto.auto and auto.diversity
    assert isinstance(recomputed._features, RecomputedVGGFeatures)
    recomputed._features.features.set_weights(plain._features.get_weights())
    real = rng.uniform(0, 255, (1, 32, 64, 3)).astype(np.float32)
    fake = rng.uniform(0, 255, (1, 1, 32, 64, 3)).astype(np.float32)
    assert float(recomputed(real, fake)) == pytest.approx(float(plain(real, fake)), rel=1e-5)
