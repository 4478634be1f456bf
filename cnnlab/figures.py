"""Figures for people: consistent colours, labelled axes, atomic PNG output.

Colours: plain nets are always blue and residual nets always vermillion (Okabe-Ito, colour-blind
safe); segmentation classes use a fixed 11-colour map with black background.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from cnnlab.io import atomic_path  # noqa: E402

ARCH_COLORS = {"plain": "#0072B2", "residual": "#D55E00"}
#: background black, then 10 distinguishable colours (Okabe-Ito + Tol's muted extras)
SEGMENT_COLORS = [
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
    "#D55E00", "#CC79A7", "#FFFFFF", "#999933", "#882255",
]
SEGMENT_CMAP = ListedColormap(SEGMENT_COLORS, name="segments")

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "font.size": 10, "axes.titlesize": 11})


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", bbox_inches="tight")
    plt.close(fig)


def segment_legend(ax: plt.Axes, class_names: list[str], **kwargs) -> None:
    handles = [Patch(facecolor=SEGMENT_COLORS[i], edgecolor="0.5", label=n) for i, n in enumerate(class_names)]
    ax.legend(handles=handles, title="class", **kwargs)


def show_mask(ax: plt.Axes, mask: torch.Tensor | np.ndarray) -> None:
    ax.imshow(np.asarray(mask), cmap=SEGMENT_CMAP, vmin=0, vmax=len(SEGMENT_COLORS) - 1, interpolation="nearest")
    ax.set_axis_off()


def show_gray(ax: plt.Axes, image: torch.Tensor | np.ndarray) -> None:
    ax.imshow(np.asarray(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_axis_off()


def segmentation_grid(
    rows: list[tuple[str, list[np.ndarray], str]],
    class_names: list[str],
    title: str,
) -> plt.Figure:
    """A grid whose rows are (label, images or masks, kind) with kind ``"gray"`` or ``"mask"``."""
    ncols = max(len(items) for _, items, _ in rows)
    first = rows[0][1][0]
    aspect = first.shape[1] / first.shape[0]
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.3 * ncols * aspect + 1.8, 1.3 * len(rows) + 0.6), squeeze=False)
    for r, (label, items, kind) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            if c >= len(items):
                ax.set_axis_off()
                continue
            (show_mask if kind == "mask" else show_gray)(ax, items[c])
        axes[r, 0].text(-0.08, 0.5, label, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=10)
    segment_legend(axes[0, -1], class_names, loc="upper left", bbox_to_anchor=(1.05, 1.0), fontsize=8)
    fig.suptitle(title)
    return fig


DEPTH_STYLES = ["-", "--", ":", "-."]


def accuracy_vs_depth(table: "pd.DataFrame") -> plt.Figure:  # noqa: F821
    """Test accuracy against depth, plain vs residual; one panel per variant of the comparison table."""
    variants = list(dict.fromkeys(table["variant"]))
    fig, axes = plt.subplots(1, len(variants), figsize=(5 * len(variants), 3.6), squeeze=False)
    for ax, variant in zip(axes[0], variants):
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


def training_curves(histories: dict[str, "pd.DataFrame"], metric: str, ylabel: str, title: str) -> plt.Figure:  # noqa: F821
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


class GradientGrid:
    """A grid of log-y panels for gradient statistics: rows = (variant, init), columns = depth."""

    def __init__(self, names: list[str]) -> None:
        from cnnlab.compare import split_gradient_name

        self.parsed = {name: split_gradient_name(name) for name in names}
        self.groups = sorted({(p["variant"], p["init"]) for p in self.parsed.values()})
        self.depths = sorted({p["depth"] for p in self.parsed.values()})
        self.fig, self.axes = plt.subplots(
            len(self.groups), len(self.depths), figsize=(3.6 * len(self.depths), 2.8 * len(self.groups)),
            squeeze=False, sharey="row",
        )

    def ax(self, name: str) -> tuple[plt.Axes, dict]:
        p = self.parsed[name]
        return self.axes[self.groups.index((p["variant"], p["init"])), self.depths.index(p["depth"])], p

    def finish(self, xlabel: str, ylabel: str, title: str, legend_size: int = 8) -> plt.Figure:
        for r, (variant, init) in enumerate(self.groups):
            for c, depth in enumerate(self.depths):
                ax = self.axes[r, c]
                ax.set_yscale("log")
                ax.set_title(f"{variant}, {init} init, depth {depth}", fontsize=9)
                ax.grid(alpha=0.3, which="both")
                if r == len(self.groups) - 1:
                    ax.set_xlabel(xlabel)
                if c == 0:
                    ax.set_ylabel(ylabel)
                if ax.lines:
                    ax.legend(fontsize=legend_size)
        self.fig.suptitle(title)
        self.fig.tight_layout()
        return self.fig


def gradient_profiles(profiles: dict[str, "pd.DataFrame"], column: str, ylabel: str, title: str) -> plt.Figure:  # noqa: F821
    """Per-layer gradient profile (``column`` of :func:`cnnlab.gradients.layer_profile`), plain vs residual.

    ``profiles`` maps gradient-stats names (``"plain-56-tanh-nobn-default"``, ``"trained-..."``) to profiles.
    """
    grid = GradientGrid(list(profiles))
    for name, frame in profiles.items():
        ax, p = grid.ax(name)
        if len(frame):
            ax.plot(frame["layer_index"], frame[column], color=ARCH_COLORS[p["arch"]], label=p["arch"], lw=1.4)
    return grid.finish("weight layer (input → output)", ylabel, title)


def first_last_over_iterations(tables: dict[str, "pd.DataFrame"], stat: str, ylabel: str, title: str) -> plt.Figure:  # noqa: F821
    """First (solid) and last (dashed) layer ``stat`` over the K iterations, plain vs residual, log y."""
    grid = GradientGrid(list(tables))
    for name, frame in tables.items():
        ax, p = grid.ax(name)
        if len(frame):
            color = ARCH_COLORS[p["arch"]]
            ax.plot(frame["iteration"], frame[f"first_{stat}"], "-", color=color, label=f"{p['arch']}, first layer")
            ax.plot(frame["iteration"], frame[f"last_{stat}"], "--", color=color, label=f"{p['arch']}, last layer")
    return grid.finish("iteration", ylabel, title, legend_size=7)
