"""What every figure shares: the non-interactive backend, sizes, the architecture colours and atomic saving.

Colours: plain nets are always blue and residual nets always vermillion (Okabe-Ito, colour-blind safe).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the figure modules take ``plt`` from here: set up for files)

from cnnlab.io import atomic_path  # noqa: E402

ARCH_COLORS = {"plain": "#0072B2", "residual": "#D55E00"}

plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "font.size": 10, "axes.titlesize": 11})


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Save ``fig`` as PNG atomically and close it."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", bbox_inches="tight")
    plt.close(fig)
