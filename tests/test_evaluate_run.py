"""Segmenter plumbing, resumable synthesis, the report, and end-to-end runs on a tiny synthetic city."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from evaluate_helpers import save_colour_segmenter, write_tiny_fid_graph
from PIL import Image

from crn_tf.data import find_examples, read_label
from crn_tf.evaluate.features import list_images, load_rgb
from crn_tf.evaluate.fid import fid_from_features, kernel_inception_distance
from crn_tf.evaluate.inception import load_extractor
from crn_tf.evaluate.report import PUBLISHED, markdown_report
from crn_tf.evaluate.run import EvaluationOptions, evaluate
from crn_tf.evaluate.segmentation import (
    SegmenterError,
    confusion_matrix,
    load_segmenter,
    resize_nearest,
    scores_from_confusion,
)
from crn_tf.evaluate.synthesize import synthesize_split
from crn_tf.labels import CITYSCAPES, VOID, classes_to_colors
from crn_tf.nn.model import CRN
from crn_tf.synthetic import write_synthetic_city
from crn_tf.weights.checkpoint import save_model

SIZE = (32, 64)
NUM_VAL = 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A synthetic city (4 val images at 64x128), a tiny 32x64 checkpoint, a tiny FID graph, a segmenter."""
    root = tmp_path_factory.mktemp("evaluate")
    city = root / "city"
    write_synthetic_city(city, num_train=0, num_val=NUM_VAL, size=(64, 128), seed=3)
    model = CRN(output_size=SIZE, widths=(8, 8, 8, 8))
    model.build()
    checkpoint = save_model(model, root / "ckpt", extra={"step": 5})
    graph = root / "classify_image_graph_def.pb"
    write_tiny_fid_graph(graph, np.random.default_rng(1), dims=16)
    segmenter = save_colour_segmenter(root / "segmenter", CITYSCAPES.colors)
    return {"root": root, "city": str(city), "checkpoint": checkpoint, "graph": str(graph), "segmenter": segmenter}


def test_colour_segmenter_savedmodel_scores_layouts_perfectly(world, tmp_path, rng):
    classes = rng.integers(0, 19, (2, 8, 12)).astype(np.uint8)
    classes[0, 0] = VOID
    images = classes_to_colors(classes, CITYSCAPES)
    segmenter = load_segmenter(world["segmenter"])
    predicted = segmenter.segment(images)
    keep = classes != VOID
    np.testing.assert_array_equal(predicted[keep], classes[keep])
    scores = scores_from_confusion(confusion_matrix(classes, predicted, 19))
    assert scores["pixel_accuracy"] == 1.0 and scores["miou"] == 1.0

    logits = load_segmenter(save_colour_segmenter(tmp_path / "logits", CITYSCAPES.colors, output="logits"))
    assert logits.input_dtype == "float32" and logits.output_name == "logits"
    np.testing.assert_array_equal(logits.segment(images)[keep], classes[keep])
    # Run at another size: images resized there, predictions resized back by nearest neighbour.
    half = load_segmenter(world["segmenter"], run_size=(4, 6))
    assert half.segment(images).shape == (2, 8, 12)
    assert "4x6" in half.describe()


def test_segmenter_errors(tmp_path):
    with pytest.raises(SegmenterError, match="no saved_model.pb"):
        load_segmenter(tmp_path)


def test_synthesis_is_resumable(world, tmp_path):
    from crn_tf.weights.checkpoint import load_model

    model = load_model(world["checkpoint"])
    examples = find_examples(world["city"], split="val", label_set=CITYSCAPES, images="none")
    out = tmp_path / "synth"
    paths = synthesize_split(model, examples, out, batch_size=3, progress=False)
    assert [os.path.basename(p) for p in paths] == [f"{e.stem}.png" for e in examples]
    assert all(load_rgb(p).shape == SIZE + (3,) for p in paths)
    times = {p: os.stat(p).st_mtime_ns for p in paths}
    os.remove(paths[1])
    synthesize_split(model, examples, out, batch_size=3, progress=False)
    assert all(os.stat(p).st_mtime_ns == times[p] for p in paths if p != paths[1])
    assert os.path.exists(paths[1])


