"""Tables that compare trained models: plain vs residual test accuracy per depth and variant.

Depth 18 is ResNet-18 without / with skips (:mod:`cnnlab.families`): its rows carry ``family`` "ResNet-18", sort
after the 6n+2 depths of their variant, get their own panel in the accuracy-by-depth plot data and their own key
(``resnet18``) in the metrics; "deepest" means the deepest 6n+2 net.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from cnnlab.families import LABELS, RESNET18, family_of, model_label
from cnnlab.pipeline import split_gradient_name, split_key
from cnnlab.tables import MISSING, markdown_table

ARCHS = ("plain", "residual")
#: the summarised columns of :func:`accuracy_table`: each has a mean (the column itself), ``_std`` and ``_n``
ACCURACY_COLUMNS = (*ARCHS, "residual_minus_plain")


def seed_accuracies(metrics: list[dict]) -> pd.DataFrame:
    """One row per trained classifier (variant, depth, arch, seed, test_acc, note); a diverged model has NaN
    accuracy and a note, so it can never pass for a real result (nor enter a mean)."""
    rows = []
    for m in metrics:
        arch, depth, variant, seed = split_key(m["model"])
        diverged = m.get("diverged")
        rows.append({"variant": variant, "depth": depth, "arch": arch, "seed": seed,
                     "test_acc": math.nan if diverged else m["test_acc"],
                     "note": f"{arch} diverged in epoch {m['diverged_epoch']}" if diverged else ""})
    long = pd.DataFrame(rows)
    if long["seed"].nunique() > 1:  # with one seed the notes read as before seeds existed
        long["note"] = [f"{n} (seed {s})" if n else "" for n, s in zip(long["note"], long["seed"], strict=True)]
    return long


def accuracy_table(metrics: list[dict]) -> pd.DataFrame:
    """One row per (variant, depth): plain and residual test accuracy and residual − plain, each as the mean
    over seeds (the column itself), the sample std (``_std``, ddof=1: NaN for fewer than two seeds) and the
    count (``_n``); every seed's accuracy (``plain_seed<s>``, ``residual_seed<s>``); and the notes.

    The gap is taken per seed (residual and plain trained with the same seed) before it is averaged, so a
    seed where either model diverged drops out of the gap, not just out of one mean.
    """
    long = seed_accuracies(metrics)
    per_seed = long.pivot(index=["variant", "depth", "seed"], columns="arch", values="test_acc")
    per_seed = per_seed.reindex(columns=list(ARCHS))
    per_seed["residual_minus_plain"] = per_seed["residual"] - per_seed["plain"]
    groups = per_seed.groupby(level=["variant", "depth"])
    table = pd.concat([groups.mean(), groups.std(ddof=1).add_suffix("_std"), groups.count().add_suffix("_n")],
                      axis=1)
    table = table[[f"{c}{suffix}" for c in ACCURACY_COLUMNS for suffix in ("", "_std", "_n")]]
    for arch in ARCHS:
        seeds = per_seed[arch].unstack("seed")
        table = table.join(seeds.rename(columns=lambda s, a=arch: f"{a}_seed{s}"))
    table["note"] = long.groupby(["variant", "depth"])["note"].apply(lambda s: "; ".join(n for n in s if n))
    table = table.reset_index()
    table.insert(2, "family", [LABELS[family_of(d)] for d in table["depth"]])
    return table.sort_values(["variant", "family", "depth"]).reset_index(drop=True)  # "6n+2" < "ResNet-18"


def is_resnet18(depth: int) -> bool:
    return family_of(depth) == RESNET18


def seed_columns(table: pd.DataFrame, arch: str) -> dict[int, str]:
    """Seed -> the column of :func:`accuracy_table` holding that seed's accuracy of ``arch``."""
    prefix = f"{arch}_seed"
    return {int(c[len(prefix):]): c for c in table.columns if c.startswith(prefix)}


def several_seeds(table: pd.DataFrame) -> bool:
    """Was each model trained with more than one seed? Only then do the outputs show std and seeds."""
    return len(seed_columns(table, "plain")) > 1


