"""Experiment 1, plain vs residual networks on CIFAR-10: accuracy table, findings and figures."""

from __future__ import annotations

import pandas as pd

from cnnlab.compare import ARCHS, accuracy_table, is_resnet18, seed_columns, several_seeds
from cnnlab.config import get
from cnnlab.pipeline import (
    classifier_key,
    classifier_keys,
    classifier_metrics,
    classifier_seeds,
    display_name,
    split_key,
)
from cnnlab.report.document import Block, Heading, Paragraph, Table
from cnnlab.report.run import Run
from cnnlab.report.text import fixed, half_up, pct_std, plural, pp, pp_std, series, trend, words
from cnnlab.tables import is_missing

#: what the experiment reproduces, quoted beside every run's table: the first seed document's 35-layer nets
SEEDS_REFERENCE = ("For reference, the seed document reports 77 % (plain) and 85 % (residual) test accuracy for "
                   "35-layer networks after full training on CIFAR-10; 32 is the nearest 6n+2 depth.")


def _accuracy_findings(table: pd.DataFrame) -> list[str]:
    """Per variant: the accuracies at each depth, the gap's trend and who leads, per architecture's trend.
    With several seeds every accuracy and gap is the mean ± std over seeds, and the trends are the means'."""
    out = []
    seeds = len(seed_columns(table, "plain"))
    for variant, rows in table.groupby("variant", sort=False):
        resnet18 = rows["depth"].map(is_resnet18)
        out.extend(_resnet18_finding(variant, r) for r in rows[resnet18].itertuples())
        rows = rows[~resnet18].sort_values("depth")
        if rows.empty:
            continue
        both = rows.dropna(subset=["plain", "residual"])
        at = [f"at depth {r.depth} the residual network reaches {pct_std(r.residual, r.residual_std)} test accuracy "
              f"and the plain one {pct_std(r.plain, r.plain_std)} "
              f"({pp_std(r.residual_minus_plain, r.residual_minus_plain_std)})" for r in both.itertuples()]
        if not at:
            out.append(f"{variant}: no depth has both accuracies (see the notes in the table).")
            continue
        text = f"{variant}: " + "; ".join(at) + "."
        if seeds > 1:
            text += f" (Mean ± sample std over {seeds} training seeds per model; the gap is paired by seed.)"
        gaps = [float(half_up(100 * g, 1)) for g in both["residual_minus_plain"]]
        text += " " + _leaders(gaps, both["depth"].tolist())
        if len(gaps) >= 2:
            how = trend(gaps)
            shown = series([pp(g / 100) for g in gaps])
            text += (f" Residual − plain {how} with depth ({shown})." if how else
                     f" Residual − plain does not change monotonically with depth ({shown}).")
            for arch in ("plain", "residual"):
                values = [float(half_up(100 * v, 1)) for v in both[arch]]
                direction = trend(values)
                if direction:
                    shown = [pct_std(v, s) for v, s in zip(both[arch], both[f"{arch}_std"], strict=True)]
                    text += f" The {arch} network's accuracy {direction} with depth ({series(shown)})."
        out.append(text)
    return out


def _resnet18_finding(variant: str, r) -> str:
    """ResNet-18 (depth 18) with and without skips: the accuracies, the gap and who is ahead."""
    if is_missing(r.plain) or is_missing(r.residual):
        return f"{variant}, ResNet-18: not both accuracies (see the notes in the table)."
    gap = float(half_up(100 * r.residual_minus_plain, 1))
    lead = ("The net with skips is ahead." if gap > 0 else "The net without skips is ahead." if gap < 0 else
            "They tie.")
    return (f"{variant}, ResNet-18: with skips {pct_std(r.residual, r.residual_std)}, without skips "
            f"{pct_std(r.plain, r.plain_std)} ({pp_std(r.residual_minus_plain, r.residual_minus_plain_std)}). {lead}")


def _leaders(gaps: list[float], depths: list[int]) -> str:
    """Which architecture is ahead at which depth, from the rounded gaps residual − plain."""
    groups = {name: [str(d) for g, d in zip(gaps, depths, strict=True) if test(g)]
              for name, test in (("residual", lambda g: g > 0), ("plain", lambda g: g < 0), ("tie", lambda g: g == 0))}
    everywhere = " at every depth" if len(gaps) > 1 else ""
    if len(groups["residual"]) == len(gaps):
        return f"The residual network is ahead{everywhere}."
    if len(groups["plain"]) == len(gaps):
        return f"The plain network is ahead{everywhere}."
    if len(groups["tie"]) == len(gaps):
        return f"The two networks tie{everywhere}."
    parts = [f"the {arch} network is ahead at depth {words(ds)}" for arch, ds in groups.items() if arch != "tie" and ds]
    if groups["tie"]:
        parts.append(f"they tie at depth {words(groups['tie'])}")
    text = words(parts)
    return text[0].upper() + text[1:] + "."


def _cell(mean: float, std: float, signed: bool = False) -> str:
    """A table cell in percent: "66.15", or "66.15 ± 0.42" when there is a std (several seeds)."""
    shown = pp(mean, 2).removesuffix(" pp") if signed else fixed(100 * mean, 2)
    return shown if is_missing(std) or is_missing(mean) else f"{shown} ± {fixed(100 * std, 2)}"