def test_k_image_models_score_one_image_or_all(world, tmp_path):
    model = CRN(output_size=SIZE, num_images=3, widths=(8, 8, 8, 8))
    model.build()
    examples = find_examples(world["city"], split="val", label_set=CITYSCAPES, images="none")[:2]
    every = synthesize_split(model, examples, tmp_path / "all", CITYSCAPES, image_index="all", progress=False)
    second = synthesize_split(model, examples, tmp_path / "second", CITYSCAPES, image_index=1, progress=False)
    assert len(every) == 6 and [os.path.basename(p) for p in second] == [f"{e.stem}.png" for e in examples]
    np.testing.assert_array_equal(load_rgb(second[0]), load_rgb(str(tmp_path / "all" / f"{examples[0].stem}_1.png")))
    assert not np.array_equal(load_rgb(every[0]), load_rgb(every[1]))


def test_end_to_end_matches_independent_computation(world, tmp_path):
    out = tmp_path / "eval"
    report = evaluate(EvaluationOptions(
        data=world["city"], out=str(out), checkpoint=world["checkpoint"], inception=world["graph"],
        segmenter=world["segmenter"], cache_dir=str(tmp_path / "cache"), batch_size=3, kid_subsets=5, progress=False,
    ))
    synthesized, real = list_images(out / "synthesized"), list_images(out / "real")
    assert len(synthesized) == len(real) == NUM_VAL and report["num_images"] == NUM_VAL
    assert all(load_rgb(p).shape == SIZE + (3,) for p in real)
    # FID/KID recomputed from the written files with the extractor called directly.
    extractor = load_extractor(world["graph"])
    fake = extractor(np.stack([load_rgb(p) for p in synthesized]))
    true = extractor(np.stack([load_rgb(p) for p in real]))
    assert report["fid"]["fid"] == pytest.approx(fid_from_features(fake, true), rel=1e-6)
    assert report["fid"]["kid"] == pytest.approx(kernel_inception_distance(fake, true, 5, 1000)[0], rel=1e-6)
    assert report["fid"]["comparable"] and report["fid"]["num_real"] == NUM_VAL
    # Segmentation recomputed: one confusion matrix over the split, labels resized by nearest neighbour.
    segmenter = load_segmenter(world["segmenter"])
    examples = find_examples(world["city"], split="val", label_set=CITYSCAPES)
    matrix = sum(
        confusion_matrix(resize_nearest(read_label(e.label_path, CITYSCAPES, e.label_format), SIZE),
                         segmenter.segment(load_rgb(p)[None])[0], 19)
        for e, p in zip(examples, synthesized)
    )
    expected = scores_from_confusion(matrix)
    assert report["segmentation"]["miou"] == pytest.approx(expected["miou"])
    assert report["segmentation"]["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"])
    saved = json.loads((out / "report.json").read_text())
    assert saved["fid"]["fid"] == report["fid"]["fid"] and saved["size"] == list(SIZE)
    assert saved["published"]["figures"]["CRN"] == {"miou": 52.4, "pixel_accuracy": 77.1, "fid": 104.7}
    assert "step 5" in saved["weights"]
    assert any("256x512" in note for note in saved["notes"])


