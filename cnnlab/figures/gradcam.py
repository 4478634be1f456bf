"""Grad-CAM figures: heatmap overlays side by side (plain vs residual), close-ups, deletion curves.

Heatmaps and colour bars use matplotlib's "inferno"; overlays use OpenCV's COLORMAP_INFERNO, the same
perceptually uniform map (readable in greyscale and with colour-vision deficiencies, unlike jet).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from cnnlab.figures.style import ARCH_COLORS, plt
from cnnlab.gradcam import overlay

GRADCAM_CMAP = "inferno"
BOX_STYLE = {"edgecolor": "#FFFFFF", "linestyle": "--", "linewidth": 1.0, "fill": False}


@dataclass(frozen=True)
class CamRow:
    """One model's Grad-CAM results on the images of a figure."""

    label: str  # e.g. "plain-56"
    arch: str  # "plain" | "residual" (the colour of the label)
    maps: np.ndarray  # float [N, H, W] in [0, 1]
    captions: list[str]  # one per image, e.g. from prediction_caption()


def prediction_caption(predicted: str, probability: float, correct: bool) -> str:
    """``"✓ cat 87%"``: the predicted class and its softmax probability, ticked when it is the true class."""
    return f"{'✓' if correct else '✗'} {predicted} {100 * probability:.0f}%"


def _cam_overlays(images: np.ndarray, maps: np.ndarray, alpha: float) -> list[np.ndarray]:
    return [overlay(image, heat, alpha, cv2.COLORMAP_INFERNO) for image, heat in zip(images, maps, strict=True)]


def _show_panel(ax: plt.Axes, pixels: np.ndarray, box: np.ndarray | None, title: str, frame: str | None = None,
                **imshow) -> None:
    """An image panel without ticks (a y label stays visible): optional box, title and coloured frame."""
    ax.imshow(pixels, interpolation="nearest", **imshow)
    ax.set_xticks([])
    ax.set_yticks([])
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, **BOX_STYLE))
    ax.set_title(title, fontsize=8, pad=3)
    for spine in ax.spines.values():
        spine.set_visible(frame is not None)
        if frame is not None:
            spine.set_edgecolor(frame)
            spine.set_linewidth(1.5)


def _cam_colorbar(fig: plt.Figure, axes: np.ndarray) -> None:
    mappable = plt.cm.ScalarMappable(norm=Normalize(0.0, 1.0), cmap=GRADCAM_CMAP)
    bar = fig.colorbar(mappable, ax=axes.ravel().tolist(), fraction=0.025, pad=0.01, aspect=25)
    bar.set_label("Grad-CAM (min-max per image)", fontsize=8)
    bar.ax.tick_params(labelsize=7)


def _cam_title(fig: plt.Figure, title: str, boxes: np.ndarray | None) -> None:
    box_note = "; dashed: the object's bounding box" if boxes is not None else ""
    fig.suptitle(f"{title}\npanel titles: true class; predicted class and its probability{box_note}", fontsize=10)


def gradcam_grid(
    images: np.ndarray,
    captions: list[str],
    rows: list[CamRow],
    title: str,
    boxes: np.ndarray | None = None,
    alpha: float = 0.5,
) -> plt.Figure:
    """Side-by-side Grad-CAM: columns = images; rows = the images, then one row of overlays per model.

    ``images`` uint8 ``[N, H, W, 3]`` with their ``captions`` (e.g. the true class) and optional
    ``boxes`` ``[N, 4]`` (x0, y0, x1, y1); overlays carry the model's captions and a frame in the
    architecture's colour.
    """
    n = len(images)
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.2 * n + 0.9, 1.45 * (1 + len(rows)) + 0.5),
                             squeeze=False, layout="constrained")
    for c in range(n):
        _show_panel(axes[0, c], images[c], None if boxes is None else boxes[c], captions[c])
    axes[0, 0].set_ylabel("image", fontsize=9)
    for r, row in enumerate(rows, start=1):
        color = ARCH_COLORS[row.arch]
        for c, pixels in enumerate(_cam_overlays(images, row.maps, alpha)):
            _show_panel(axes[r, c], pixels, None if boxes is None else boxes[c], row.captions[c], frame=color)
        axes[r, 0].set_ylabel(row.label, fontsize=9, color=color, fontweight="bold")
    _cam_colorbar(fig, axes[1:])
    _cam_title(fig, title, boxes)
    return fig


def gradcam_detail(
    images: np.ndarray,
    captions: list[str],
    rows: list[CamRow],
    title: str,
    boxes: np.ndarray | None = None,
    alpha: float = 0.5,
) -> plt.Figure:
    """Close-up Grad-CAM: rows = images; columns = the image, then per model its heatmap and its overlay.

    Arguments as in :func:`gradcam_grid`; column headers and frames in the architecture's colour.
    """
    n, ncols = len(images), 1 + 2 * len(rows)
    fig, axes = plt.subplots(n, ncols, figsize=(1.75 * ncols + 0.8, 1.85 * n + 0.9), squeeze=False,
                             layout="constrained")
    overlays = [_cam_overlays(images, row.maps, alpha) for row in rows]
    for i in range(n):
        box = None if boxes is None else boxes[i]
        _show_panel(axes[i, 0], images[i], box, captions[i])
        for m, row in enumerate(rows):
            color = ARCH_COLORS[row.arch]
            _show_panel(axes[i, 1 + 2 * m], row.maps[i], box, "", frame=color, cmap=GRADCAM_CMAP, vmin=0.0, vmax=1.0)
            _show_panel(axes[i, 2 + 2 * m], overlays[m][i], box, row.captions[i], frame=color)
    headers = ["image"] + [f"{row.label}: {what}" for row in rows for what in ("Grad-CAM", "overlay")]
    colors = ["black"] + [ARCH_COLORS[row.arch] for row in rows for _ in range(2)]
    for ax, header, color in zip(axes[0], headers, colors, strict=True):
        ax.annotate(header, xy=(0.5, 1.0), xycoords="axes fraction", xytext=(0, 16), textcoords="offset points",
                    ha="center", va="bottom", fontsize=9, fontweight="bold", color=color)
    _cam_colorbar(fig, axes)
    _cam_title(fig, title, boxes)
    return fig


def deletion_curves(frame: pd.DataFrame, labels: dict[str, str], aucs: dict[str, float], title: str) -> plt.Figure:
    """Deletion curves: mean probability of the predicted class against the fraction of pixels removed.

    ``frame`` has ``fraction_removed`` and ``<arch>_heatmap`` / ``<arch>_random`` columns; ``labels``
    maps each arch to its legend label (``"plain-56"``); ``aucs`` maps each column to its mean AUC.
    Solid = pixels removed in Grad-CAM order (most salient first), dashed = in random order.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for arch, label in labels.items():
        for order, style, what in (("heatmap", "-", "Grad-CAM order"), ("random", "--", "random order")):
            column = f"{arch}_{order}"
            ax.plot(frame["fraction_removed"], frame[column], style, color=ARCH_COLORS[arch], lw=1.6,
                    label=f"{label}, {what} (AUC {aucs[column]:.3f})")
    ax.set_xlabel("fraction of pixels removed (set to the mean colour)")
    ax.set_ylabel("mean probability of the predicted class")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(bottom=0.0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