def accuracy_csv(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`accuracy_table` as ``plots/compare_classifiers/accuracy.csv`` writes it: every column with
    several seeds; with one, the columns of a single run (the std, n and per-seed columns would only repeat
    the means or be empty)."""
    if several_seeds(table):
        return table
    return table[["variant", "depth", "family", *ACCURACY_COLUMNS, "note"]]


def accuracy_by_depth(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`accuracy_table` as a long table (``model`` = arch, ``panel`` = variant, ``depth``,
    ``test_accuracy``: the mean over seeds): the data of the DVC plot of accuracy against depth."""
    long = table.melt(id_vars=["variant", "depth"], value_vars=list(ARCHS), var_name="model",
                      value_name="test_accuracy")
    # ResNet-18 is another family, not a point on the 6n+2 depth line: its own panel
    long["variant"] = [f"{v}, ResNet-18" if is_resnet18(d) else v for v, d in zip(long["variant"], long["depth"],
                                                                                  strict=True)]
    return long.rename(columns={"variant": "panel"})[["model", "panel", "depth", "test_accuracy"]]


def _rounded(value: float) -> float | None:
    return None if pd.isna(value) else round(float(value), 4)


def _metrics_entry(row: pd.Series, spread: bool) -> dict:
    """The numbers of one depth: the means; with several seeds also each one's std and n."""
    entry: dict = {}
    for col in ACCURACY_COLUMNS:
        entry[col] = _rounded(row[col])
        if spread:
            entry[f"{col}_std"] = _rounded(row[f"{col}_std"])
            entry[f"{col}_n"] = int(row[f"{col}_n"])
    return entry


def table_metrics(table: pd.DataFrame) -> dict:
    """Nested dict ``{variant: {"depth-20": {"plain": .., "residual": .., "residual_minus_plain": ..}}}``:
    means over seeds; with several seeds each also has ``<name>_std`` (sample std, null for n < 2) and
    ``<name>_n`` (one seed: the file reads as before seeds, so old and new runs line up in ``dvc metrics diff``).

    Each variant also gets ``"deepest"`` (the same entry for its largest 6n+2 depth, plus ``depth``), so that
    ``dvc metrics diff`` between two depth sweeps puts their deepest nets' accuracies on one row; ResNet-18 (depth
    18) is ``"resnet18"`` (plain = without skips).
    """
    spread = several_seeds(table)
    out: dict = {}
    for _, row in table.sort_values("depth").iterrows():
        entry = _metrics_entry(row, spread)
        if is_resnet18(row["depth"]):
            out.setdefault(row["variant"], {})[RESNET18] = entry
            continue
        out.setdefault(row["variant"], {})[f"depth-{row['depth']}"] = entry
        out[row["variant"]]["deepest"] = {"depth": int(row["depth"]), **entry}
    return out


def mean_std(mean: float, std: float, scale: float = 100, digits: int = 2, sign: bool = False) -> str | None:
    """``"81.33 ± 1.25"`` (``scale`` × the numbers); the mean alone when std is NaN (a single seed), None
    when the mean is missing."""
    if pd.isna(mean):
        return None
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    shown = fmt.format(scale * mean)
    return shown if pd.isna(std) else f"{shown} ± {scale * std:.{digits}f}"


def _per_seed(table: pd.DataFrame, arch: str) -> pd.Series:
    """Every seed's accuracy of ``arch`` in percent, ``"80.00, 82.00, —"`` in seed order."""
    cols = [c for _, c in sorted(seed_columns(table, arch).items())]
    return table[cols].apply(lambda r: ", ".join(mean_std(v, math.nan) or MISSING for v in r), axis=1)


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub table with accuracies as percentages; missing/diverged cells as an em dash. With several
    seeds the cells are mean ± std over seeds, with the number of seeds and every seed's value."""
    def cells(col: str, sign: bool = False) -> pd.Series:
        return pd.Series([mean_std(m, s, sign=sign) for m, s in zip(table[col], table[f"{col}_std"], strict=True)],
                         index=table.index)

    depth = [f"{d} ({LABELS[RESNET18]})" if is_resnet18(d) else d for d in table["depth"]]
    shown = pd.DataFrame({"variant": table["variant"], "depth": depth,
                          "plain acc. (%)": cells("plain"), "residual acc. (%)": cells("residual"),
                          "residual − plain (pp)": cells("residual_minus_plain", sign=True)})
    if several_seeds(table):
        shown["seeds"] = table["residual_minus_plain_n"]
        for arch in ARCHS:
            shown[f"{arch} per seed (%)"] = _per_seed(table, arch)
    shown["note"] = table["note"]
    right = ["depth", "plain acc. (%)", "residual acc. (%)", "residual − plain (pp)"] + ["seeds"] * several_seeds(table)
    return markdown_table(shown, right=right) + "\n"


def stack_tables(tables: dict[str, pd.DataFrame], labels: dict[str, dict]) -> pd.DataFrame:
    """One long table from many models' tables: each row gets its model's ``labels[name]`` as leading
    columns (e.g. ``model`` and ``panel``, what the overlaid DVC plot templates colour and facet by)."""
    frames = [table.assign(**labels[name]) for name, table in tables.items()]
    first = labels[next(iter(tables))]
    stacked = pd.concat(frames, ignore_index=True)
    return stacked[list(first) + [c for c in stacked.columns if c not in first]]


def classifier_labels(key: str, with_seed: bool = False) -> dict:
    """``model`` (arch-depth, with ``with_seed`` also ``seed <s>``: one line per run in the overlaid DVC plots),
    ``panel`` (variant) and the fields of a train_classifier key (the seed only ``with_seed``: a single seed's
    curves.csv keeps the columns of a single run)."""
    arch, depth, variant, seed = split_key(key)
    label = model_label(arch, depth)
    labels = {"model": label, "panel": variant, "arch": arch, "depth": depth, "variant": variant}
    return (labels | {"model": f"{label} seed {seed}", "seed": seed}) if with_seed else labels


def gradient_labels(name: str, with_seed: bool = False) -> dict:
    """``model`` (arch-depth; a trained classifier's with ``with_seed`` also ``seed <s>``, one line per run) and
    ``panel`` (variant and init) of a gradient_stats name."""
    f = split_gradient_name(name)
    init = "trained model" if f["init"] == "trained" else f"{f['init']} init"
    seed = f" seed {f['seed']}" if with_seed and "seed" in f else ""
    return {"model": f"{model_label(f['arch'], f['depth'])}{seed}", "panel": f"{f['variant']}, {init}"}


#: the numbers of a gradient summary (:func:`cnnlab.gradients.summarize`) kept in the metrics JSON: what
#: people compare across runs and what :func:`gradient_table` reads; the per-layer detail stays in the CSVs
GRADIENT_HEADLINE = ("diverged", "first_grad_mean_abs", "last_grad_mean_abs", "grad_mean_abs_ratio", "grad_rms_ratio",
                    "grad_l2_ratio")


def gradient_headline(summary: dict) -> dict:
    """The :data:`GRADIENT_HEADLINE` of a full gradient summary, for ``metrics/gradient_stats/<name>.json``."""
    return {key: summary[key] for key in GRADIENT_HEADLINE}


_GRADIENT_VALUES = ("first_mean_abs", "last_mean_abs", "ratio_mean_abs", "ratio_rms", "ratio_l2")
_GRADIENT_MODEL = ["variant", "init", "depth", "arch"]


def _over_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model from one row per run: each number's mean over the training seeds, its sample std
    (``_std``, NaN for one seed) and the number of seeds (``seeds``); the runs' notes joined."""
    runs = runs.astype({c: float for c in _GRADIENT_VALUES})  # a skipped model's None -> NaN
    groups = runs.groupby(_GRADIENT_MODEL, sort=False)
    numbers = groups[list(_GRADIENT_VALUES)]
    table = pd.concat([numbers.mean(), numbers.std(ddof=1).add_suffix("_std"), groups.size().rename("seeds"),
                       groups["note"].agg(lambda s: "; ".join(dict.fromkeys(n for n in s if n)))], axis=1)
    return table.reset_index()


def gradient_table(summaries: dict[str, dict]) -> pd.DataFrame:
    """The seeds' table, extended: first/last layer mean |grad| (averaged over the K iterations), their
    ratio, and the per-parameter RMS ratio, one row per model; skipped or diverged models keep a note.
    A trained model of several training seeds is one row: the means over its seeds, with ``_std`` columns
    and ``seeds`` (1 for the models at initialisation)."""
    rows = []
    for name, s in summaries.items():
        row = {**split_gradient_name(name),
               "first_mean_abs": s.get("first_grad_mean_abs"), "last_mean_abs": s.get("last_grad_mean_abs"),
               "ratio_mean_abs": s.get("grad_mean_abs_ratio"), "ratio_rms": s.get("grad_rms_ratio"),
               "ratio_l2": s.get("grad_l2_ratio"),
               "note": s.get("skipped", "diverged (NaN/inf gradients)" if s.get("diverged") else "")}
        rows.append(row)
    table = _over_seeds(pd.DataFrame(rows).drop(columns="seed", errors="ignore"))
    order = {"default": 0, "scaled": 1, "trained": 2}
    table["_init"] = table["init"].map(order)
    return table.sort_values(["variant", "_init", "depth", "arch"]).drop(columns="_init").reset_index(drop=True)


def gradient_csv(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`gradient_table` as ``plots/gradient_report/table.csv`` writes it: with one training seed the
    columns of single runs (the model's fields, the numbers, the note), with several also ``_std`` and
    ``seeds``."""
    if (table["seeds"] > 1).any():
        return table
    return table[["arch", "depth", "variant", "init", *_GRADIENT_VALUES, "note"]]


#: the shown gradient table (tables/gradient_stats.md and the report): header -> gradient_table column
GRADIENT_COLUMNS = {"variant": "variant", "init": "init", "depth": "depth", "arch": "arch",
                    "first layer mean |g|": "first_mean_abs", "last layer mean |g|": "last_mean_abs",
                    "first / last": "ratio_mean_abs", "RMS first / last": "ratio_rms", "note": "note"}
_GRADIENT_NUMBERS = ("first_mean_abs", "last_mean_abs", "ratio_mean_abs", "ratio_rms")


def gradient_display(table: pd.DataFrame, number: Callable[[float], str]) -> pd.DataFrame:
    """:func:`gradient_table` as shown: the :data:`GRADIENT_COLUMNS`, numbers formatted by ``number``; with
    several training seeds ``mean ± std`` and a ``seeds`` column."""
    def cells(col: str) -> list:
        return [number(m) if pd.isna(s) or number(m) is None else f"{number(m)} ± {number(s)}"
                for m, s in zip(table[col], table[f"{col}_std"], strict=True)]

    shown = pd.DataFrame({shown: cells(col) if col in _GRADIENT_NUMBERS else table[col]
                          for shown, col in GRADIENT_COLUMNS.items()})
    if (table["seeds"] > 1).any():
        shown.insert(len(shown.columns) - 1, "seeds", table["seeds"])
    return shown


def gradient_markdown(table: pd.DataFrame) -> str:
    def sci(v) -> str | None:
        return None if v is None or pd.isna(v) else f"{v:.2g}"

    shown = gradient_display(table, sci)
    numeric = {"depth", "seeds", *(h for h, c in GRADIENT_COLUMNS.items() if c in _GRADIENT_NUMBERS)}
    return markdown_table(shown, right=[c for c in shown.columns if c in numeric]) + "\n"


# --------------------------------------------------------------------------- gradients over training

#: the statistic of the over-training figures and of the stacked ``over_training.csv``
OVER_TRAINING_STAT = "grad_rms"


def first_last_epochs(gradients: pd.DataFrame, statistic: str = OVER_TRAINING_STAT) -> pd.DataFrame:
    """The rows of ``statistic`` at the first and at the last recorded epoch of a ``train_classifier``
    ``gradients.csv`` (epoch 0 = the first step, at the initial weights, when it was recorded); empty when
    nothing was recorded."""
    rows = gradients[gradients["statistic"] == statistic]
    if rows.empty:
        return rows
    return rows[rows["epoch"].isin([rows["epoch"].min(), rows["epoch"].max()])].reset_index(drop=True)


def over_training_table(gradients: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every classifier's first- and last-epoch profile (:func:`first_last_epochs`) in one long table for the
    overlaid DVC plot: ``model`` = the network (:func:`cnnlab.families.model_label`) and epoch (one line each),
    ``panel`` = depth, variant and seed (the figure the rows belong to), then the key's fields and the CSV's
    columns."""
    tables, labels = {}, {}
    for key, frame in gradients.items():
        arch, depth, variant, seed = split_key(key)
        rows = first_last_epochs(frame)
        for epoch, part in rows.groupby("epoch", sort=True):
            name = f"{key}@{epoch}"
            tables[name] = part.drop(columns="epoch")
            labels[name] = {"model": f"{model_label(arch, depth)} epoch {epoch}", "panel": f"{depth}-{variant}-{seed}",
                            "arch": arch, "depth": depth, "variant": variant, "seed": seed, "epoch": int(epoch)}
    if not tables:
        columns = ["model", "panel", "arch", "depth", "variant", "seed", "epoch"]
        return pd.DataFrame(columns=columns + [c for c in next(iter(gradients.values()), pd.DataFrame()).columns
                                               if c != "epoch"])
    return stack_tables(tables, labels)
