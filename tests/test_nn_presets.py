"""The preset table (`crn_tf.nn.presets`) against CRN_FACTS.md, and every reader of it agreeing with it:
`CRN.from_preset`, train's options and loss, `CRNLoss`'s default, the benchmark and the public views."""
import pytest

from crn_tf.nn.presets import (
    DEFAULT_PRESET,
    PRESET_TABLE,
    SMALL_DEFAULT,
    get_preset,
    release_layer_weights,
    uses_diversity,
)

SINGLE = (1, 1 / 2.6, 1 / 4.8, 1 / 3.7, 1 / 5.6, 10 / 1.5)
DIVERSE = (1, 1 / 1.6, 1 / 2.3, 1 / 1.8, 1 / 2.8, 10 / 0.8)
FACTS = {
    # CRN_FACTS.md: output size, modules, k, loss, initialisation, trained modules, epochs
    # (demo_256p.py range(1,201), demo_512p.py range(1,21), demo_1024p.py range(1,6)), parameters.
    "256p": {"size": (256, 512), "modules": 7, "k": 9, "diversity": True, "weights": DIVERSE, "init_from": None,
             "train_modules": "all", "epochs": 200, "parameters": 97_875_483},
    "512p": {"size": (512, 1024), "modules": 8, "k": 1, "diversity": False, "weights": SINGLE, "init_from": "256p",
             "train_modules": "all", "epochs": 20, "parameters": 98_622_851},
    "1024p": {"size": (1024, 2048), "modules": 9, "k": 1, "diversity": False, "weights": SINGLE, "init_from": "512p",
              "train_modules": "last2", "epochs": 5, "parameters": 98_674_531},
}


def facts_width(height):
    """CRN_FACTS.md: module height 4..64 -> 1024, 128 and 256 -> 512, 512 -> 128, 1024 -> 32."""
    return {128: 512, 256: 512, 512: 128, 1024: 32}.get(height, 1024)


def count_parameters(widths, k, channels=20):
    """By hand: per module two bias-free 3x3 convs and two layer norms (gamma, beta); M_i (i > 0) reads
    the previous features plus the layout; the last features go through a 1x1 conv with bias to 3k."""
    total, previous = 0, 0
    for width in widths:
        total += 9 * (previous + channels) * width + 9 * width * width + 4 * width
        previous = width
    return total + previous * 3 * k + 3 * k


@pytest.mark.parametrize("name", list(FACTS))
def test_every_preset_is_the_papers(name):
    row, facts = PRESET_TABLE[name], FACTS[name]
    assert row.name == name and row.output_size == facts["size"] and row.num_classes == 19
    assert len(row.widths) == facts["modules"]
    assert row.widths == tuple(facts_width(4 * 2**i) for i in range(facts["modules"]))
    assert (row.num_images, row.diversity) == (facts["k"], facts["diversity"])
    assert row.layer_weights == pytest.approx(facts["weights"], rel=1e-15)
    assert (row.init_from, row.train_modules, row.epochs) == (facts["init_from"], facts["train_modules"], facts["epochs"])
    assert count_parameters(row.widths, row.num_images) == facts["parameters"]


def test_table_order_default_and_unknown_names():
    assert list(PRESET_TABLE) == ["256p", "512p", "1024p"]  # the order the original trained them
    assert DEFAULT_PRESET == "256p" and get_preset("512p") is PRESET_TABLE["512p"]
    with pytest.raises(ValueError, match=r"unknown preset '2048p'; choose one of \['1024p', '256p', '512p'\]"):
        get_preset("2048p")


def test_small_default_is_the_embedded_run():
    """docs/demo.md: the 256p generator at 64x128 (5 modules), every width x1/16, k = 1, 12 epochs, random VGG."""
    assert (SMALL_DEFAULT.output_size, SMALL_DEFAULT.size) == ((64, 128), "64x128")
    assert (SMALL_DEFAULT.width_multiplier, SMALL_DEFAULT.num_images, SMALL_DEFAULT.epochs) == (1 / 16, 1, 12)
    assert (SMALL_DEFAULT.train_modules, SMALL_DEFAULT.vgg_weights) == ("all", "random")

    from crn_tf.training.modules import build_model
    from crn_tf.training.options import SMOKE_DEFAULTS, TrainOptions, resolve_options

    smoke = resolve_options(TrainOptions())
    assert (smoke.preset, smoke.size, smoke.width_multiplier, smoke.num_images) == ("256p", "64x128", 1 / 16, 1)
    assert (smoke.epochs, smoke.train_modules, smoke.vgg_weights) == (12, "all", "random")
    assert SMOKE_DEFAULTS["size"] == "64x128"
    model = build_model(smoke.preset, 19, size=smoke.size, width_multiplier=smoke.width_multiplier,
                        num_images=smoke.num_images)
    assert (model.num_modules, model.widths, model.num_images) == (5, (64,) * 5, 1)  # 1024 / 16 at heights 4..64


