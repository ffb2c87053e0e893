"""The one page writer (`crn_tf.core.page`): its skeleton, escaping, and the three pages built on it."""
import html.parser
import json
import os
import re

import numpy as np

from crn_tf.core.page import (
    PageEntry,
    html_document,
    json_script,
    render_page,
    url_attribute,
    write_document,
)
from crn_tf.evaluate.study import render_page as render_study_page
from crn_tf.labels import CITYSCAPES
from crn_tf.training.visualizer import Visualizer

VOID_ELEMENTS = {"meta", "img", "input", "br", "hr", "link"}


class _Outline(html.parser.HTMLParser):
    """Tag nesting checked as HTML requires it (every element closed, in order), and the text of
    <title>, <h1> and every <script>, recorded with the path of elements around each."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open, self.texts, self.doctype, self.errors = [], [], None, []

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] in ("title", "h1", "script", "style"):
            self.texts.append(("/".join(self.open), data))


def _outline(page):
    outline = _Outline()
    outline.feed(page)
    outline.close()
    assert outline.doctype == "DOCTYPE html" and not outline.errors and not outline.open, (outline.errors, outline.open)
    return outline


def test_document_skeleton_escapes_the_title_and_places_style_body_and_script():
    page = html_document("a < b & c", ["<p>one</p>", "<p>two</p>"], style="p { color: red; }", script="var x = 1;")
    texts = _outline(page).texts
    assert texts == [("html/head/title", "a < b & c"), ("html/head/style", "p { color: red; }"),
                     ("html/body/h1", "a < b & c"), ("html/body/script", "var x = 1;")]
    assert page.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n')
    assert page.index("<p>one</p>\n<p>two</p>") < page.index("<script>") and page.endswith("</body></html>\n")
    bare = html_document("t", "<p>x</p>", heading=False)  # a str body is one block
    assert "<style>" not in bare and "<h1>" not in bare and "<script>" not in bare and "<p>x</p>" in bare


def test_json_script_round_trips_data_that_would_close_the_element():
    data = {"title": "</script><script>alert(1)</script>", "note": "<!-- x", "n": [1, 2.5, None]}
    element = json_script("study-config", data)
    match = re.fullmatch(r'<script type="application/json" id="study-config">(.*)</script>', element, re.S)
    assert match and "</" not in match.group(1) and "<!--" not in match.group(1)
    assert json.loads(match.group(1)) == data  # "\u003c" is JSON for "<"


def test_url_attribute_quotes_and_escapes():
    assert url_attribute("images/a b&c.png") == "images/a%20b%26c.png"
    assert url_attribute(os.path.join("page", "x<y>.png")) == "page/x%3Cy%3E.png"


def test_write_document_writes_atomically(tmp_path):
    path = write_document(tmp_path / "index.html", "t", ["<p>x</p>"])
    assert path == str(tmp_path / "index.html") and os.listdir(tmp_path) == ["index.html"]
    assert (tmp_path / "index.html").read_text() == html_document("t", ["<p>x</p>"])


def test_synthesis_page_escapes_and_omits_empty_reference_column():
    page = render_page([PageEntry("x<y>", "page/x<y>_layout.png", ("x<y>.png",))], title="t & u")
    assert "x&lt;y&gt;" in page and "<y>" not in page and "t &amp; u" in page
    assert "real photo" not in page
    page = render_page([PageEntry("a", "l.png", ("a.png",), "r a.jpg"), PageEntry("b", "l2.png", ("b.png",))])
    assert "real photo" in page and 'src="r%20a.jpg"' in page


def test_the_three_pages_share_the_writer_and_are_well_formed(tmp_path):
    head = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
    synthesis = render_page([PageEntry("a", "a_layout.png", tuple(f"a_{i}.png" for i in range(9)), "a.jpg")],
                            info=["k = 9"])
    assert _outline(synthesis).texts[2] == ("html/body/h1", "CRN synthesis")

    visualizer = Visualizer(tmp_path / "run <1>", CITYSCAPES)
    for epoch in (1, 2):
        visualizer.save_grid(epoch, np.zeros((4, 8, 3), np.uint8))
    training = (tmp_path / "run <1>" / "web" / "index.html").read_text()
    assert _outline(training).texts[2] == ("html/body/h1", "CRN training samples: run <1>")
    assert training.index('src="images/epoch002_val.png"') < training.index('src="images/epoch001_val.png"')

    study = {"id": "s", "title": "Which </script>?", "time_limit": 2.0}
    entries = [{"pair": 0, "stem": "a", "left": "a", "left_src": "images/l.png", "right_src": "images/r.png"}]
    texts = _outline(render_study_page(study, entries)).texts
    assert texts[0] == ("html/head/title", "Which </script>?")
    scripts = [text for where, text in texts if where == "html/body/script"]
    assert [json.loads(text) for text in scripts[:2]] == [study, entries] and "study-config" in scripts[2]
    for page in (synthesis, training, render_study_page(study, entries)):
        assert page.startswith(head) and page.endswith("</body></html>\n")
