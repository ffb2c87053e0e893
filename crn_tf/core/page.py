"""Static HTML pages: one writer for every page crn_tf makes, and the synthesis page built on it.

`html_document` is the one page skeleton (doctype, UTF-8, escaped title, inline style, body,
an optional inline script); `write_document` writes it atomically. The demo's `index.html`
(`render_page`: per layout the colourised layout, the synthesized images and the real photo),
the training run's per-epoch page (`crn_tf.training.visualizer`) and the human-study page
(`crn_tf.evaluate.study`, its own form script) are all written through it. Pages need no
external files, so they open from disk or any file server; paths in them are relative to the
page's folder, so a whole output folder can be moved.
"""
from __future__ import annotations

import dataclasses
import html
import json
import os
import urllib.parse
from typing import Iterable, Sequence

from crn_tf.core.files import write_atomic


def html_document(
    title: str,
    body: str | Iterable[str],
    style: str = "",
    script: str | None = None,
    heading: bool = True,
) -> str:
    """The HTML text of a page: `title` (escaped here) as <title> and, with `heading`, as the
    <h1>; then `body` (HTML lines, already escaped); `script` inline at the end of the body."""
    body = [body] if isinstance(body, str) else list(body)
    escaped = html.escape(title)
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escaped}</title>",
    ]
    if style:
        lines.append(f"<style>{style}</style>")
    lines.append("</head><body>")
    if heading:
        lines.append(f"<h1>{escaped}</h1>")
    lines += body
    if script:
        lines.append(f"<script>{script}</script>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def write_document(path: str | os.PathLike, title: str, body: str | Iterable[str], style: str = "",
                   script: str | None = None, heading: bool = True) -> str:
    """Writes `html_document(...)` to `path` atomically (a temporary file, then a rename); returns the path."""
    return write_atomic(path, html_document(title, body, style=style, script=script, heading=heading))


def url_attribute(path: str) -> str:
    """A relative path as an `src`/`href` value: forward slashes, URL-quoted, HTML-escaped."""
    return html.escape(urllib.parse.quote(path.replace(os.sep, "/")), quote=True)


def json_script(element_id: str, data) -> str:
    """`data` as a `<script type="application/json">` element a page script reads with
    `JSON.parse(document.getElementById(element_id).textContent)`. Every `<` is written as the
    JSON escape `\\u003c`, so no `</script>` or `<!--` in the data can end the element early."""
    text = json.dumps(data).replace("<", "\\u003c")
    return f'<script type="application/json" id="{html.escape(element_id, quote=True)}">{text}</script>'


# === The synthesis page: demo.py's index.html ===
_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
p.info { color: #555; margin-top: 0; }
table { border-collapse: collapse; }
th, td { border-top: 1px solid #ccc; padding: 6px 10px; vertical-align: top; text-align: left; }
div.stem { font-family: monospace; font-size: 0.85em; margin-bottom: 4px; }
div.images { display: grid; grid-template-columns: repeat(%(columns)d, auto); gap: 4px; justify-content: start; }
figure { margin: 0; }
figcaption { font-size: 0.75em; color: #666; }
img { display: block; width: %(thumb)dpx; image-rendering: auto; }
"""


@dataclasses.dataclass(frozen=True)
class PageEntry:
    """One row of the page; every path is relative to the page's folder (or absolute).

    Args:
        stem: str. The input's name without extension (shown in the first column).
        layout: str. The colourised layout image.
        images: the synthesized images in model order (image 0 first).
        reference: str or None. The real photo of this layout, when the input has one.
    """

    stem: str
    layout: str
    images: tuple[str, ...]
    reference: str | None = None


def _figure(path: str, caption: str, thumb: int) -> str:
    return (
        f'<figure><a href="{url_attribute(path)}"><img src="{url_attribute(path)}" width="{thumb}" alt="{html.escape(caption)}"></a>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render_page(
    entries: Sequence[PageEntry],
    title: str = "CRN synthesis",
    info: Iterable[str] = (),
    thumbnail_width: int | None = None,
) -> str:
    """Returns the HTML text of the synthesis page: a table with one row per entry.

    `thumbnail_width` is the displayed width of each picture (the link opens it at full size);
    by default 256 px, or 192 px when there are several images per layout.
    """
    entries = list(entries)
    num_images = max((len(e.images) for e in entries), default=1)
    thumbnail_width = thumbnail_width or (256 if num_images == 1 else 192)
    columns = min(3, num_images)  # k = 9 shows as the original's 3x3 grid, row-major
    style = _STYLE % {"thumb": thumbnail_width, "columns": columns}
    lines = [f'<p class="info">{html.escape(line)}</p>' for line in info]
    if not entries:
        lines.append("<p>No layouts.</p>")
    else:
        has_reference = any(e.reference for e in entries)
        header = "<tr><th>layout</th><th>synthesized</th>"
        header += "<th>real photo</th></tr>" if has_reference else "</tr>"
        lines += ["<table>", header]
        for entry in entries:
            cells = [
                f'<td><div class="stem">{html.escape(entry.stem)}</div>'
                f"{_figure(entry.layout, 'layout', thumbnail_width)}</td>",
            ]
            figures = "".join(
                _figure(path, f"image {index}", thumbnail_width) for index, path in enumerate(entry.images)
            )
            cells.append(f'<td><div class="images">{figures}</div></td>')
            if has_reference:
                reference = _figure(entry.reference, "real", thumbnail_width) if entry.reference else "&ndash;"
                cells.append(f"<td>{reference}</td>")
            lines.append("<tr>" + "".join(cells) + "</tr>")
        lines.append("</table>")
    return html_document(title, lines, style=style)


def write_page(
    path: str | os.PathLike,
    entries: Sequence[PageEntry],
    title: str = "CRN synthesis",
    info: Iterable[str] = (),
    thumbnail_width: int | None = None,
) -> str:
    """Writes the page to `path` (atomically: a temporary file, then a rename); returns the path."""
    return write_atomic(path, render_page(entries, title=title, info=info, thumbnail_width=thumbnail_width))
