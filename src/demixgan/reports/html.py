"""Self-contained HTML reports: text, tables and PNG figures inlined as data URIs.

One file that opens anywhere (no server, no sibling files), so a report can be mailed or
attached as it is.

>>> html = render_report("Demo", [Section("Scores", [Table(["a", "b"], [["1", "<2>"]])])])
>>> "<td>&lt;2&gt;</td>" in html and html.startswith("<!DOCTYPE html>")
True
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from demixgan.io.atomic import atomic_path

_NUMBER = re.compile(r"[-+−–]?[\d.,]*\d[\d.,]*%?( ± [\d.,]+%?)?|[–-]")
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 68rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
figure { margin: 1rem 0; } figure img { max-width: 100%; image-rendering: pixelated; }
figcaption { color: #555; font-size: 0.9rem; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
"""


@dataclass(frozen=True)
class Text:
    text: str
    preformatted: bool = False


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    path: str | os.PathLike
    caption: str = ""


@dataclass(frozen=True)
class Links:
    """A list of links (href, text): the one block that points outside the page."""

    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Section:
    heading: str
    blocks: list[Text | Table | Figure | Links] = field(default_factory=list)


def render_report(title: str, sections: list[Section]) -> str:
    """The whole HTML document as a string."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        body.extend(_render(block) for block in section.blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_report(path: str | os.PathLike, title: str, sections: list[Section]) -> Path:
    """Render and write atomically; figures are read now and inlined."""
    text = render_report(title, sections)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _cell(text: str) -> str:
    """A table cell; numbers ("18.85 ± 2.81", "92.5%", "–") align right, words left."""
    numeric = _NUMBER.fullmatch(text.strip()) is not None
    return f'<td class="n">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def _render(block: Text | Table | Figure | Links) -> str:
    if isinstance(block, Links):
        items = "".join(
            f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>'
            for href, text in block.items
        )
        return f"<ul>{items}</ul>"
    if isinstance(block, Text):
        escaped = html.escape(block.text)
        return f"<pre>{escaped}</pre>" if block.preformatted else f"<p>{escaped}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
        rows = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    data = base64.b64encode(Path(block.path).read_bytes()).decode("ascii")
    caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
    return (
        f'<figure><img alt="{html.escape(block.caption)}" '
        f'src="data:image/png;base64,{data}">{caption}</figure>'
    )
