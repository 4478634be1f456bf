"""Gradient statistics: per-layer profiles and first / last layer gradients over the iterations, one log-y
panel per (variant, init) and depth."""

from __future__ import annotations

import pandas as pd
from matplotlib.ticker import MaxNLocator

from cnnlab.compare import split_gradient_name
from cnnlab.figures.style import ARCH_COLORS, plt


class GradientGrid:
    """A grid of log-y panels for gradient statistics: rows = (variant, init), columns = depth."""

    def __init__(self, names: list[str]) -> None:
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
            unique = dict(zip(labels, handles, strict=True))  # the training seeds of one model share a label
            handles, labels = list(unique.values()), list(unique)
            self.fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8,
                            bbox_to_anchor=(0.5, 1.0 - 0.4 * inch), frameon=False)
        return self.fig


def gradient_profiles(profiles: dict[str, pd.DataFrame], column: str, ylabel: str, title: str) -> plt.Figure:
    """Per-layer gradient profile (``column`` of :func:`cnnlab.gradients.layer_profile`), plain vs residual.

    ``profiles`` maps gradient-stats names (``"plain-56-tanh-nobn-default"``, ``"trained-..."``) to profiles;
    the training seeds of a trained model are one line each, in the same colour.
    """
    grid = GradientGrid(list(profiles))
    for name, frame in profiles.items():
        ax, p = grid.ax(name)
        if len(frame):
            ax.plot(frame["layer_index"], frame[column], color=ARCH_COLORS[p["arch"]], label=p["arch"], lw=1.4)
    return grid.finish("weight layer (input → output)", ylabel, title)


def first_last_over_iterations(tables: dict[str, pd.DataFrame], stat: str, ylabel: str, title: str) -> plt.Figure:
    """First (solid) and last (dashed) layer ``stat`` over the K iterations, plain vs residual, log y."""
    grid = GradientGrid(list(tables))
    for name, frame in tables.items():
        ax, p = grid.ax(name)
        if len(frame):
            color = ARCH_COLORS[p["arch"]]
            ax.plot(frame["iteration"], frame[f"first_{stat}"], "-", color=color, label=f"{p['arch']}, first layer")
            ax.plot(frame["iteration"], frame[f"last_{stat}"], "--", color=color, label=f"{p['arch']}, last layer")
    return grid.finish("iteration", ylabel, title)


def _profile(ax: plt.Axes, rows: pd.DataFrame, color: str, label: str) -> None:
    """One per-layer line; layers without rows (no gradient: unused modules) break the line instead of
    being bridged."""
    series = rows.set_index("layer_index")["value"].sort_index()
    series = series.reindex(range(int(series.index.min()), int(series.index.max()) + 1))
    ax.plot(series.index, series.to_numpy(), "-o", color=color, label=label, lw=1.4, ms=2.5)


def gradients_over_training(gradients: dict[str, pd.DataFrame], curves: dict[str, pd.DataFrame], title: str,
                            labels: dict[str, str] | None = None, statistic: str = "grad_rms",
                            ylabel: str = "RMS gradient per parameter") -> plt.Figure:
    """Plain vs residual over training: the per-layer ``statistic`` profile at the first and at the last
    recorded epoch (two log-y panels, both architectures in each, shared y) and both training-loss curves.

    ``gradients`` maps an architecture (``"plain"``, ``"residual"``) to its ``train_classifier``
    ``gradients.csv``, ``curves`` to its DVCLive curves (:func:`cnnlab.tracking.read_curves`). Layers are labelled
    by index (input -> output), whatever the network family; ``labels`` names each architecture's line (e.g.
    ``resnet18-noskip``; default: the architecture).
    """
    labels = {arch: (labels or {}).get(arch, arch) for arch in {*gradients, *curves}}
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8))
    first_ax, last_ax, loss_ax = axes
    first_ax.sharey(last_ax)
    recorded = {arch: frame[frame["statistic"] == statistic] for arch, frame in gradients.items()}
    epochs = [int(e) for frame in recorded.values() for e in frame["epoch"]]
    for ax, which in ((first_ax, "first"), (last_ax, "last")):
        if not epochs:
            ax.text(0.5, 0.5, "not recorded\n(train_classifier.grad_every: 0)", ha="center", va="center",
                    color="0.5", transform=ax.transAxes)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{which} epoch")
            continue
        names = []
        for arch, frame in recorded.items():
            epoch = frame["epoch"].min() if which == "first" else frame["epoch"].max()
            _profile(ax, frame[frame["epoch"] == epoch], ARCH_COLORS.get(arch, "0.3"),
                     f"{labels[arch]}, epoch {epoch}")
            names.append(int(epoch))
        when = sorted(set(names))
        detail = " (first step, initial weights)" if which == "first" and when == [0] else ""
        ax.set_title(f"{which} epoch: {', '.join(map(str, when))}{detail}", fontsize=10)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.set_xlabel("weight layer (input → output)")
        ax.legend(fontsize=8)
    first_ax.set_ylabel(f"{ylabel} (log scale)")
    for arch, frame in curves.items():
        loss_ax.plot(frame["epoch"], frame["train_loss"], "-o", color=ARCH_COLORS.get(arch, "0.3"), label=labels[arch],
                     lw=1.4, ms=3)
    loss_ax.set_title("training loss", fontsize=10)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (cross-entropy)")
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.grid(alpha=0.3)
    if curves:
        loss_ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
