"""The figure of the full-data runs in docs/results/cifar10-full-d<depth>/: test accuracy per epoch of each depth's
plain/residual pair, one panel per depth, with the seed document's 35-layer results (plain 0.77, residual 0.85
after full training) as dashed lines beside depth 32, their nearest 6n+2 depth.

    .venv/bin/python docs/results/plot_full_data.py   # reads the DVCLive curves copied into those folders
"""

from pathlib import Path

import pandas as pd

from cnnlab.figures.style import ARCH_COLORS, plt, save_figure

HERE = Path(__file__).parent
DEPTHS = (20, 32)
SEEDS = {"plain": 0.77, "residual": 0.85}  # ../shared/seeds/000_*: 35-layer CNN and ResNet, test accuracy
SEEDS_DEPTH = 32


def curve(depth: int, arch: str) -> pd.DataFrame:
    """The DVCLive test-accuracy curve of ``arch``-``depth`` (keys with or without the seed suffix ``-0``: the
    depth-32 run predates seeds in the keys)."""
    (folder,) = sorted((HERE / f"cifar10-full-d{depth}" / "dvclive").glob(f"{arch}-{depth}-relu-bn*"))
    return pd.read_csv(folder / "test_accuracy.tsv", sep="\t")


def main() -> None:
    fig, axes = plt.subplots(1, len(DEPTHS), figsize=(5 * len(DEPTHS), 4), sharey=True)
    for ax, depth in zip(axes, DEPTHS):
        for arch in ARCH_COLORS:
            acc = curve(depth, arch)
            final = acc["test_accuracy"].iloc[-1]
            ax.plot(acc["step"], 100 * acc["test_accuracy"], marker="o", ms=3, color=ARCH_COLORS[arch],
                    label=f"{arch}-{depth}, this recipe ({100 * final:.1f} % after {len(acc)} epochs)")
            if depth == SEEDS_DEPTH:
                ax.axhline(100 * SEEDS[arch], ls="--", lw=1, color=ARCH_COLORS[arch],
                           label=f"{arch}-35, seed document ({100 * SEEDS[arch]:.0f} %, full training)")
        ax.set_xlabel("epoch")
        ax.set_title(f"depth {depth}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_ylim(40, 92)
    fig.suptitle("CIFAR-10, all 50,000 / 10,000 images, one seed")
    save_figure(fig, HERE / "cifar10-full-test-accuracy.png")


if __name__ == "__main__":
    main()
