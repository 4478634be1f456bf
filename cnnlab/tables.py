"""The one Markdown table renderer of the project (tables/*.md and reports/report.md).

A table is a DataFrame of cells as shown. :func:`markdown_table` writes a GitHub-flavoured pipe table:
missing cells (None/NaN) as an em dash, every cell and header escaped so that ``|``, ``*``, ``<`` etc. show
as text, and numeric columns right-aligned. Which columns are numeric is detected from the cells
(:func:`numeric_columns`) unless the caller names them. Only pandas and the standard library: any module
may import this one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import pandas as pd

MISSING = "—"

_NUMBER = re.compile(r"^[+\-−]?\d[\d,.]*(e[+\-]?\d+)?( ?%)?$")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#])")


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell(value: object) -> str:
    """A cell as shown: its ``str``, or :data:`MISSING` for None/NaN."""
    return MISSING if is_missing(value) else str(value)


def escape_markdown(text: str) -> str:
    """Backslash-escape the characters that Markdown (or GFM tables) would interpret."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def table_cells(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of ``frame`` as display strings."""
    header = [str(c) for c in frame.columns]
    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    return header, rows


def numeric_columns(rows: list[list[str]], width: int) -> list[bool]:
    """Per column: do all its cells read as numbers (``12.5``, ``+3.1``, ``1.5e-04``, ``66.2 %``; missing or
    empty cells allowed), with at least one number?"""
    return [all(_NUMBER.match(r[i]) or r[i] in (MISSING, "") for r in rows)
            and any(r[i] not in (MISSING, "") for r in rows) for i in range(width)]


def markdown_table(frame: pd.DataFrame, right: Iterable[str] | None = None) -> str:
    """``frame`` as a pipe table (lines joined by newlines, no trailing newline).

    ``right`` names the right-aligned columns; None detects them with :func:`numeric_columns`.
    """
    header, rows = table_cells(frame)
    if right is None:
        aligned = numeric_columns(rows, len(header))
    else:
        names = set(right)
        aligned = [h in names for h in header]
    lines = ["| " + " | ".join(map(escape_markdown, header)) + " |",
             "|" + "|".join("---:" if a else "---" for a in aligned) + "|"]
    lines += ["| " + " | ".join(map(escape_markdown, row)) + " |" for row in rows]
    return "\n".join(lines)
