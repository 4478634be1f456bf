"""The one Markdown table renderer (cnnlab/tables.py), used by tables/*.md and by the report."""

import math

import pandas as pd

from cnnlab.tables import MISSING, markdown_table, numeric_columns


def test_cells_are_escaped_and_missing_ones_show_an_em_dash():
    frame = pd.DataFrame({"name |x|": ["a_b", "<i>*c*</i>", None], "value": ["1.5e-04", math.nan, "+3.1"]})
    assert markdown_table(frame).splitlines() == [
        r"| name \|x\| | value |",
        "|---|---:|",
        r"| a\_b | 1.5e-04 |",
        rf"| \<i\>\*c\*\</i\> | {MISSING} |",
        f"| {MISSING} | +3.1 |",
    ]


def test_numeric_columns_need_one_number_and_nothing_but_numbers():
    rows = [["12.5", "66.2 %", "", MISSING, "1,234", "2 x"], ["−3", "+0.1 %", "", MISSING, "5", "7"]]
    assert numeric_columns(rows, 6) == [True, True, False, False, True, False]


def test_named_columns_are_right_aligned_even_without_a_number():
    frame = pd.DataFrame({"model": ["plain-8"], "accuracy": [None], "note": ["diverged"]})
    assert markdown_table(frame).splitlines()[1] == "|---|---|---|"  # detected: no number in "accuracy"
    assert markdown_table(frame, right=["accuracy"]).splitlines()[1] == "|---|---:|---|"
    assert not markdown_table(frame).endswith("\n")
