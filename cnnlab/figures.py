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