def test_public_views_are_the_table_with_the_numbers_they_always_had():
    import crn_tf
    from crn_tf.loss.perceptual import PRESET_LAYER_WEIGHTS
    from crn_tf.nn.model import PRESET_TRAINING, PRESETS

    assert PRESETS == {
        "256p": {"output_size": (256, 512), "num_images": 9, "widths": (1024,) * 5 + (512,) * 2},
        "512p": {"output_size": (512, 1024), "num_images": 1, "widths": (1024,) * 5 + (512,) * 2 + (128,)},
        "1024p": {"output_size": (1024, 2048), "num_images": 1, "widths": (1024,) * 5 + (512,) * 2 + (128, 32)},
    }
    assert PRESET_TRAINING == {
        "256p": {"layer_weights": "256p", "diversity": True, "init_from": None, "train_modules": "all", "epochs": 200},
        "512p": {"layer_weights": "512p", "diversity": False, "init_from": "256p", "train_modules": "all", "epochs": 20},
        "1024p": {"layer_weights": "1024p", "diversity": False, "init_from": "512p", "train_modules": "last2",
                  "epochs": 5},
    }
    assert PRESET_LAYER_WEIGHTS == {"256p": DIVERSE, "512p": SINGLE, "1024p": SINGLE}
    assert crn_tf.PRESETS is PRESETS


@pytest.mark.parametrize("name", list(FACTS))
def test_from_preset_builds_the_table_row(name):
    from crn_tf.nn.model import CRN

    model = CRN.from_preset(name)  # not built: no weights
    row = PRESET_TABLE[name]
    assert (model.output_size, model.widths, model.num_images) == (row.output_size, row.widths, row.num_images)
    assert model.num_modules == FACTS[name]["modules"]
    with pytest.raises(ValueError, match="unknown preset '2048p'"):
        CRN.from_preset("2048p")


@pytest.mark.parametrize("name", list(FACTS))
def test_train_options_take_the_presets_schedule(name):
    from crn_tf.training.options import TrainOptions, build_parser, resolve_options

    paper = resolve_options(TrainOptions(data="cityscapes", preset=name))
    assert (paper.epochs, paper.train_modules) == (FACTS[name]["epochs"], FACTS[name]["train_modules"])
    assert TrainOptions().preset == DEFAULT_PRESET
    preset_flag = next(a for a in build_parser()._actions if "--preset" in a.option_strings)
    assert tuple(preset_flag.choices) == ("256p", "512p", "1024p")
    epochs_flag = next(a for a in build_parser()._actions if "--epochs" in a.option_strings)
    assert "200 at 256p, 20 at 512p, 5 at 1024p; 12 for the small default" in epochs_flag.help


# (preset, k) -> the loss the release's recipe gives: (diversity, the constants' name). The preset's
# own at its own k; with another k, diversity iff k > 1 and the constants of the first preset
# trained with that loss.
LOSS_CASES = [("256p", 9, True, "256p"), ("256p", 1, False, "512p"), ("512p", 1, False, "512p"),
              ("512p", 9, True, "256p"), ("1024p", 1, False, "1024p"), ("1024p", 2, True, "256p")]


@pytest.mark.parametrize("preset, k, diversity, weights", LOSS_CASES)
def test_train_bench_and_crnloss_build_the_same_loss(preset, k, diversity, weights):
    from crn_tf.bench.run import BenchConfig
    from crn_tf.bench.run import build_loss as bench_loss
    from crn_tf.loss.perceptual import CRNLoss
    from crn_tf.training.options import TrainOptions, resolve_options
    from crn_tf.training.run import build_loss as train_loss

    assert (uses_diversity(preset, k), release_layer_weights(diversity, preset)) == (diversity, weights)
    options = resolve_options(TrainOptions(data="d", preset=preset, num_images=k, vgg_weights="random"))
    trained = train_loss(options, diversity=uses_diversity(preset, k))
    benched = bench_loss(BenchConfig(preset=preset, num_images=k), k)
    expected = DIVERSE if diversity else SINGLE
    for loss in (trained, benched):
        assert (loss.diversity, loss.layer_weights_name) == (diversity, weights)
        assert loss.layer_weights.numpy() == pytest.approx(expected, rel=1e-6)
    # CRNLoss's own default is the same rule without a preset.
    default = CRNLoss(lambda images: {}, diversity=diversity)
    assert default.layer_weights_name == ("256p" if diversity else "512p")
