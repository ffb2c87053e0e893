"""The segmenter of crn_tf.evaluate.segmenter: network, loss, training (resume, bad data), SavedModel, scoring."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from crn_tf.data import find_examples, read_label
from crn_tf.evaluate.features import load_rgb
from crn_tf.evaluate.run import EvaluationOptions, evaluate
from crn_tf.evaluate.segmentation import SegmenterError, load_segmenter, resize_nearest
from crn_tf.evaluate.segmenter.__main__ import main as segmenter_main
from crn_tf.evaluate.segmenter.export import float32_copy
from crn_tf.evaluate.segmenter.network import (
    ConvNormReLU,
    SegmentationUNet,
    masked_cross_entropy,
)
from crn_tf.evaluate.segmenter.options import SegmenterOptions
from crn_tf.evaluate.segmenter.scoring import score_real_photos
from crn_tf.evaluate.segmenter.training import train_segmenter
from crn_tf.labels import CITYSCAPES, VOID, classes_to_onehot, resolve_label_set
from crn_tf.nn.model import CRN
from crn_tf.synthetic import write_synthetic_city
from crn_tf.weights.checkpoint import save_model

SIZE = (32, 64)
TINY = dict(size="32x64", batch_size=4, base_width=4, depth=3, progress=False)


def tiny_options(city, out, **changes) -> SegmenterOptions:
    return SegmenterOptions(data=str(city), out=str(out), **{**TINY, "steps": 2, **changes})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic city at 32x64 (8 train, 3 val scenes) and a segmenter trained on it for 2 steps (one epoch)."""
    root = tmp_path_factory.mktemp("segmenter")
    city = root / "city"
    write_synthetic_city(city, num_train=8, num_val=3, size=SIZE, seed=5)
    result = train_segmenter(tiny_options(city, root / "seg"))
    return {"root": root, "city": str(city), "out": str(root / "seg"), "result": result}


