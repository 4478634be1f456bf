"""The figure of docs/results/cifar10-full-d32: test accuracy per epoch of the full-data depth-32 pair, with the
seed document's 35-layer results (plain 0.77, residual 0.85 after full training) as dashed lines.

    .venv/bin/python docs/results/plot_full_d32.py   # reads the DVCLive curves copied beside it
"""

from pathlib import Path

import pandas as pd

from cnnlab.figures.style import ARCH_COLORS, plt, save_figure

HERE = Path(__file__).parent / "cifar10-full-d32"
SEEDS = {"plain": 0.77, "residual": 0.85}  # ../shared/seeds/000_*: 35-layer CNN and ResNet, test accuracy


def main() -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for arch, reference in SEEDS.items():
        curve = pd.read_csv(HERE / "dvclive" / f"{arch}-32-relu-bn" / "test_accuracy.tsv", sep="\t")
        final = curve["test_accuracy"].iloc[-1]
        ax.plot(curve["step"], 100 * curve["test_accuracy"], marker="o", ms=3, color=ARCH_COLORS[arch],
                label=f"{arch}-32, this recipe ({100 * final:.1f} % after {len(curve)} epochs)")
        ax.axhline(100 * reference, ls="--", lw=1, color=ARCH_COLORS[arch],
                   label=f"{arch}-35, seed document ({100 * reference:.0f} %, full training)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(40, 92)
    ax.set_title("CIFAR-10, all 50,000 / 10,000 images, depth 32")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, HERE / "test_accuracy_vs_seeds.png")


if __name__ == "__main__":
    main()
