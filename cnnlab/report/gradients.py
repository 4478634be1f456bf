"""Gradient statistics: where do the gradients vanish? First / last layer table, findings and figures."""

from __future__ import annotations

import pandas as pd

from cnnlab.compare import gradient_display, gradient_table
from cnnlab.config import get
from cnnlab.families import RESNET18, family_of, model_label, net_label
from cnnlab.pipeline import (
    GRADIENT_REPORT,
    classifier_seeds,
    gradcam_keys,
    gradient_metrics,
    gradient_names,
    over_training_figure,
)
from cnnlab.report.document import Block, Bullets, Heading, Paragraph, Table
from cnnlab.report.run import Run
from cnnlab.report.text import plural, sci, trend, words

VANISHING = 1e-2  # first / last mean |grad| below this: the gradient vanishes towards the input
HEALTHY = 0.1  # between HEALTHY and 1 / HEALTHY: both ends of the net get gradients of a similar size


def _where(depth: int) -> str:
    return "in ResNet-18" if family_of(depth) == RESNET18 else f"at depth {depth}"


def _places(depths: list[int]) -> str:
    """``[8, 14, 18]`` -> "at depth 8 and 14 and in ResNet-18"."""
    six = [str(d) for d in depths if family_of(d) != RESNET18]
    parts = ([f"at depth {words(six)}"] if six else []) + (["in ResNet-18"] if len(six) < len(depths) else [])
    return " and ".join(parts)


def _describe_ratios(arch: str, rows: pd.DataFrame) -> str:
    """What the first / last mean |grad| ratios of one architecture over depths show. A trend over depth is
    claimed within the 6n+2 family only: ResNet-18 is another network, not a deeper or shallower 6n+2 net."""
    ratios, depths = rows["ratio_mean_abs"].tolist(), rows["depth"].tolist()
    at = ", ".join(f"{sci(r)} {_where(d)}" for r, d in zip(ratios, depths, strict=True))
    text = f"the {arch} net's first / last mean |g| is {at}"
    vanishing = [d for r, d in zip(ratios, depths, strict=True) if r < VANISHING]
    if vanishing:
        text += (f": its gradient vanishes towards the input {_places(vanishing)} (first layer below "
                 f"{VANISHING:g} of the last)")
    elif all(HEALTHY <= r <= 1 / HEALTHY for r in ratios):
        factor = max(max(r, 1 / r) for r in ratios)
        text += f": both ends stay within a factor of {factor:.1f}"
    six = [r for r, d in zip(ratios, depths, strict=True) if family_of(d) != RESNET18]
    direction = {"rises": "grows", "falls": "shrinks"}.get(trend([float(sci(r)) for r in six]))
    if direction and len(six) >= 2:
        text += f", and the ratio {direction} with depth"
    return text


def _collapsed(table: pd.DataFrame) -> pd.DataFrame:
    """Plain nets whose gradient is tiny at *both* ends: first- and last-layer mean |grad| below
    :data:`VANISHING` of the residual net's of the same depth, variant and init, while their own first / last
    ratio is not (so the ratio hides it). Columns: the plain row's fields plus ``first_vs``/``last_vs``."""
    key = ["depth", "variant", "init"]
    plain = table[table["arch"] == "plain"].set_index(key)
    residual = table[table["arch"] == "residual"].set_index(key)
    both = plain.merge(residual[["first_mean_abs", "last_mean_abs"]], left_index=True, right_index=True,
                       suffixes=("", "_res"))
    both["first_vs"] = both["first_mean_abs"] / both["first_mean_abs_res"]
    both["last_vs"] = both["last_mean_abs"] / both["last_mean_abs_res"]
    hit = (both["first_vs"] < VANISHING) & (both["last_vs"] < VANISHING) & (both["ratio_mean_abs"] >= VANISHING)
    return both[hit].reset_index()


def _collapse_finding(row) -> str:
    plain, residual = model_label("plain", row.depth), model_label("residual", row.depth)
    return (f"{row.variant}, {row.init} {'weights' if row.init == 'trained' else 'initialisation'}, "
            f"{plain}: its first-layer mean |g| is {sci(row.first_vs)} of {residual}'s and its last-layer "
            f"one {sci(row.last_vs)}: the gradient vanishes along the whole net, which its first / last ratio "
            f"({sci(row.ratio_mean_abs)}) hides. The last layer's gradient is the loss gradient times the features "
            "that reach it, so those features are already tiny: the signal dies out on the way forward.")


def _gradient_findings(table: pd.DataFrame, collapsed: pd.DataFrame) -> list[str]:
    out = []
    for (variant, init), group in table.groupby(["variant", "init"], sort=False):
        parts = []
        for arch, rows in group.groupby("arch", sort=True):
            rows = rows.dropna(subset=["ratio_mean_abs"]).sort_values("depth")
            rows = rows[rows["ratio_mean_abs"] > 0]
            if len(rows):
                parts.append(_describe_ratios(arch, rows))
        start = "trained classifiers" if init == "trained" else f"{init} initialisation"
        if parts:
            out.append(f"{variant}, {start}: " + "; ".join(parts) + ".")
    return out + [_collapse_finding(row) for row in collapsed.itertuples()]


OVER_TRAINING = (GRADIENT_REPORT / "over_training.csv").as_posix()


def _rms_profile(rows: pd.DataFrame) -> pd.Series:
    """The RMS gradient per layer of one profile (one net, one epoch), from the input layer to the last."""
    return rows[rows["statistic"] == "grad_rms"].sort_values("layer_index")["value"]


