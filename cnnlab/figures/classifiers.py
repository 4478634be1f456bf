"""Plain vs residual classifiers on CIFAR-10: accuracy against depth and per-epoch training curves."""

from __future__ import annotations

import pandas as pd

from cnnlab.figures.style import ARCH_COLORS, plt

DEPTH_STYLES = ["-", "--", ":", "-."]


def accuracy_vs_depth(table: pd.DataFrame) -> plt.Figure:
    """Test accuracy against depth, plain vs residual; one panel per variant of the comparison table."""
    variants = list(dict.fromkeys(table["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.6), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        rows = table[table["variant"] == variant].sort_values("depth")
        for arch in ("plain", "residual"):
            ax.plot(rows["depth"], 100 * rows[arch], marker="o", color=ARCH_COLORS[arch], label=arch)
        ax.set_xticks(rows["depth"].tolist())
        ax.set_xlabel("depth (weight layers)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"CIFAR-10, {variant}")
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def training_curves(histories: dict[str, pd.DataFrame], metric: str, ylabel: str, title: str) -> plt.Figure:
    """Per-epoch curves of ``metric`` for many models: colour = architecture, line style = depth.

    ``histories`` maps a model key (``"residual-56-relu-bn"``) to a frame with columns ``epoch`` and ``metric``.
    """
    depths = sorted({int(key.split("-")[1]) for key in histories})
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, frame in sorted(histories.items()):
        arch, depth = key.split("-")[0], int(key.split("-")[1])
        style = DEPTH_STYLES[depths.index(depth) % len(DEPTH_STYLES)]
        ax.plot(frame["epoch"], frame[metric], style, color=ARCH_COLORS[arch], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return fig
