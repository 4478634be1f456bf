"""Gradient statistics: where do the gradients vanish? First / last layer table, findings and figures."""

from __future__ import annotations

import pandas as pd

from cnnlab.compare import gradient_display, gradient_table
from cnnlab.config import get
from cnnlab.pipeline import gradient_metrics, gradient_names
from cnnlab.report.document import Block, Bullets, Heading, Paragraph, Table
from cnnlab.report.run import Run
from cnnlab.report.text import plural, sci, trend, words

VANISHING = 1e-2  # first / last mean |grad| below this: the gradient vanishes towards the input
HEALTHY = 0.1  # between HEALTHY and 1 / HEALTHY: both ends of the net get gradients of a similar size


def _describe_ratios(arch: str, rows: pd.DataFrame) -> str:
    """What the first / last mean |grad| ratios of one architecture over depths show."""
    ratios = rows["ratio_mean_abs"].tolist()
    at = ", ".join(f"{sci(r)} at depth {d}" for r, d in zip(ratios, rows["depth"], strict=True))
    text = f"the {arch} net's first / last mean |g| is {at}"
    vanishing = [str(d) for r, d in zip(ratios, rows["depth"], strict=True) if r < VANISHING]
    if vanishing:
        text += (f": its gradient vanishes towards the input at depth {words(vanishing)} (first layer below "
                 f"{VANISHING:g} of the last)")
    elif all(HEALTHY <= r <= 1 / HEALTHY for r in ratios):
        factor = max(max(r, 1 / r) for r in ratios)
        text += f": both ends stay within a factor of {factor:.1f}"
    direction = {"rises": "grows", "falls": "shrinks"}.get(trend([float(sci(r)) for r in ratios]))
    if direction and len(ratios) >= 2:
        text += f", and the ratio {direction} with depth"
    return text


def _gradient_findings(table: pd.DataFrame) -> list[str]:
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
    return out


def gradients(run: Run, params: dict) -> list[Block]:
    names = gradient_names(params)
    summaries = {n: run.json(gradient_metrics(n), stage) for n, stage in names.items()}
    table = gradient_table(summaries)
    numbers = ["first_mean_abs", "last_mean_abs", "ratio_mean_abs", "ratio_rms", "ratio_l2"]
    table[numbers] = table[numbers].apply(pd.to_numeric)  # a column of only skipped models holds None
    shown = gradient_display(table, sci)
    iterations, batch = get(params, "gradient_stats.iterations"), get(params, "gradient_stats.batch_size")
    findings = _gradient_findings(table)
    vanishing = table[table["ratio_mean_abs"] < VANISHING]
    listed = [f"{r.arch}-{r.depth} {r.variant} ({r.init})" for r in vanishing.itertuples()]
    count = (f"{len(listed)} of the {len(table)} models have a first / last mean |g| below {VANISHING:g}"
             + (f": {words(listed)}." if listed else "."))
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
        run.figure("plots/gradient_report/profile_rms.png", "gradient_report",
                   "Per-layer RMS gradient of every model", profile),
        run.figure("plots/gradient_report/grad_norm.png", "gradient_report",
                   "First and last layer gradient norm over the iterations",
                   norm),
    ]