def _over_training(run: Run, params: dict) -> list[Block]:
    """The gradients-over-training figures of the first training seed, one per (depth, variant), captions from
    ``over_training.csv`` (the first- and last-epoch profiles the figures draw); nothing when training recorded
    no gradients (``train_classifier.grad_every: 0``)."""
    table = pd.read_csv(run.path(OVER_TRAINING, "gradient_report"))
    if table.empty:
        return []
    seed = classifier_seeds(params)[0]
    blocks: list[Block] = [Paragraph(
        "While it trains, every classifier records per-layer gradient statistics (every few steps, averaged per "
        "epoch; epoch 0 is the first step, at the initial weights). The figures show the per-layer RMS gradient "
        "per parameter at the first and the last epoch, the plain and the residual net together, and both "
        "training losses.")]
    for depth, variant, _ in [k for k in gradcam_keys(params) if k[2] == seed]:
        panel = table[table["panel"] == f"{depth}-{variant}-{seed}"]
        if panel.empty:
            continue
        net = net_label(depth)
        first, last = int(panel["epoch"].min()), int(panel["epoch"].max())
        parts, last_layer = [], {}
        for arch, rows in panel.groupby("arch", sort=True):
            rms = {e: _rms_profile(rows[rows["epoch"] == e]) for e in (first, last)}
            parts.append(f"{model_label(arch, depth)} {sci(rms[first].iloc[0] / rms[first].iloc[-1])} at epoch "
                         f"{first}, {sci(rms[last].iloc[0] / rms[last].iloc[-1])} at epoch {last}")
            last_layer[arch] = {e: float(rms[e].iloc[-1]) for e in (first, last)}
        caption = (f"Per-layer RMS gradient per parameter at epoch {first} and {last} and the training losses "
                   f"({net}, {variant}, seed {seed}). First / last layer RMS: {'; '.join(parts)}.")
        if {"plain", "residual"} <= last_layer.keys():
            ratio = {e: last_layer["residual"][e] / last_layer["plain"][e] for e in (first, last)}
            caption += (f" The last layer's RMS gradient, {model_label('residual', depth)} over "
                        f"{model_label('plain', depth)}: {sci(ratio[first])} at epoch {first}, "
                        f"{sci(ratio[last])} at epoch {last}.")
        blocks.append(run.figure(over_training_figure(depth, variant, seed).as_posix(),
                                 "gradient_report", f"Gradients over training, {net}, {variant}, seed {seed}",
                                 caption))
    return blocks


def gradients(run: Run, params: dict) -> list[Block]:
    names = gradient_names(params)
    summaries = {n: run.json(gradient_metrics(n), stage) for n, stage in names.items()}
    table = gradient_table(summaries)
    numbers = ["first_mean_abs", "last_mean_abs", "ratio_mean_abs", "ratio_rms", "ratio_l2"]
    table[numbers] = table[numbers].apply(pd.to_numeric)  # a column of only skipped models holds None
    shown = gradient_display(table, sci)
    iterations, batch = get(params, "gradient_stats.iterations"), get(params, "gradient_stats.batch_size")
    collapsed_rows = _collapsed(table)
    findings = _gradient_findings(table, collapsed_rows)
    vanishing = table[table["ratio_mean_abs"] < VANISHING]
    listed = [f"{model_label(r.arch, r.depth)} {r.variant} ({r.init})" for r in vanishing.itertuples()]
    count = (f"{len(listed)} of the {len(table)} models have a first / last mean |g| below {VANISHING:g}"
             + (f": {words(listed)}." if listed else "."))
    collapsed = [f"{model_label('plain', r.depth)} {r.variant} ({r.init})" for r in collapsed_rows.itertuples()]
    if collapsed:
        count += (f" {plural(len(collapsed), 'more plain net')} {'has' if len(collapsed) == 1 else 'have'} both ends "
                  f"below {VANISHING:g} of the residual net's of the same depth: {words(collapsed)}.")
    rms = table.dropna(subset=["ratio_rms"])
    profile = (f"Per-layer RMS gradient per parameter, averaged over the {plural(iterations, 'iteration')}, for the "
               f"{len(table)} models (input on the left, plain blue, residual vermillion).")
    if len(rms):
        steep = rms.loc[rms["ratio_rms"].idxmin()]
        profile += (f" The steepest fall towards the input is in {steep.arch}-{steep.depth} {steep.variant} "
                    f"({steep.init}): RMS first / last = {sci(steep.ratio_rms)}.")
    norm = (f"Gradient L2 norm of the first (solid) and the last (dashed) weight layer over the "
            f"{plural(iterations, 'iteration')}, log scale.")
    l2 = table.dropna(subset=["ratio_l2"])
    if len(l2):
        low = l2.loc[pd.to_numeric(l2["ratio_l2"]).idxmin()]
        norm += (f" The smallest first / last L2 ratio, averaged over the iterations, is {sci(low.ratio_l2)} "
                 f"({low.arch}-{low.depth} {low.variant}, {low.init}).")
    return [
        Heading("Gradient statistics: where do the gradients vanish?"),
        Paragraph(f"Each model runs {plural(iterations, 'SGD iteration')} on CIFAR-10 batches of {batch} images, "
                  "from its initialisation or from the trained weights; for the first and the last weight layer "
                  "the table gives the mean absolute gradient averaged over the iterations. A first / last ratio far "
                  "below 1 means that the gradient vanishes on its way back to the input."),
        Table(shown, f"First and last layer gradients of every model. {count}"),
        Bullets(findings),
        run.figure((GRADIENT_REPORT / "profile_rms.png").as_posix(), "gradient_report",
                   "Per-layer RMS gradient of every model", profile),
        run.figure((GRADIENT_REPORT / "grad_norm.png").as_posix(), "gradient_report",
                   "First and last layer gradient norm over the iterations",
                   norm),
        *_over_training(run, params),
    ]
