"""Segmentation figures: segmented MNIST digits and canvases with their masks, FCN predictions and the
pixel confusion matrix. Segmentation classes use a fixed 11-colour map with black background."""

from __future__ import annotations

import matplotlib
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from cnnlab.figures.style import plt

#: background black, then 10 distinguishable colours (Okabe-Ito + Tol's muted extras)
SEGMENT_COLORS = [
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2",
    "#D55E00", "#CC79A7", "#FFFFFF", "#999933", "#882255",
]
SEGMENT_CMAP = ListedColormap(SEGMENT_COLORS, name="segments")


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
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.3 * ncols * aspect + 1.8, 1.3 * len(rows) + 0.6),
                             squeeze=False)
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


#: Confusion matrices use "cividis", a sequential map designed to read the same with colour-vision deficiencies.
CONFUSION_CMAP = "cividis"


def _as_numpy_batch(x: torch.Tensor | np.ndarray) -> list[np.ndarray]:
    """``[K, H, W]`` or single-channel ``[K, 1, H, W]`` images/masks as a list of ``K`` 2-D arrays."""
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    if x.ndim == 4:
        x = x[:, 0]
    return list(x)


def segmentation_predictions(
    images: torch.Tensor | np.ndarray,
    truth: torch.Tensor | np.ndarray,
    pred: torch.Tensor | np.ndarray,
    class_names: list[str],
    title: str,
) -> plt.Figure:
    """Rows input / ground truth / prediction for ``K`` examples, with the class colour legend.

    ``images`` are uint8 ``[K, 1, H, W]`` (or ``[K, H, W]``), ``truth`` and ``pred`` class maps ``[K, H, W]``.
    """
    return segmentation_grid(
        [
            ("input", _as_numpy_batch(images), "gray"),
            ("ground truth", _as_numpy_batch(truth), "mask"),
            ("prediction", _as_numpy_batch(pred), "mask"),
        ],
        class_names,
        title,
    )


def confusion_figure(cm: torch.Tensor | np.ndarray, class_names: list[str], title: str) -> plt.Figure:
    """Confusion matrix ``cm[true, predicted]`` (counts) normalised per true class, annotated in percent.

    Each row shows where the pixels (or samples) of one true class went, so rare classes are as
    readable as frequent ones; a class that never occurs in the truth has an empty (grey) row.
    """
    counts = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(totals > 0, counts / totals, np.nan)
    k = len(class_names)
    size = 1.6 + 0.5 * k
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    cmap = plt.get_cmap(CONFUSION_CMAP).with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(rates), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    for (row, col), rate in np.ndenumerate(rates):
        if np.isfinite(rate) and rate >= 0.001:
            ax.text(col, row, f"{100 * rate:.1f}", ha="center", va="center", fontsize=7,
                    color="black" if rate >= 0.6 else "white")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the true class's pixels (row-normalised)",
                 format=matplotlib.ticker.FuncFormatter(lambda v, _: f"{100 * v:.0f}"))
    return fig
