"""A human-study kit: one HTML page for pairwise "which image is more realistic?" judgements.

`python -m crn_tf.evaluate.study --a DIR --b DIR --out DIR` pairs the images of two folders by
file stem, shuffles the pairs and the left/right placement with a seed, and writes `index.html`
(images copied to `images/` under neutral names, or embedded with `--embed`) and `study.json`
(the pairs, for the record). The paper ran such pairwise comparisons on Mechanical Turk, also
timed ones where the images are shown only briefly: `--time-limit SECONDS` hides both images
after that time, and the worker must still choose. The page needs no server: answers are saved
in the browser as the worker goes (a reload resumes) and downloaded as JSON at the end; count
them with `python -m crn_tf.evaluate.tally`.
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import hashlib
import html
import json
import os
import shutil
import sys
from typing import Sequence

import numpy as np

from crn_tf.core.files import write_atomic
from crn_tf.core.logs import cli_error, cli_main
from crn_tf.core.page import html_document, json_script
from crn_tf.core.quiet import parse_cli

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
ANSWERS_FORMAT = "crn_tf-study-answers"
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


class StudyError(ValueError):
    """The two folders cannot make a study (missing, nothing in common)."""


@dataclasses.dataclass
class Pair:
    """One comparison: the image of method A and of method B for the same input, and A's side."""

    index: int
    stem: str
    a_path: str
    b_path: str
    a_on_left: bool


def _images_by_stem(folder: str) -> dict[str, str]:
    if not os.path.isdir(folder):
        raise StudyError(f"{folder}: image folder not found")
    found: dict[str, str] = {}
    for name in sorted(os.listdir(folder)):
        stem, extension = os.path.splitext(name)
        if extension.lower() in IMAGE_EXTENSIONS:
            found.setdefault(stem, os.path.join(folder, name))
    return found


