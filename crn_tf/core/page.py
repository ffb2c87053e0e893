"""The demo's `index.html`: per layout the colourised layout, the synthesized images and the real photo.

A plain static page (no scripts, no external files) so it opens from disk or any file server.
Paths in the page are relative to the page's folder, so the whole output folder can be moved.
"""
from __future__ import annotations

import dataclasses
import html
import os
import urllib.parse
from typing import Iterable, Sequence

from crn_tf.core.files import write_atomic

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


def _src(path: str) -> str:
    """A path as an `src` attribute value: forward slashes, URL-quoted, HTML-escaped."""
    return html.escape(urllib.parse.quote(path.replace(os.sep, "/")), quote=True)


def _figure(path: str, caption: str, thumb: int) -> str:
    return (
        f'<figure><a href="{_src(path)}"><img src="{_src(path)}" width="{thumb}" alt="{html.escape(caption)}"></a>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def render_page(
    entries: Sequence[PageEntry],
    title: str = "CRN synthesis",
    info: Iterable[str] = (),
    thumbnail_width: int | None = None,
) -> str:
    """Returns the HTML text of the page: a table with one row per entry.

    `thumbnail_width` is the displayed width of each picture (the link opens it at full size);
    by default 256 px, or 192 px when there are several images per layout.
    """
    entries = list(entries)
    num_images = max((len(e.images) for e in entries), default=1)
    thumbnail_width = thumbnail_width or (256 if num_images == 1 else 192)
    columns = min(3, num_images)  # k = 9 shows as the original's 3x3 grid, row-major
    style = _STYLE % {"thumb": thumbnail_width, "columns": columns}
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{style}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    lines += [f'<p class="info">{html.escape(line)}</p>' for line in info]
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
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def write_page(
    path: str | os.PathLike,
    entries: Sequence[PageEntry],
    title: str = "CRN synthesis",
    info: Iterable[str] = (),
    thumbnail_width: int | None = None,
) -> str:
    """Writes the page to `path` (atomically: a temporary file, then a rename); returns the path."""
    return write_atomic(path, render_page(entries, title=title, info=info, thumbnail_width=thumbnail_width))