# === Network and loss ===
def test_network_maps_any_size_to_logits_and_round_trips_its_config():
    model = SegmentationUNet(num_classes=5, base_width=4, depth=3, norm="group")
    images = tf.random.uniform([2, 21, 38, 3], 0, 255)  # odd sizes: upsampling goes to each skip's size
    logits = model(images)
    assert logits.shape == (2, 21, 38, 5) and logits.dtype == tf.float32
    assert model.widths == [4, 8, 16]
    copy = SegmentationUNet.from_config(model.get_config())
    copy.build()
    copy.set_weights(model.get_weights())
    np.testing.assert_allclose(copy(images).numpy(), logits.numpy(), rtol=1e-5, atol=1e-5)
    assert copy.count_params() == model.count_params()
    block = ConvNormReLU(6, norm="batch", name="b")
    assert ConvNormReLU.from_config(block.get_config()).get_config() == block.get_config()
    bf16 = SegmentationUNet(num_classes=5, base_width=4, depth=2, dtype="mixed_bfloat16")
    assert bf16(images).dtype == tf.float32  # logits in float32 under the mixed policy
    exported = float32_copy(bf16)  # what the SavedModel runs
    assert exported.compute_dtype == "float32" and bf16.compute_dtype == "bfloat16"
    for a, b in zip(exported.weights, bf16.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(ValueError, match="norm must be one of"):
        SegmentationUNet(num_classes=5, norm="layer")


def test_parameter_count_of_the_default_network():
    # Conv3x3 without bias + norm (2 x width) per block, a 1x1 head with bias: counted by hand.
    widths, num_classes = [32, 64, 128, 256], 19
    count, channels = 0, 3
    for w in widths:  # encoder
        count += 9 * channels * w + 4 * w + 9 * w * w + 4 * w  # BN: gamma, beta, mean, variance
        channels = w
    for level in reversed(range(3)):  # decoder: concat(upsampled deeper, skip)
        w = widths[level]
        count += 9 * (widths[level + 1] + w) * w + 4 * w + 9 * w * w + 4 * w
    count += 32 * num_classes + num_classes
    model = SegmentationUNet(num_classes)
    model.build()
    assert model.count_params() == count == 1_951_699


def test_loss_ignores_void_pixels_as_numpy_does(rng):
    num_classes = 4
    classes = rng.integers(0, num_classes, (2, 5, 7))
    classes[rng.random(classes.shape) < 0.3] = VOID
    logits = rng.normal(0, 2, (2, 5, 7, num_classes)).astype(np.float32)
    layout = classes_to_onehot(classes, num_classes)
    # NumPy: log-softmax, the true class's term, mean over the non-void pixels only.
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    valid = classes != VOID
    terms = -np.take_along_axis(log_p, np.where(valid, classes, 0)[..., None], axis=-1)[..., 0]
    expected = terms[valid].mean()
    assert float(masked_cross_entropy(tf.constant(logits), tf.constant(layout))) == pytest.approx(expected, rel=1e-5)
    # Whatever the network says on void pixels changes nothing.
    changed = logits.copy()
    changed[~valid] = rng.normal(0, 50, changed[~valid].shape)
    assert float(masked_cross_entropy(tf.constant(changed), tf.constant(layout))) == pytest.approx(expected, rel=1e-5)
    # Class weights: a weighted mean over the non-void pixels.
    weights = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
    w = weights[np.where(valid, classes, 0)] * valid
    weighted = (terms * w).sum() / w.sum()
    assert float(masked_cross_entropy(tf.constant(logits), tf.constant(layout), tf.constant(weights))) == \
        pytest.approx(weighted, rel=1e-5)


# === The SavedModel and evaluation ===
def test_saved_model_passes_evaluates_signature_check_and_matches_the_network(world):
    out = world["out"]
    assert world["result"].step == 2 and world["result"].saved_model == os.path.join(out, "saved_model")
    segmenter = load_segmenter(os.path.join(out, "saved_model"))
    assert (segmenter.input_name, segmenter.input_dtype, segmenter.output_name) == ("images", "float32", "classes")
    assert load_segmenter(out).path == segmenter.path  # the output folder itself is accepted too
    assert segmenter.label_set.names == CITYSCAPES.names and segmenter.info["size"] == list(SIZE)
    assert segmenter.info["step"] == 2 and segmenter.info["parameters"] > 0
    assert segmenter.info["val"]["miou"] == world["result"].val_scores["miou"]
    # Every weight is in the SavedModel once (float32), the batch-norm statistics included.
    saved = tf.train.load_checkpoint(os.path.join(segmenter.path, "variables", "variables"))
    shapes = [s for name, s in saved.get_variable_to_shape_map().items() if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert sum(int(np.prod(s)) for s in shapes) == segmenter.info["parameters"]
    # Its classes are the argmax of its logits, at the images' own size (uint8 or float input).
    images = np.stack([load_rgb(p) for p in sorted(_photos(world["city"], "val"))])
    classes = segmenter.segment(images)
    assert classes.shape == (3,) + SIZE
    logits = segmenter.function(images=tf.constant(images, tf.float32))["logits"].numpy()
    np.testing.assert_array_equal(classes, logits.argmax(axis=-1))
    # The checkpointed network gives the same logits as the SavedModel.
    network = SegmentationUNet(19, base_width=4, depth=3)
    network.build()
    checkpoint = tf.train.Checkpoint(model=network)
    checkpoint.restore(tf.train.latest_checkpoint(os.path.join(out, "checkpoints"))).expect_partial()
    np.testing.assert_allclose(network(images.astype(np.float32), training=False).numpy(), logits, rtol=1e-4, atol=1e-4)


def _photos(city, split):
    return [e.image_path for e in find_examples(city, split=split, label_set=CITYSCAPES)]


def test_evaluate_scores_synthesized_and_real_images_with_it(world, tmp_path):
    crn = CRN(output_size=SIZE, widths=(8, 8, 8, 8))
    crn.build()
    checkpoint = save_model(crn, tmp_path / "crn", extra={"step": 1})
    report = evaluate(EvaluationOptions(data=world["city"], out=str(tmp_path / "eval"), checkpoint=checkpoint,
                                        segmenter=world["out"], segment_real=True, progress=False))
    segmentation = report["segmentation"]
    for scores in (segmentation, segmentation["real"]):
        assert 0 <= scores["miou"] <= 1 and 0 <= scores["pixel_accuracy"] <= 1
        assert len(scores["per_class_iou"]) == 19
    labels = [read_label(e.label_path, CITYSCAPES, e.label_format)
              for e in find_examples(world["city"], split="val", label_set=CITYSCAPES)]
    non_void = sum(int((resize_nearest(label, SIZE) != VOID).sum()) for label in labels)
    assert segmentation["pixels_scored"] == segmentation["real"]["pixels_scored"] == non_void
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert f"{100 * segmentation['miou']:.1f}" in markdown and f"{100 * segmentation['real']['miou']:.1f}" in markdown
    h, w = SIZE  # the protocol says how the segmented real photos were made
    assert f"- Size: {h}x{w} (synthesized images; real photos resized to {h}x{w} with PIL bicubic)" in markdown
    # `score` uses evaluate's protocol: the same real-photo figures.
    scored = score_real_photos(world["city"], world["out"], progress=False)
    assert scored["miou"] == pytest.approx(segmentation["real"]["miou"])
    assert scored["pixel_accuracy"] == pytest.approx(segmentation["real"]["pixel_accuracy"])


def test_a_segmenter_of_other_classes_is_refused(world):
    street5 = resolve_label_set(os.path.join(os.path.dirname(__file__), "..", "data", "label_sets", "street5.json"))
    with pytest.raises(SegmenterError, match=r"predicts the 19 classes of label set 'cityscapes'.*5 classes of 'street5'"):
        load_segmenter(world["out"]).check_label_set(street5)


def test_score_command_prints_and_writes_the_figures(world, tmp_path, capsys):
    path = tmp_path / "score.json"
    assert segmenter_main(["score", world["city"], "--segmenter", world["out"], "--json", str(path),
                           "--no-progress"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads(path.read_text())
    assert f"mIoU            {saved['miou']:.4f}" in printed and "per-class IoU:" in printed
    assert "  road " in printed and len(saved["confusion_matrix"]) == 19 and saved["size"] == list(SIZE)


def test_score_with_blur_scores_the_photos_gaussian_blurred(world, tmp_path, capsys):
    from PIL import Image, ImageFilter

    # The same photos blurred here with PIL (they are at the segmenter's size already) and scored as a
    # folder of synthesized images by crn-evaluate: the same figures as `score --blur 2`.
    folder = tmp_path / "blurred"
    folder.mkdir()
    for example in find_examples(world["city"], split="val", label_set=CITYSCAPES):
        with Image.open(example.image_path) as photo:
            assert photo.size == SIZE[::-1]
            photo.convert("RGB").filter(ImageFilter.GaussianBlur(2.0)).save(folder / f"{example.stem}.png")
    report = evaluate(EvaluationOptions(data=world["city"], out=str(tmp_path / "eval"), synthesized=str(folder),
                                        segmenter=world["out"], progress=False))
    blurred = score_real_photos(world["city"], world["out"], progress=False, blur=2.0)
    assert blurred["confusion_matrix"] == report["segmentation"]["confusion_matrix"]
    assert blurred["confusion_matrix"] != score_real_photos(world["city"], world["out"], progress=False)["confusion_matrix"]
    assert segmenter_main(["score", world["city"], "--segmenter", world["out"], "--blur", "2", "--no-progress"]) == 0
    assert "Gaussian blur sigma 2 px" in capsys.readouterr().out
    assert segmenter_main(["score", world["city"], "--segmenter", world["out"], "--blur", "-1"]) == 2
    assert "crn-segmenter: error: --blur must be a sigma >= 0 in pixels, got -1.0" in capsys.readouterr().err


# === Training: resume and bad data ===
def test_rerunning_resumes_from_the_checkpoint_and_matches_one_uninterrupted_run(world, tmp_path):
    options = dict(lr_schedule="constant", batch_size=2, save_every=3, val_split="none")  # 4 steps per epoch
    resumed_dir = tmp_path / "resumed"
    first = train_segmenter(tiny_options(world["city"], resumed_dir, steps=2, **options))
    assert first.step == 2 and first.resumed_from is None
    second = train_segmenter(tiny_options(world["city"], resumed_dir, steps=4, **options))
    assert second.resumed_from == 2 and second.step == 4
    assert sorted(n for n in os.listdir(resumed_dir / "checkpoints") if n.endswith(".index")) == \
        ["ckpt-3.index", "ckpt-4.index"]  # --keep-checkpoints 2: ckpt-2 is gone
    assert [row["step"] for row in _loss_log(resumed_dir)] == [2, 3, 4]  # logged where it saved
    whole = train_segmenter(tiny_options(world["city"], tmp_path / "whole", steps=4, **options))
    assert whole.resumed_from is None
    # Weights, Adam and the batch-norm statistics all came back: the same network as one run.
    assert len(whole.model.weights) > len(whole.model.trainable_weights)
    for a, b in zip(second.model.weights, whole.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    with pytest.raises(ValueError, match=r"other network options \(--base-width 4 -> 8\)"):
        train_segmenter(tiny_options(world["city"], resumed_dir, steps=8, base_width=8, **options))


def _first_photo(world):
    return load_rgb(sorted(_photos(world["city"], "val"))[0])[None]


def _loss_log(out):
    from crn_tf.training.callbacks import LossLog

    return LossLog(os.path.join(out, "loss_log.txt"), enabled=False).read()


def test_bad_data_fails_as_train_py_fails(world, tmp_path, capsys):
    from crn_tf.training.cli import main as train_main

    city = tmp_path / "city"
    shutil.copytree(world["city"], city)
    bad = sorted(_photos(str(city), "train"))[2]
    data = open(bad, "rb").read()
    with open(bad, "wb") as f:
        f.write(data[: len(data) // 2])
    assert segmenter_main(["train", str(city), "--out", str(tmp_path / "seg"), "--size", "32x64", "--no-progress"]) == 2
    ours = capsys.readouterr().err.strip()
    assert train_main(["--data", str(city), "--size", "32x64", "--run-dir", str(tmp_path / "run")]) == 2
    theirs = capsys.readouterr().err.strip().splitlines()
    theirs = "\n".join(line for line in theirs if not line.startswith("-"))  # only the error, as ours
    assert ours.startswith("crn-segmenter: error: ") and f"{bad}: truncated PNG" in ours
    assert ours.removeprefix("crn-segmenter: error: ") == theirs[theirs.index("crn-train: error: "):].removeprefix(
        "crn-train: error: ")
    assert not os.path.exists(tmp_path / "seg" / "saved_model")
    # --skip-bad trains on the others, as train.py's does.
    with pytest.warns(UserWarning, match="truncated PNG"):
        result = train_segmenter(tiny_options(city, tmp_path / "skipped", steps=1, skip_bad=True, val_split="none"))
    assert result.step == 1 and os.path.exists(result.saved_model)


def test_flags_are_checked_before_any_work(world, tmp_path, capsys):
    assert segmenter_main(["train", world["city"], "--out", str(tmp_path / "x"), "--size", "32x64",
                           "--batch-size", "0"]) == 2
    assert "crn-segmenter: error: --batch-size must be at least 1, got 0" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")
    assert segmenter_main(["train", world["city"], "--out", str(tmp_path / "x"), "--augment", "photometric",
                           "--max-blur", "0.5"]) == 2
    assert "crn-segmenter: error: --max-blur must be at least 1 (1: no blur), got 0.5" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        segmenter_main(["train", world["city"], "--out", str(tmp_path / "x"), "--mixed-precision", "fp16"])


def test_enet_class_weights_come_from_the_training_labels(world):
    from crn_tf.data.class_weights import class_pixel_counts, enet_class_weights, layout_class_weights

    examples = find_examples(world["city"], split="train", label_set=CITYSCAPES)
    counts = class_pixel_counts(examples, SIZE, CITYSCAPES)
    labels = np.stack([read_label(e.label_path, CITYSCAPES, e.label_format) for e in examples])  # already 32x64
    expected = np.bincount(labels[labels != VOID].ravel(), minlength=19)
    np.testing.assert_array_equal(counts, expected)
    weights = enet_class_weights(counts)
    np.testing.assert_allclose(weights, 1 / np.log(1.02 + expected / expected.sum()), rtol=1e-6)
    assert weights[counts.argmax()] == weights.min() and weights.max() <= 1 / np.log(1.02) + 1e-4

    # train.py's --class-weights enet: every layout channel, void last, scaled to a pixel mean of 1.
    with_void = class_pixel_counts(examples, SIZE, CITYSCAPES, include_void=True)
    np.testing.assert_array_equal(with_void, np.append(expected, np.sum(labels == VOID)))
    share = with_void / with_void.sum()
    raw = 1 / np.log(1.02 + share)
    layout_weights = layout_class_weights(with_void)
    np.testing.assert_allclose(layout_weights, raw / np.sum(share * raw), rtol=1e-5)
    assert abs(float(np.sum(share * layout_weights)) - 1.0) < 1e-5
    with pytest.raises(ValueError, match="at least one pixel"):
        layout_class_weights(np.zeros(20))


def test_photometric_jitter_is_the_stated_formula_seeded_and_in_range():
    from crn_tf.evaluate.segmenter.augment import (
        photometric,
        photometric_jitter,
        soften,
    )

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (2, 8, 16, 3)).astype(np.float32)
    gain = np.array([[1.1, 0.9, 1.0], [0.8, 0.8, 1.2]], np.float32)
    contrast = np.array([1.3, 0.7], np.float32)
    gained = images * gain[:, None, None, :]
    mean = gained.mean(axis=(1, 2, 3), keepdims=True)
    expected = np.clip(mean + contrast[:, None, None, None] * (gained - mean), 0, 255)
    np.testing.assert_allclose(photometric(tf.constant(images), tf.constant(gain), tf.constant(contrast)).numpy(),
                               expected, rtol=1e-5, atol=1e-3)
    # Softening keeps a flat image and takes detail out of a checkerboard.
    flat = np.full((1, 8, 16, 3), 77.0, np.float32)
    np.testing.assert_allclose(soften(tf.constant(flat), tf.constant(2.0)).numpy(), flat, atol=1e-4)
    checker = (np.indices((8, 16)).sum(0) % 2 * 255.0).astype(np.float32)[None, ..., None].repeat(3, -1)
    assert soften(tf.constant(checker), tf.constant(2.0)).numpy().std() < 0.2 * checker.std()
    seed = tf.constant(3, tf.int64)
    a = photometric_jitter(tf.constant(images), seed, tf.constant(5, tf.int64)).numpy()
    b = photometric_jitter(tf.constant(images), seed, tf.constant(5, tf.int64)).numpy()
    c = photometric_jitter(tf.constant(images), seed, tf.constant(6, tf.int64)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and a.min() >= 0 and a.max() <= 255 and a.shape == images.shape


def test_max_blur_sets_how_soft_the_blurred_half_of_the_batches_is():
    from crn_tf.evaluate.segmenter.augment import photometric_jitter

    checker = (np.indices((16, 32)).sum(0) % 2 * 255.0).astype(np.float32)[None, ..., None].repeat(3, -1)
    seed = tf.constant(1, tf.int64)
    blurred, kept = [], []
    for step in range(12):
        step = tf.constant(step, tf.int64)
        unblurred = photometric_jitter(tf.constant(checker), seed, step, max_blur=1.0).numpy()  # factor 1: no blur
        soft = photometric_jitter(tf.constant(checker), seed, step, max_blur=6.0).numpy()
        # The same draws: a step either blurs (less detail left than the unblurred jitter) or gives the same image.
        if np.allclose(soft, unblurred, atol=1e-3):
            kept.append(int(step))
        else:
            blurred.append(int(step))
            assert np.abs(np.diff(soft, axis=2)).mean() < 0.5 * np.abs(np.diff(unblurred, axis=2)).mean()
    assert blurred and kept  # about half of the batches each way