def make_pairs(a_dir: str, b_dir: str, num_pairs: int | None = None, seed: int = 0) -> tuple[list[Pair], dict]:
    """Pairs the stems both folders hold; a seeded sample, order and left/right placement.

    Returns the pairs and counts of unmatched files (reported, not an error).
    """
    a_images, b_images = _images_by_stem(a_dir), _images_by_stem(b_dir)
    common = sorted(set(a_images) & set(b_images))
    if not common:
        raise StudyError(f"{a_dir} and {b_dir} share no image names (pairs are matched by file stem)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(common))
    if num_pairs is not None:
        if num_pairs < 1:
            raise StudyError(f"--num-pairs must be >= 1, got {num_pairs}")
        order = order[:num_pairs]
    sides = rng.random(len(order)) < 0.5
    pairs = [Pair(i, common[j], a_images[common[j]], b_images[common[j]], bool(left)) for i, (j, left) in
             enumerate(zip(order.tolist(), sides.tolist()))]
    unmatched = {"only_a": len(set(a_images) - set(b_images)), "only_b": len(set(b_images) - set(a_images))}
    return pairs, unmatched


def _source(path: str, out_dir: str, name: str, embed: bool) -> str:
    """The <img src> of `path`: a data URI (embed) or a copy at images/<name><ext>."""
    extension = os.path.splitext(path)[1].lower()
    if embed:
        with open(path, "rb") as f:
            return f"data:{_MIME[extension]};base64,{base64.b64encode(f.read()).decode()}"
    relative = f"images/{name}{extension}"
    shutil.copyfile(path, os.path.join(out_dir, relative))
    return relative


def write_study(
    a_dir: str,
    b_dir: str,
    out_dir: str,
    name_a: str | None = None,
    name_b: str | None = None,
    num_pairs: int | None = None,
    seed: int = 0,
    time_limit: float | None = None,
    embed: bool = False,
    title: str = "Which image is more realistic?",
) -> dict:
    """Writes `index.html` and `study.json` into `out_dir`; returns the study description."""
    if time_limit is not None and time_limit <= 0:
        raise StudyError(f"--time-limit must be > 0 seconds, got {time_limit}")
    a_dir, b_dir, out_dir = os.fspath(a_dir), os.fspath(b_dir), os.fspath(out_dir)
    pairs, unmatched = make_pairs(a_dir, b_dir, num_pairs, seed)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    name_a = name_a or os.path.basename(os.path.normpath(a_dir))
    name_b = name_b or os.path.basename(os.path.normpath(b_dir))
    study_id = hashlib.sha1(
        json.dumps([name_a, name_b, seed, time_limit, [(p.stem, p.a_on_left) for p in pairs]]).encode()
    ).hexdigest()[:12]
    entries = []
    for pair in pairs:
        left, right = (pair.a_path, pair.b_path) if pair.a_on_left else (pair.b_path, pair.a_path)
        entries.append({
            "pair": pair.index,
            "stem": pair.stem,
            "left": "a" if pair.a_on_left else "b",
            "left_src": _source(left, out_dir, f"pair{pair.index:04d}_left", embed),
            "right_src": _source(right, out_dir, f"pair{pair.index:04d}_right", embed),
        })
    study = {
        "id": study_id, "a": name_a, "b": name_b, "a_dir": os.path.abspath(a_dir), "b_dir": os.path.abspath(b_dir),
        "seed": seed, "time_limit": time_limit, "num_pairs": len(pairs), "title": title,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "unmatched": unmatched,
    }
    page = render_page(study, entries)
    write_atomic(os.path.join(out_dir, "index.html"), page)
    record = dict(study, pairs=[{k: e[k] for k in ("pair", "stem", "left")} for e in entries])
    write_atomic(os.path.join(out_dir, "study.json"), json.dumps(record, indent=2) + "\n")
    return record


_STYLE = """
body { font-family: sans-serif; margin: 0; background: #222; color: #eee; text-align: center; }
header { padding: 12px; font-size: 20px; }
#progress { color: #aaa; font-size: 14px; margin-top: 4px; }
.screen { display: none; padding: 16px; }
.screen.active { display: block; }
.pair { display: flex; justify-content: center; gap: 16px; flex-wrap: wrap; }
.choice { border: 3px solid #555; padding: 0; background: #000; cursor: pointer; position: relative; }
.choice:hover, .choice:focus { border-color: #fc0; }
.choice img { display: block; max-width: 46vw; max-height: 70vh; }
.hidden-images .choice img { visibility: hidden; }
.choice .key { position: absolute; bottom: 4px; left: 0; right: 0; color: #fc0; font-size: 13px; }
button.big { font-size: 18px; padding: 8px 24px; margin: 8px; }
textarea { width: 80vw; height: 30vh; font-family: monospace; font-size: 12px; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var study = JSON.parse(document.getElementById("study-config").textContent);
  var pairs = JSON.parse(document.getElementById("study-pairs").textContent);
  var storageKey = "crn_tf-study-" + study.id;
  var state = { worker: "", started: null, answers: [] };
  try { var saved = JSON.parse(localStorage.getItem(storageKey)); if (saved && saved.answers) state = saved; } catch (e) {}
  var shownAt = 0, hideTimer = null, hidden = false, busy = false;

  function $(id) { return document.getElementById(id); }
  function save() { try { localStorage.setItem(storageKey, JSON.stringify(state)); } catch (e) {} }
  function show(screen) {
    ["start", "trial", "done"].forEach(function (s) { $(s).classList.toggle("active", s === screen); });
  }
  function result() {
    return {
      format: "crn_tf-study-answers", version: 1,
      study: { id: study.id, a: study.a, b: study.b, seed: study.seed, time_limit: study.time_limit,
               num_pairs: study.num_pairs },
      worker: state.worker, started: state.started, finished: state.finished || null,
      user_agent: navigator.userAgent, answers: state.answers
    };
  }
  function finish() {
    if (!state.finished) { state.finished = new Date().toISOString(); save(); }
    var text = JSON.stringify(result(), null, 2);
    $("answers").value = text;
    $("progress").textContent = "Done: " + state.answers.length + " of " + pairs.length + " pairs";
    window.studyAnswers = result();
    show("done");
  }
  function present() {
    var n = state.answers.length;
    if (n >= pairs.length) { finish(); return; }
    var pair = pairs[n];
    busy = true; hidden = false;
    $("trial").classList.remove("hidden-images");
    $("progress").textContent = "Pair " + (n + 1) + " of " + pairs.length;
    var loaded = 0;
    function ready() {
      loaded += 1;
      if (loaded < 2) return;
      shownAt = performance.now(); busy = false;
      document.body.setAttribute("data-shown", String(n + 1));  // both images are on screen
      if (study.time_limit) {
        hideTimer = setTimeout(function () { hidden = true; $("trial").classList.add("hidden-images"); },
                               study.time_limit * 1000);
      }
    }
    ["left", "right"].forEach(function (side) {
      var img = $(side + "-img");
      img.onload = ready; img.onerror = ready;
      img.src = pair[side + "_src"];
    });
  }
  function choose(side) {
    if (busy || !$("trial").classList.contains("active")) return;
    var n = state.answers.length;
    var pair = pairs[n];
    if (hideTimer) { clearTimeout(hideTimer); hideTimer = null; }
    var method = side === "left" ? pair.left : (pair.left === "a" ? "b" : "a");
    state.answers.push({ pair: pair.pair, stem: pair.stem, left: pair.left, side: side, choice: method,
                         ms: Math.round(performance.now() - shownAt), after_hiding: hidden });
    save();
    present();
  }
  function download() {
    var blob = new Blob([JSON.stringify(result(), null, 2)], { type: "application/json" });
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "answers-" + study.id + (state.worker ? "-" + state.worker.replace(/[^A-Za-z0-9_-]/g, "_") : "") + ".json";
    document.body.appendChild(link); link.click(); link.remove();
  }
  $("start-button").addEventListener("click", function () {
    state.worker = $("worker").value.trim();
    if (!state.started) state.started = new Date().toISOString();
    save(); show("trial"); present();
  });
  $("left").addEventListener("click", function () { choose("left"); });
  $("right").addEventListener("click", function () { choose("right"); });
  $("download").addEventListener("click", download);
  $("restart").addEventListener("click", function () {
    if (confirm("Discard all answers and start again?")) { localStorage.removeItem(storageKey); location.reload(); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "ArrowLeft") choose("left");
    if (event.key === "ArrowRight") choose("right");
  });
  if (state.answers.length >= pairs.length) { finish(); }
  else if (state.answers.length > 0) { $("worker").value = state.worker; $("resume-note").textContent =
      "Resuming: " + state.answers.length + " of " + pairs.length + " pairs answered."; }
})();
"""


def render_page(study: dict, entries: list[dict]) -> str:
    """The study page: start screen (instructions, optional worker id), trials, done screen."""
    title = html.escape(study["title"])
    limit = study.get("time_limit")
    timing = (f"<p>Each pair is shown for only <b>{limit:g} s</b>; then the images disappear and you still choose."
              "</p>" if limit else "")
    body = f"""<header>{title}<div id="progress"></div></header>
<section id="start" class="screen active">
  <p>You will see {len(entries)} pairs of images. In each pair, click the image that looks
  <b>more like a real photograph</b> (or press the left / right arrow key).</p>
  {timing}
  <p><label>Your ID (optional): <input id="worker" autocomplete="off"></label></p>
  <p id="resume-note"></p>
  <button id="start-button" class="big">Start</button>
</section>
<section id="trial" class="screen">
  <div class="pair">
    <button id="left" class="choice" aria-label="left image"><img id="left-img" alt="left image"><span class="key">&larr;</span></button>
    <button id="right" class="choice" aria-label="right image"><img id="right-img" alt="right image"><span class="key">&rarr;</span></button>
  </div>
</section>
<section id="done" class="screen">
  <p>Thank you! All pairs are answered.</p>
  <button id="download" class="big">Download answers (JSON)</button>
  <p>Or copy them from here:</p>
  <textarea id="answers" readonly></textarea>
  <p><button id="restart">Start again</button></p>
</section>"""
    data = [json_script("study-config", study), json_script("study-pairs", entries)]
    return html_document(study["title"], [body, *data], style=_STYLE, script=_SCRIPT, heading=False)


# === Command line ===
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m crn_tf.evaluate.study",
        description="Write a self-contained HTML page for pairwise 'which image is more realistic?' judgements "
        "between two folders of images (paired by file stem). Count the downloaded answers with "
        "python -m crn_tf.evaluate.tally.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--a", required=True, help="folder of method A's images")
    parser.add_argument("--b", required=True, help="folder of method B's images (same stems)")
    parser.add_argument("--out", required=True, help="output folder for index.html, images/ and study.json")
    parser.add_argument("--name-a", default=None, help="method A's name in the answers (default: folder name)")
    parser.add_argument("--name-b", default=None, help="method B's name in the answers (default: folder name)")
    parser.add_argument("--num-pairs", type=int, default=None, help="random sample of this many pairs (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of pair order and left/right placement")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="seconds each pair is visible (the paper's timed study); default: no limit")
    parser.add_argument("--embed", action="store_true", help="embed the images in index.html (one file)")
    parser.add_argument("--title", default="Which image is more realistic?", help="page title")
    return parser


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_cli(build_parser, argv)
    try:
        study = write_study(args.a, args.b, args.out, args.name_a, args.name_b, args.num_pairs, args.seed,
                            args.time_limit, args.embed, args.title)
    except (StudyError, OSError) as error:
        return cli_error("study", error, 2)
    skipped = study["unmatched"]
    print(f"wrote {os.path.join(args.out, 'index.html')}: {study['num_pairs']} pairs of {study['a']} vs {study['b']} "
          f"(study {study['id']}" + (f", {skipped['only_a']} + {skipped['only_b']} unmatched images skipped"
                                     if skipped["only_a"] or skipped["only_b"] else "") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
