"""The report's document model and its two renderers.

- blocks: :class:`Heading`, :class:`Paragraph`, :class:`Bullets`, :class:`Table` (a DataFrame of display
  strings and a caption) and :class:`Figure` (a PNG and its caption), in a :class:`Document`;
- :func:`to_markdown`: GitHub-flavoured, pipe tables (:func:`cnnlab.tables.markdown_table`), images at
  ``figures/<name>`` beside the report;
- :func:`to_html`: one HTML5 file, images embedded as base64 data URIs, all text escaped;
- :func:`write_report` writes both plus the figures into a folder.

Nothing here knows about the pipeline: the sections (one module per experiment) fill a :class:`Document`.
"""

from __future__ import annotations

import base64
import html
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from cnnlab.tables import escape_markdown as _md
from cnnlab.tables import markdown_table, numeric_columns, table_cells

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# --------------------------------------------------------------------------- document model


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    """``frame`` holds the cells as shown (strings; None/NaN render as an em dash). A column whose cells
    are all numbers (``12.5``, ``+3.1``, ``1.5e-04``, ``66.2 %``) is right-aligned."""

    frame: pd.DataFrame
    caption: str


@dataclass
class Figure:
    """A PNG ``path`` shown as ``figures/<name>`` in Markdown and embedded in HTML; ``alt`` is a short
    description of the image, ``caption`` says what it shows."""

    path: Path
    name: str
    alt: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


# --------------------------------------------------------------------------- rendering

CSS = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
       max-width: 62rem; margin: 2rem auto; padding: 0 1rem; }
h1, h2, h3 { line-height: 1.2; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1.5rem 0; font-size: 0.9rem; }
caption { caption-side: bottom; text-align: left; padding-top: 0.4rem; color: #444; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5rem 0; } img { max-width: 100%; max-height: 40rem; width: auto; height: auto; }
figcaption, caption { font-size: 0.9rem; } figcaption { color: #444; }
""".strip()


def _numbered(doc: Document) -> list[tuple[Block, str]]:
    """Each block with its label: "Table 2", "Figure 3" (empty for other blocks)."""
    counts = {Table: 0, Figure: 0}
    out = []
    for block in doc.blocks:
        label = ""
        if type(block) in counts:
            counts[type(block)] += 1
            label = f"{type(block).__name__} {counts[type(block)]}"
        out.append((block, label))
    return out


def to_markdown(doc: Document) -> str:
    parts = [f"# {_md(doc.title)}"]
    for block, label in _numbered(doc):
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {_md(block.text)}")
        elif isinstance(block, Paragraph):
            parts.append(_md(block.text))
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {_md(item)}" for item in block.items))
        elif isinstance(block, Table):
            parts.append(markdown_table(block.frame) + f"\n\n*{label}. {_md(block.caption)}*")
        elif isinstance(block, Figure):
            parts.append(f"![{_md(block.alt)}](figures/{quote(block.name)})\n\n*{label}. {_md(block.caption)}*")
    return "\n\n".join(parts) + "\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(doc: Document) -> str:
    esc = html.escape
    body = [f"<h1>{esc(doc.title)}</h1>"]
    for block, label in _numbered(doc):
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>\n" + "\n".join(f"<li>{esc(item)}</li>" for item in block.items) + "\n</ul>")
        elif isinstance(block, Table):
            header, rows = table_cells(block.frame)
            numeric = numeric_columns(rows, len(header))
            cls = [' class="num"' if n else "" for n in numeric]
            head = "".join(f"<th{c}>{esc(h)}</th>" for h, c in zip(header, cls, strict=True))
            cells = ["<tr>" + "".join(f"<td{c}>{esc(v)}</td>" for v, c in zip(row, cls, strict=True)) + "</tr>"
                     for row in rows]
            body.append(f"<table>\n<caption><strong>{label}.</strong> {esc(block.caption)}</caption>\n"
                        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(cells) + "\n</tbody>\n</table>")
        elif isinstance(block, Figure):
            body.append(f'<figure>\n<img src="{_data_uri(block.path)}" alt="{esc(block.alt)}">\n'
                        f"<figcaption><strong>{label}.</strong> {esc(block.caption)}</figcaption>\n</figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(doc.title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def write_report(doc: Document, folder: Path) -> None:
    """``report.md``, ``report.html`` and ``figures/<name>`` into ``folder`` (the caller makes it atomic)."""
    names = [f.name for f in doc.figures]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate figure names in the report: {names}")
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    for figure in doc.figures:
        shutil.copyfile(figure.path, folder / "figures" / figure.name)
    (folder / "report.md").write_text(to_markdown(doc), encoding="utf-8")
    (folder / "report.html").write_text(to_html(doc), encoding="utf-8")
