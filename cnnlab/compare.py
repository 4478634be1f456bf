"""Tables that compare trained models: plain vs residual test accuracy per depth and variant."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from cnnlab.pipeline import split_gradient_name, split_key
from cnnlab.tables import markdown_table


def accuracy_table(metrics: list[dict]) -> pd.DataFrame:
    """One row per (variant, depth): plain and residual test accuracy, their difference, and notes.

    A diverged model shows NaN accuracy and a note, so it can never pass for a real result.
    """
    rows = []
    for m in metrics:
        arch, depth, variant = split_key(m["model"])
        acc = math.nan if m.get("diverged") else m["test_acc"]
        rows.append({"variant": variant, "depth": depth, "arch": arch, "test_acc": acc,
                     "note": f"{arch} diverged in epoch {m['diverged_epoch']}" if m.get("diverged") else ""})
    long = pd.DataFrame(rows)
    table = long.pivot_table(index=["variant", "depth"], columns="arch", values="test_acc", dropna=False)
    table = table.reindex(columns=["plain", "residual"])
    table["residual_minus_plain"] = table["residual"] - table["plain"]
    notes = long.groupby(["variant", "depth"])["note"].apply(lambda s: "; ".join(n for n in s if n))
    table["note"] = notes
    return table.reset_index().sort_values(["variant", "depth"]).reset_index(drop=True)


def accuracy_by_depth(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`accuracy_table` as a long table (``model`` = arch, ``panel`` = variant, ``depth``,
    ``test_accuracy``): the data of the DVC plot of accuracy against depth."""
    long = table.melt(id_vars=["variant", "depth"], value_vars=["plain", "residual"], var_name="model",
                      value_name="test_accuracy")
    return long.rename(columns={"variant": "panel"})[["model", "panel", "depth", "test_accuracy"]]


def table_metrics(table: pd.DataFrame) -> dict:
    """Nested dict ``{variant: {"depth-20": {"plain": .., "residual": .., "residual_minus_plain": ..}}}``.

    Each variant also gets ``"deepest"`` (the same entry for its largest depth, plus ``depth``), so that
    ``dvc metrics diff`` between two depth sweeps puts their deepest nets' accuracies on one row.
    """
    out: dict = {}
    for row in table.sort_values("depth").itertuples(index=False):
        entry = {}
        for col in ("plain", "residual", "residual_minus_plain"):
            value = getattr(row, col)
            entry[col] = None if pd.isna(value) else round(float(value), 4)
        out.setdefault(row.variant, {})[f"depth-{row.depth}"] = entry
        out[row.variant]["deepest"] = {"depth": int(row.depth), **entry}
    return out


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub table with accuracies as percentages; missing/diverged cells as an em dash."""
    def pct(v: float) -> str | None:
        return None if pd.isna(v) else f"{100 * v:.2f}"

    def signed(v: float) -> str | None:
        return None if pd.isna(v) else f"{100 * v:+.2f}"

    shown = pd.DataFrame({"variant": table["variant"], "depth": table["depth"],
                          "plain acc. (%)": table["plain"].map(pct), "residual acc. (%)": table["residual"].map(pct),
                          "residual − plain (pp)": table["residual_minus_plain"].map(signed), "note": table["note"]})
    return markdown_table(shown, right=list(shown.columns[1:5])) + "\n"


def stack_tables(tables: dict[str, pd.DataFrame], labels: dict[str, dict]) -> pd.DataFrame:
    """One long table from many models' tables: each row gets its model's ``labels[name]`` as leading
    columns (e.g. ``model`` and ``panel``, what the overlaid DVC plot templates colour and facet by)."""
    frames = [table.assign(**labels[name]) for name, table in tables.items()]
    first = labels[next(iter(tables))]
    stacked = pd.concat(frames, ignore_index=True)
    return stacked[list(first) + [c for c in stacked.columns if c not in first]]


def classifier_labels(key: str) -> dict:
    """``model`` (arch-depth), ``panel`` (variant) and the fields of a train_classifier key."""
    arch, depth, variant = split_key(key)
    return {"model": f"{arch}-{depth}", "panel": variant, "arch": arch, "depth": depth, "variant": variant}


def gradient_labels(name: str) -> dict:
    """``model`` (arch-depth) and ``panel`` (variant and init) of a gradient_stats name."""
    f = split_gradient_name(name)
    init = "trained model" if f["init"] == "trained" else f"{f['init']} init"
    return {"model": f"{f['arch']}-{f['depth']}", "panel": f"{f['variant']}, {init}"}


#: the numbers of a gradient summary (:func:`cnnlab.gradients.summarize`) kept in the metrics JSON: what
#: people compare across runs and what :func:`gradient_table` reads; the per-layer detail stays in the CSVs
GRADIENT_HEADLINE = ("diverged", "first_grad_mean_abs", "last_grad_mean_abs", "grad_mean_abs_ratio", "grad_rms_ratio",
                    "grad_l2_ratio")


def gradient_headline(summary: dict) -> dict:
    """The :data:`GRADIENT_HEADLINE` of a full gradient summary, for ``metrics/gradient_stats/<name>.json``."""
    return {key: summary[key] for key in GRADIENT_HEADLINE}


def gradient_table(summaries: dict[str, dict]) -> pd.DataFrame:
    """The seeds' table, extended: first/last layer mean |grad| (averaged over the K iterations), their
    ratio, and the per-parameter RMS ratio, one row per model; skipped or diverged models keep a note."""
    rows = []
    for name, s in summaries.items():
        row = {**split_gradient_name(name),
               "first_mean_abs": s.get("first_grad_mean_abs"), "last_mean_abs": s.get("last_grad_mean_abs"),
               "ratio_mean_abs": s.get("grad_mean_abs_ratio"), "ratio_rms": s.get("grad_rms_ratio"),
               "ratio_l2": s.get("grad_l2_ratio"),
               "note": s.get("skipped", "diverged (NaN/inf gradients)" if s.get("diverged") else "")}
        rows.append(row)
    table = pd.DataFrame(rows)
    order = {"default": 0, "scaled": 1, "trained": 2}
    table["_init"] = table["init"].map(order)
    return table.sort_values(["variant", "_init", "depth", "arch"]).drop(columns="_init").reset_index(drop=True)


#: the shown gradient table (tables/gradient_stats.md and the report): header -> gradient_table column
GRADIENT_COLUMNS = {"variant": "variant", "init": "init", "depth": "depth", "arch": "arch",
                    "first layer mean |g|": "first_mean_abs", "last layer mean |g|": "last_mean_abs",
                    "first / last": "ratio_mean_abs", "RMS first / last": "ratio_rms", "note": "note"}
_GRADIENT_NUMBERS = ("first_mean_abs", "last_mean_abs", "ratio_mean_abs", "ratio_rms")


def gradient_display(table: pd.DataFrame, number: Callable[[float], str]) -> pd.DataFrame:
    """:func:`gradient_table` as shown: the :data:`GRADIENT_COLUMNS`, numbers formatted by ``number``."""
    return pd.DataFrame({shown: table[col].map(number) if col in _GRADIENT_NUMBERS else table[col]
                         for shown, col in GRADIENT_COLUMNS.items()})


def gradient_markdown(table: pd.DataFrame) -> str:
    def sci(v) -> str | None:
        return None if v is None or pd.isna(v) else f"{v:.2g}"

    shown = gradient_display(table, sci)
    numeric = {"depth", *(h for h, c in GRADIENT_COLUMNS.items() if c in _GRADIENT_NUMBERS)}
    return markdown_table(shown, right=numeric) + "\n"
