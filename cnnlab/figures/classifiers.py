"""Plain vs residual classifiers on CIFAR-10: accuracy against depth and per-epoch training curves.

With several training seeds per model both figures show the mean, its spread and the single runs: error bars
(± sample std) and one small dot per seed against depth; a band from the lowest to the highest seed around
each mean curve. With one seed they are the plain line plots.
"""

from __future__ import annotations

import pandas as pd

from cnnlab.compare import ARCHS, is_resnet18, seed_columns, several_seeds
from cnnlab.families import model_label
from cnnlab.figures.style import ARCH_COLORS, plt
from cnnlab.pipeline import display_name, split_key

DEPTH_STYLES = ["-", "--", ":", "-."]
SEED_DOT = {"s": 14, "alpha": 0.6, "linewidths": 0, "zorder": 3}


def _accuracy_panel(ax: plt.Axes, rows: pd.DataFrame, spread: bool) -> None:
    """One variant: mean accuracy per depth and architecture; with ``spread``, std error bars and seed dots.
    The 6n+2 nets are lines over depth; ResNet-18 (depth 18, another family) stands apart as diamonds."""
    for family, group in rows.groupby(rows["depth"].map(is_resnet18), sort=True):
        for arch in ARCHS:
            color = ARCH_COLORS[arch]
            name = model_label(arch, 18) if family else arch
            style = {"marker": "D", "linestyle": "none", "markerfacecolor": "white"} if family else {"marker": "o"}
            if not spread:
                ax.plot(group["depth"], 100 * group[arch], color=color, label=name, **style)
                continue
            n = int(group[f"{arch}_n"].max())
            ax.errorbar(group["depth"], 100 * group[arch], yerr=100 * group[f"{arch}_std"].fillna(0), color=color,
                        capsize=3, label=f"{name}, mean ± std of {n} seeds", **style)
            for column in seed_columns(group, arch).values():
                ax.scatter(group["depth"], 100 * group[column], color=color, **SEED_DOT)


def accuracy_vs_depth(table: pd.DataFrame) -> plt.Figure:
    """Test accuracy against depth, plain vs residual; one panel per variant of the comparison table (ResNet-18,
    plain = without skips, as open diamonds at depth 18)."""
    variants = list(dict.fromkeys(table["variant"]))
    spread = several_seeds(table)
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.6), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        rows = table[table["variant"] == variant].sort_values("depth")
        _accuracy_panel(ax, rows, spread)
        ax.set_xticks(rows["depth"].tolist())
        ax.set_xlabel("depth (weight layers)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"CIFAR-10, {variant}" + (" (dots: single seeds)" if spread else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8 if spread else None)
    return fig


def _by_model(histories: dict[str, pd.DataFrame]) -> dict[tuple[str, int, str], list[pd.DataFrame]]:
    """The curves of every seed of one model (arch, depth, variant) together."""
    groups: dict[tuple[str, int, str], list[pd.DataFrame]] = {}
    for key, frame in sorted(histories.items()):
        arch, depth, variant, _seed = split_key(key)
        groups.setdefault((arch, depth, variant), []).append(frame)
    return groups


def training_curves(histories: dict[str, pd.DataFrame], metric: str, ylabel: str, title: str) -> plt.Figure:
    """Per-epoch curves of ``metric`` for many models: colour = architecture, line style = depth; the seeds
    of one model as their mean curve in a band from the lowest to the highest seed.

    ``histories`` maps a classifier key (``"residual-56-relu-bn-0"``) to a frame with columns ``epoch`` and
    ``metric``.
    """
    groups = _by_model(histories)
    depths = sorted({depth for _, depth, _ in groups})
    seeds = max(len(frames) for frames in groups.values())
    fig, ax = plt.subplots(figsize=(6, 4))
    for (arch, depth, variant), frames in groups.items():
        style = DEPTH_STYLES[depths.index(depth) % len(DEPTH_STYLES)]
        runs = pd.concat([f.set_index("epoch")[metric] for f in frames], axis=1)  # one column per seed
        label = display_name(arch, depth, variant)
        if len(frames) > 1:
            ax.fill_between(runs.index, runs.min(axis=1), runs.max(axis=1), color=ARCH_COLORS[arch], alpha=0.2,
                            linewidth=0)
            label += f", {len(frames)} seeds"
        ax.plot(runs.index, runs.mean(axis=1), style, color=ARCH_COLORS[arch], label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title + ("\n(mean over seeds; band: lowest to highest seed)" if seeds > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return fig
