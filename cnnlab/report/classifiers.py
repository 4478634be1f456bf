"""Experiment 1, plain vs residual networks on CIFAR-10: accuracy table, findings and figures."""

from __future__ import annotations

import pandas as pd

from cnnlab.compare import accuracy_table
from cnnlab.config import get
from cnnlab.pipeline import classifier_key, classifier_keys, classifier_metrics
from cnnlab.report.document import Block, Heading, Paragraph, Table
from cnnlab.report.run import Run
from cnnlab.report.text import fixed, half_up, pct, plural, pp, series, trend, words


def _accuracy_findings(table: pd.DataFrame) -> list[str]:
    """Per variant: the accuracies at each depth, the gap's trend and who leads, per architecture's trend."""
    out = []
    for variant, rows in table.groupby("variant", sort=False):
        rows = rows.sort_values("depth")
        both = rows.dropna(subset=["plain", "residual"])
        at = [f"at depth {r.depth} the residual network reaches {pct(r.residual)} test accuracy and the plain one "
              f"{pct(r.plain)} ({pp(r.residual_minus_plain)})" for r in both.itertuples()]
        if not at:
            out.append(f"{variant}: no depth has both accuracies (see the notes in the table).")
            continue
        text = f"{variant}: " + "; ".join(at) + "."
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
                    text += (f" The {arch} network's accuracy {direction} with depth "
                             f"({series([pct(v) for v in both[arch]])}).")
        out.append(text)
    return out


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


def classifiers(run: Run, params: dict) -> list[Block]:
    keys = classifier_keys(params, by_variant=True)
    metrics = {k: run.json(classifier_metrics(k), f"train_classifier@{k}") for k in keys}
    table = accuracy_table([{**m, "model": k} for k, m in metrics.items()])

    def per_arch(variant: str, depth: int, field: str, fmt, collapse: bool = False) -> str:
        values = [metrics.get(classifier_key(a, depth, variant), {}).get(field) for a in ("plain", "residual")]
        shown = [fmt(v) for v in values if v is not None]
        return shown[0] if collapse and len(set(shown)) == 1 else " / ".join(shown)

    rows = [{"variant": r.variant, "depth": r.depth,
             "parameters (plain / residual)": per_arch(r.variant, r.depth, "params", lambda v: f"{v / 1e6:.3f}M", True),
             "plain acc. (%)": fixed(100 * r.plain, 2), "residual acc. (%)": fixed(100 * r.residual, 2),
             "residual − plain (pp)": pp(r.residual_minus_plain, 2).removesuffix(" pp"),
             "note": r.note} for r in table.itertuples()]
    findings = _accuracy_findings(table)
    epochs = get(params, "train_classifier.epochs")
    done = {k: m["test_acc"] for k, m in metrics.items() if not m.get("diverged")}
    curves = (f"Test accuracy per epoch ({plural(epochs, 'epoch')} of training) for the {len(keys)} classifiers "
              "(plain blue, residual vermillion).")
    if done:
        best, worst = max(done, key=done.get), min(done, key=done.get)
        curves += f" The best final accuracy is {pct(done[best])} ({best}), the lowest {pct(done[worst])} ({worst})."
    diverged = [f"{k} diverged in epoch {m.get('diverged_epoch')}" for k, m in metrics.items() if m.get("diverged")]
    if diverged:
        curves += " " + "; ".join(diverged) + "."
    deepest = table.sort_values("depth").groupby("variant", sort=False).tail(1)
    at_deepest = " ".join(f"{r.variant}, depth {r.depth}: residual {pct(r.residual)}, plain {pct(r.plain)}."
                          for r in deepest.itertuples())
    return [
        Heading("Plain vs residual networks on CIFAR-10"),
        Paragraph("Plain and residual networks share every layer; the residual ones add the identity shortcut "
                  "around each block. Both are trained with the same schedule and evaluated on the test split."),
        Table(pd.DataFrame(rows), "Test accuracy of the final weights per depth. " + " ".join(findings)),
        run.figure("plots/compare_classifiers/accuracy_vs_depth.png", "compare_classifiers",
                   "Test accuracy against depth, plain vs residual",
                   "Test accuracy against depth (plain blue, residual vermillion). At the deepest depth: "
                   + at_deepest),
        run.figure("plots/compare_classifiers/test_accuracy_curves.png", "compare_classifiers",
                   "Test accuracy per epoch of every classifier", curves),
    ]