def _model_means(table: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """``arch-depth-variant`` -> (mean, std) of its finished seeds, for every model with an accuracy."""
    return {display_name(arch, r["depth"], r["variant"]): (r[arch], r[f"{arch}_std"])
            for _, r in table.iterrows() for arch in ARCHS if not is_missing(r[arch])}


def _run_label(key: str, with_seed: bool) -> str:
    arch, depth, variant, seed = split_key(key)
    return display_name(arch, depth, variant) + (f" (seed {seed})" if with_seed else "")


def _curves_caption(table: pd.DataFrame, metrics: dict[str, dict], epochs: int) -> str:
    """The caption of the curves figure: how many runs, the best and the lowest model, diverged runs."""
    seeds = len(seed_columns(table, "plain"))
    runs = f"the {len(metrics)} classifiers" if seeds == 1 else (
        f"the {len(metrics) // seeds} classifiers, {seeds} training seeds each (mean curve, band from the lowest to "
        "the highest seed)")
    text = (f"Test accuracy per epoch ({plural(epochs, 'epoch')} of training) for {runs} "
            "(plain blue, residual vermillion).")
    done = _model_means(table)
    if done:
        best, worst = (f(done, key=lambda k: done[k][0]) for f in (max, min))
        over = " (means over seeds)" if seeds > 1 else ""
        text += (f" The best final accuracy{over} is {pct_std(*done[best])} ({best}), the lowest "
                 f"{pct_std(*done[worst])} ({worst}).")
    diverged = [f"{_run_label(k, seeds > 1)} diverged in epoch {m.get('diverged_epoch')}"
                for k, m in metrics.items() if m.get("diverged")]
    return text + (" " + "; ".join(diverged) + "." if diverged else "")


def classifiers(run: Run, params: dict) -> list[Block]:
    keys = classifier_keys(params, by_variant=True)
    metrics = {k: run.json(classifier_metrics(k), f"train_classifier@{k}") for k in keys}
    table = accuracy_table([{**m, "model": k} for k, m in metrics.items()])
    first_seed = classifier_seeds(params)[0]  # every seed of a model has the same parameters

    def per_arch(variant: str, depth: int, field: str, fmt, collapse: bool = False) -> str:
        values = [metrics.get(classifier_key(a, depth, variant, first_seed), {}).get(field) for a in ARCHS]
        shown = [fmt(v) for v in values if v is not None]
        return shown[0] if collapse and len(set(shown)) == 1 else " / ".join(shown)

    spread = several_seeds(table)
    rows = []
    for _, r in table.iterrows():
        row = {"variant": r["variant"], "depth": "18 (ResNet-18)" if is_resnet18(r["depth"]) else r["depth"],
               "parameters (plain / residual)": per_arch(r["variant"], r["depth"], "params",
                                                         lambda v: f"{v / 1e6:.3f}M", True),
               "plain acc. (%)": _cell(r["plain"], r["plain_std"]),
               "residual acc. (%)": _cell(r["residual"], r["residual_std"]),
               "residual − plain (pp)": _cell(r["residual_minus_plain"], r["residual_minus_plain_std"], signed=True)}
        if spread:
            row["seeds"] = str(r["residual_minus_plain_n"])
        rows.append(row | {"note": r["note"]})
    findings = _accuracy_findings(table)
    curves = _curves_caption(table, metrics, get(params, "train_classifier.epochs"))
    six = table[~table["depth"].map(is_resnet18)]
    deepest = six.sort_values("depth").groupby("variant", sort=False).tail(1)
    at_deepest = " ".join(f"{r.variant}, depth {r.depth}: residual {pct_std(r.residual, r.residual_std)}, "
                          f"plain {pct_std(r.plain, r.plain_std)}." for r in deepest.itertuples())
    return [
        Heading("Plain vs residual networks on CIFAR-10"),
        Paragraph("Plain and residual networks share every layer; the residual ones add the identity shortcut "
                  "around each block. Both are trained with the same recipe and evaluated on the test split."
                  + (" Depth 18 is ResNet-18 (the second seed document's model, on torchvision's blocks): plain "
                     "means without skips, residual with them." if len(six) < len(table) else "")),
        Table(pd.DataFrame(rows), "Test accuracy of the final weights per depth"
              + (", mean ± sample std over the seeds (seeds: how many pair a plain and a residual run)" if spread
                 else "") + ". " + " ".join(findings) + " " + SEEDS_REFERENCE),
        run.figure("plots/compare_classifiers/accuracy_vs_depth.png", "compare_classifiers",
                   "Test accuracy against depth, plain vs residual",
                   "Test accuracy against depth (plain blue, residual vermillion"
                   + ("; error bars: ± sample std over seeds, dots: single seeds" if spread else "")
                   + "). At the deepest depth: "
                   + at_deepest),
        run.figure("plots/compare_classifiers/test_accuracy_curves.png", "compare_classifiers",
                   "Test accuracy per epoch of every classifier", curves),
    ]
