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

    def finish(self, xlabel: str, ylabel: str, title: str) -> plt.Figure:
        """Log-y axes, titles and labels; one legend for the figure; panels without data say so."""
        from matplotlib.ticker import MaxNLocator

        legend_from = None
        for r, (variant, init) in enumerate(self.groups):
            for c, depth in enumerate(self.depths):
                ax = self.axes[r, c]
                start = "trained" if init == "trained" else f"{init} init"
                ax.set_title(f"{variant}, {start}, depth {depth}", fontsize=9)
                if not ax.lines:
                    ax.text(0.5, 0.5, "not in this run", ha="center", va="center", color="0.5", transform=ax.transAxes)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    continue
                legend_from = legend_from or ax
                ax.set_yscale("log")
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                ax.grid(alpha=0.3, which="both")
                if r == len(self.groups) - 1:
                    ax.set_xlabel(xlabel)
                if c == 0:
                    ax.set_ylabel(ylabel)
        inch = 1.0 / self.fig.get_figheight()  # one inch in figure coordinates
        self.fig.suptitle(title, y=1.0 - 0.1 * inch, va="top")
        self.fig.tight_layout(rect=(0, 0, 1, 1.0 - 0.75 * inch))
        if legend_from is not None:
            handles, labels = legend_from.get_legend_handles_labels()
            self.fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8,
                            bbox_to_anchor=(0.5, 1.0 - 0.4 * inch), frameon=False)
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
    return grid.finish("iteration", ylabel, title)


# --------------------------------------------------------------------------- Grad-CAM

from dataclasses import dataclass  # noqa: E402

from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

#: Heatmaps and colour bars use matplotlib's "inferno"; overlays use OpenCV's COLORMAP_INFERNO, the
#: same perceptually uniform map (readable in greyscale and with colour-vision deficiencies, unlike jet).
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
    # imported here, so the stages that draw other figures do not depend on cnnlab/gradcam.py
    import cv2

    from cnnlab.gradcam import overlay

    return [overlay(image, heat, alpha, cv2.COLORMAP_INFERNO) for image, heat in zip(images, maps)]


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
    for ax, header, color in zip(axes[0], headers, colors):
        ax.annotate(header, xy=(0.5, 1.0), xycoords="axes fraction", xytext=(0, 16), textcoords="offset points",
                    ha="center", va="bottom", fontsize=9, fontweight="bold", color=color)
    _cam_colorbar(fig, axes)
    _cam_title(fig, title, boxes)
    return fig


def deletion_curves(frame: "pd.DataFrame", labels: dict[str, str], aucs: dict[str, float], title: str) -> plt.Figure:  # noqa: F821
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


# --------------------------------------------------------------------------- FCN segmentation results

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
