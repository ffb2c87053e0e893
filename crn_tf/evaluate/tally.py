"""Counts human-study answers: how often A was judged more realistic than B, with a binomial CI.

`python -m crn_tf.evaluate.tally answers.json [more.json | folder ...]` reads the JSON files the
study page downloads (one per worker), checks they belong to the same study, and prints the
preference rate with a Wilson (default) or Clopper-Pearson ("exact") confidence interval and a
two-sided binomial test against 50%, plus the left-side rate (a position-bias check) and the
rate per worker.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from scipy.stats import binomtest

from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.quiet import parse_cli
from crn_tf.evaluate.study import ANSWERS_FORMAT


class TallyError(ValueError):
    """An answers file is unreadable, not study answers, or from another study."""


def _answer_files(paths: Sequence[str]) -> list[str]:
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".json") and n != "study.json")
        else:
            files.append(path)
    if not files:
        raise TallyError("no answer files given (folders hold no .json files)")
    return files


def load_answers(paths: Sequence[str]) -> list[dict]:
    """The answer sets of `paths` (files or folders of .json), all from one study."""
    sets = []
    for path in _answer_files(paths):
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as error:
            raise TallyError(f"{path}: cannot read ({error.strerror})") from error
        except json.JSONDecodeError as error:
            raise TallyError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(data, dict) or data.get("format") != ANSWERS_FORMAT or not isinstance(data.get("answers"), list):
            raise TallyError(f"{path}: not a study answers file (format {data.get('format') if isinstance(data, dict) else None!r})")
        for answer in data["answers"]:
            if answer.get("choice") not in ("a", "b") or answer.get("side") not in ("left", "right"):
                raise TallyError(f"{path}: answer {answer} has no valid choice/side")
        data["path"] = path
        sets.append(data)
    first = sets[0]["study"]
    for other in sets[1:]:
        if (other["study"]["a"], other["study"]["b"]) != (first["a"], first["b"]):
            raise TallyError(f"{other['path']}: compares {other['study']['a']} vs {other['study']['b']}, "
                             f"but {sets[0]['path']} compares {first['a']} vs {first['b']}")
    return sets


def preference(successes: int, trials: int, confidence: float = 0.95, method: str = "wilson") -> dict:
    """Rate successes/trials, its binomial confidence interval (wilson | exact) and p vs 50%."""
    if trials == 0:
        return {"count": 0, "trials": 0, "rate": None, "ci": [None, None], "p_value": None}
    test = binomtest(successes, trials, 0.5)
    interval = test.proportion_ci(confidence_level=confidence, method=method)
    return {"count": successes, "trials": trials, "rate": successes / trials,
            "ci": [float(interval.low), float(interval.high)], "p_value": float(test.pvalue)}


def tally(sets: list[dict], confidence: float = 0.95, method: str = "wilson") -> dict:
    """Preference for A over all answers, per worker, and the left-side rate."""
    answers = [a for s in sets for a in s["answers"]]
    study = sets[0]["study"]
    workers = {}
    for index, answer_set in enumerate(sets):
        worker = answer_set.get("worker") or f"#{index + 1} ({os.path.basename(answer_set['path'])})"
        chosen = [a["choice"] == "a" for a in answer_set["answers"]]
        workers[worker] = preference(sum(chosen), len(chosen), confidence, method)
    return {
        "a": study["a"], "b": study["b"], "studies": sorted({s["study"]["id"] for s in sets}),
        "time_limit": study.get("time_limit"), "method": method, "confidence": confidence,
        "files": len(sets),
        "prefer_a": preference(sum(a["choice"] == "a" for a in answers), len(answers), confidence, method),
        "left_chosen": preference(sum(a["side"] == "left" for a in answers), len(answers), confidence, method),
        "after_hiding": sum(bool(a.get("after_hiding")) for a in answers),
        "workers": workers,
    }


def _percent(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def format_tally(result: dict) -> str:
    """Plain-text summary of `tally`'s result."""
    p = result["prefer_a"]
    level = f"{100 * result['confidence']:g}%"
    method = {"wilson": "Wilson", "exact": "Clopper-Pearson"}.get(result["method"], result["method"])
    lines = [
        f"{result['a']} judged more realistic than {result['b']}: {p['count']} of {p['trials']} = {_percent(p['rate'])} "
        f"({level} CI {_percent(p['ci'][0])} .. {_percent(p['ci'][1])}, {method}; two-sided binomial p = "
        f"{p['p_value']:.3g} vs 50%)" if p["trials"] else f"no answers in {result['files']} file(s)",
    ]
    if p["trials"]:
        left = result["left_chosen"]
        lines.append(f"left image chosen: {_percent(left['rate'])} ({level} CI {_percent(left['ci'][0])} .. "
                     f"{_percent(left['ci'][1])}) - near 50% means no position bias")
        if result["time_limit"]:
            lines.append(f"timed study: {result['time_limit']:g} s per pair; {result['after_hiding']} answers given "
                         "after the images were hidden")
        lines.append(f"{len(result['workers'])} worker(s):")
        for worker, w in result["workers"].items():
            lines.append(f"  {worker}: {w['count']}/{w['trials']} = {_percent(w['rate'])}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crn_tf.evaluate.tally",
        description="Count human-study answers (JSON files downloaded from the study page): the rate at which "
        "A is judged more realistic than B, with a binomial confidence interval.",
    )
    parser.add_argument("answers", nargs="+", help="answers JSON files, or folders of them")
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence level (default: 0.95)")
    parser.add_argument("--method", choices=("wilson", "exact"), default="wilson",
                        help="interval: wilson (default) or exact (Clopper-Pearson)")
    parser.add_argument("--json", default=None, help="also write the tally to this JSON file")
    return parser


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)
    if not 0 < args.confidence < 1:
        return cli_error("tally", f"--confidence must lie in (0, 1), got {args.confidence}", 2)
    try:
        result = tally(load_answers(args.answers), args.confidence, args.method)
    except TallyError as error:
        return cli_error("tally", error, 2)
    print(format_tally(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
