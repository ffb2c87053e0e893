"""crn_tf.evaluate.tally: the study answers' preference rates and Wilson intervals, and the tally CLI's errors."""
import json

import numpy as np
import pytest

from crn_tf.evaluate.tally import (
    TallyError,
    format_tally,
    load_answers,
    preference,
    tally,
)
from crn_tf.evaluate.tally import main as tally_main


def test_tally_rates_and_intervals(tmp_path):
    def answers(worker, choices, sides):
        return {"format": "crn_tf-study-answers", "version": 1, "worker": worker,
                "study": {"id": "s1", "a": "crn", "b": "pix2pix", "seed": 0, "time_limit": None, "num_pairs": len(choices)},
                "answers": [{"pair": i, "choice": c, "side": s} for i, (c, s) in enumerate(zip(choices, sides))]}

    (tmp_path / "w1.json").write_text(json.dumps(answers("w1", "aaab", ["left", "right", "left", "left"])))
    (tmp_path / "w2.json").write_text(json.dumps(answers("w2", "abbaaa", ["left"] * 6)))
    result = tally(load_answers([str(tmp_path)]))
    assert result["prefer_a"]["count"] == 7 and result["prefer_a"]["trials"] == 10
    # Wilson interval by hand: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
    z, n, p = 1.959963984540054, 10, 0.7
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    np.testing.assert_allclose(result["prefer_a"]["ci"], [(centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)])
    assert result["left_chosen"]["count"] == 9
    assert result["workers"]["w1"]["rate"] == 0.75 and result["workers"]["w2"]["count"] == 4
    exact = preference(7, 10, method="exact")
    from scipy.stats import beta

    np.testing.assert_allclose(exact["ci"], [beta.ppf(0.025, 7, 4), beta.ppf(0.975, 8, 3)])
    assert "7 of 10 = 70.0%" in format_tally(result)
    other = answers("w3", "a", ["left"])
    other["study"]["b"] = "spade"
    (tmp_path / "w3.json").write_text(json.dumps(other))
    with pytest.raises(TallyError, match="spade"):
        load_answers([str(tmp_path)])
    (tmp_path / "w3.json").write_text("{not json")
    with pytest.raises(TallyError, match="w3.json: not valid JSON"):
        load_answers([str(tmp_path / "w3.json")])


def test_tally_cli_error_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    assert tally_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.json: not a study answers file" in err