@pytest.mark.slow
def test_cli_end_to_end_on_a_synthetic_city(world, tmp_path):
    out = tmp_path / "cli"
    command = [sys.executable, "-m", "crn_tf.evaluate", world["city"], "--checkpoint", world["checkpoint"],
               "--inception", world["graph"], "--segmenter", world["segmenter"], "--out", str(out),
               "--cache-dir", str(tmp_path / "cache"), "--kid-subsets", "3", "--name", "tiny"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["num_images"] == NUM_VAL and report["dataset"]["format"] == "cityscapes"
    assert np.isfinite(report["fid"]["fid"]) and 0 <= report["segmentation"]["miou"] <= 1
    assert result.stdout.startswith("# Evaluation: tiny") and "| CRN (published) | 52.4 | 77.1 | 104.7 | – |" in result.stdout
    assert "synthesizing [" in result.stderr and f"{NUM_VAL}/{NUM_VAL}" in result.stderr  # the progress bar
    assert len(list_images(out / "synthesized")) == NUM_VAL


def test_a_folder_of_colourised_layouts_segments_perfectly(world, tmp_path):
    """--synthesized: the colour segmenter on the layouts' own colours must give 100% mIoU and accuracy."""
    examples = find_examples(world["city"], split="val", label_set=CITYSCAPES)
    folder = tmp_path / "layouts"
    folder.mkdir()
    for example in examples:
        classes = resize_nearest(read_label(example.label_path, CITYSCAPES, example.label_format), SIZE)
        Image.fromarray(classes_to_colors(classes, CITYSCAPES)).save(folder / f"{example.stem}.png")
    report = evaluate(EvaluationOptions(data=world["city"], out=str(tmp_path / "out"), synthesized=str(folder),
                                        segmenter=world["segmenter"], segment_real=True, name="layouts", progress=False))
    assert report["segmentation"]["miou"] == 1.0 and report["segmentation"]["pixel_accuracy"] == 1.0
    assert 0 <= report["segmentation"]["real"]["miou"] < 1.0  # photos are not layouts
    assert "| **layouts** (measured) | 100.0 | 100.0 |" in (tmp_path / "out" / "report.md").read_text()
    assert "fid" not in report and report["size"] == list(SIZE)
    assert "real photos ?" not in (tmp_path / "out" / "report.md").read_text()
    os.remove(folder / f"{examples[2].stem}.png")
    with pytest.raises(FileNotFoundError, match=examples[2].stem):
        evaluate(EvaluationOptions(data=world["city"], out=str(tmp_path / "out"), synthesized=str(folder),
                                   segmenter=world["segmenter"], progress=False))


def test_cli_errors_are_one_line(world, tmp_path, capsys):
    from crn_tf.evaluate.__main__ import main

    code = main([world["city"], "--checkpoint", world["checkpoint"], "--inception", str(tmp_path / "nope.tgz"),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("crn-evaluate: error:")
    assert "nope.tgz" in err and "inception-2015-12-05.tgz" in err
    code = main([world["city"], "--checkpoint", world["checkpoint"], "--out", str(tmp_path / "out")])
    assert code == 2 and "nothing to measure" in capsys.readouterr().err


def test_a_bad_label_stops_the_evaluation_naming_its_file(world, tmp_path, capsys):
    import shutil

    from crn_tf.evaluate.__main__ import main

    city = tmp_path / "city"
    shutil.copytree(world["city"], city)
    examples = find_examples(str(city), split="val", label_set=CITYSCAPES)
    bad = examples[2].label_path
    ids = np.asarray(Image.open(bad)).copy()
    ids[20:24, 40:44] = 200  # not a Cityscapes id; kept by the 2x nearest resize (even rows and columns)
    Image.fromarray(ids).save(bad)
    code = main([str(city), "--checkpoint", world["checkpoint"], "--segmenter", world["segmenter"], "--out",
                 str(tmp_path / "out"), "--batch-size", "3", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"crn-evaluate: error: {bad}: ids outside the cityscapes label set") and "id 200" in err, err


def test_markdown_table_sets_measured_beside_published():
    report = {
        "name": "crn-256p", "size": [256, 512], "num_images": 500,
        "dataset": {"source": "/data/cityscapes", "format": "cityscapes", "split": "val", "label_set": "cityscapes"},
        "weights": "/ckpt/256p", "synthesized_dir": "/out/synthesized", "real_resize": "PIL bicubic",
        "fid": {"fid": 101.234, "kid": 0.04567, "kid_std": 0.001, "extractor": "tf1-graph", "description": "TTUR graph",
                "comparable": True, "num_synthesized": 500, "num_real": 500, "kid_subsets": 100, "kid_subset_size": 500},
        "segmentation": {"miou": 0.5012, "pixel_accuracy": 0.7789, "per_class_iou": [0.9, None],
                         "class_names": ["road", "sidewalk"], "segmenter": "SavedModel drn_d_105",
                         "protocol": "nearest labels", "classes_scored": 1, "pixels_scored": 10},
    }
    text = markdown_report(report)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[1] == "| **crn-256p** (measured) | 50.1 | 77.9 | 101.2 | 45.67 |"
    for method, figures in PUBLISHED.items():
        assert f"| {method} (published) | {figures['miou']:.1f} | {figures['pixel_accuracy']:.1f} | {figures['fid']:.1f} | – |" in rows
    assert "Not directly comparable" not in text
    assert "| 90.0 | – |" in text  # per-class IoU, the absent class shown as a dash
    keras = dict(report, fid=dict(report["fid"], comparable=False, extractor="keras-inception_v3"), size=[32, 64])
    text = markdown_report(keras)
    assert "Not directly comparable" in text and "not comparable with published FID" in text and "32x64" in text
