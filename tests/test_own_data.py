"""Issue 9 end to end: a custom 5-class label set from dataset to demo, through the real CLIs."""
import os

import numpy as np
import pytest
from PIL import Image

from crn_tf.data import check, synthetic
from crn_tf.demo import main as demo_main
from crn_tf.labels import LabelSet
from crn_tf.training.cli import main as train_main
from crn_tf.weights.checkpoint import read_config

STREET5 = os.path.join(os.path.dirname(__file__), "..", "data", "label_sets", "street5.json")


@pytest.mark.slow
def test_custom_label_set_from_paired_data_to_demo(tmp_path, capsys):
    data = tmp_path / "street5"
    assert synthetic.main([str(data), "--format", "paired", "--label-set", STREET5,
                           "--num", "6", "--val", "2", "--size", "32x64", "--seed", "3"]) == 0
    assert check.main([str(data), "--label-set", STREET5, "--quiet"]) == 0
    assert "OK, training can run" in capsys.readouterr().out

    run = tmp_path / "run"
    assert train_main(["--data", str(data), "--label-set", STREET5, "--size", "32x64", "--width-multiplier", "1/128",
                       "--num-images", "1", "--vgg-weights", "random", "--steps", "4", "--run-dir", str(run)]) == 0
    config = read_config(run)
    assert LabelSet.from_dict(config["label_set"]) == LabelSet.load_json(STREET5)  # stored, not re-read from flags
    assert config["model"]["num_classes"] == 5

    out = tmp_path / "demo"
    assert demo_main(["--checkpoint", str(run), "--labels", str(data), "--split", "val", "--out", str(out),
                      "--no-progress"]) == 0
    assert len(list(out.glob("*.png"))) == 2 and (out / "index.html").exists()

    label = np.array(Image.open(next((data / "val" / "labels").glob("*.png"))).convert("RGB"))
    label[:3, :4] = (1, 2, 3)  # a sixth colour: neither a street5 class nor its void
    Image.fromarray(label).save(tmp_path / "sixth.png")
    capsys.readouterr()
    assert demo_main(["--checkpoint", str(run), "--labels", str(tmp_path / "sixth.png"), "--out", str(out),
                      "--no-progress"]) != 0
    error = capsys.readouterr().err
    assert "sixth.png" in error and "(1,2,3) (12 pixels)" in error and "street5" in error


def test_checker_refuses_a_label_outside_the_set(tmp_path, capsys):
    data = tmp_path / "street5"
    synthetic.main([str(data), "--format", "paired", "--label-set", STREET5, "--num", "2", "--val", "1",
                    "--size", "32x64"])
    path = next((data / "train" / "labels").glob("*.png"))
    label = np.array(Image.open(path).convert("RGB"))
    label[0, 0] = (9, 9, 9)
    Image.fromarray(label).save(path)
    capsys.readouterr()
    assert check.main([str(data), "--label-set", STREET5, "--quiet"]) != 0
    assert path.name in capsys.readouterr().out
