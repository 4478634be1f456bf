"""Segmented MNIST: per-pixel labels from an intensity threshold, and multi-digit canvases.

Label convention (11 classes): 0 = background, 1 + d = digit d. The masks on disk always hold these labels;
an FCN's *target* (:data:`TARGETS`) says what it learns from them: ``digits``, the 11 classes as stored, or
``binary``, digit vs background (:func:`target_masks` collapses every digit class to 1, the one place where
that happens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.classes import SEGMENT_CLASSES  # noqa: F401 - re-exported: the labels of the masks made here
from cnnlab.classes import SEGMENT_TARGETS as TARGETS

BACKGROUND = 0


def target_masks(masks: torch.Tensor, target: str) -> torch.Tensor:
    """``masks`` (11-class labels, any shape) as labels of ``target``: unchanged for ``digits``; for ``binary``
    uint8 1 where the pixel is any digit, 0 for the background."""
    if target not in TARGETS:
        raise ValueError(f"unknown segmentation target {target!r}: use one of {', '.join(TARGETS)}")
    return masks if target == "digits" else (masks != BACKGROUND).to(torch.uint8)


def digit_masks(images: torch.Tensor, labels: torch.Tensor, threshold: float) -> torch.Tensor:
    """uint8 masks ``[N, H, W]``: ``1 + label`` where the pixel exceeds ``threshold`` (of 255), else 0."""
    foreground = images[:, 0].float() > threshold * 255.0
    return torch.where(foreground, (labels + 1).to(torch.uint8)[:, None, None], torch.zeros((), dtype=torch.uint8))


@dataclass
class Canvases:
    images: torch.Tensor  # uint8 [M, 1, rows*28, cols*28]
    masks: torch.Tensor  # uint8 [M, H, W], 0 = background, 1 + digit
    instances: torch.Tensor  # uint8 [M, H, W], 0 = background, k = the digit placed in cell k-1
    digits: torch.Tensor  # int64 [M, rows*cols], the digit in each cell, -1 = empty

    def to_dict(self) -> dict:
        return {"images": self.images, "masks": self.masks, "instances": self.instances, "digits": self.digits}


def make_canvases(
    images: torch.Tensor,
    labels: torch.Tensor,
    count: int,
    rows: int,
    cols: int,
    threshold: float,
    empty_prob: float,
    max_offset: int,
    gen: torch.Generator,
) -> Canvases:
    """Compose ``count`` canvases of ``rows x cols`` cells, each a random digit from ``images`` or empty.

    A digit is shifted inside its cell by a random offset of up to ``max_offset`` pixels (clipped at the
    canvas border); where shifted digits overlap, the image takes the brighter pixel and the masks the
    later cell. At least one cell per canvas holds a digit.
    """
    n, _, h, w = images.shape
    cells = rows * cols
    height, width = rows * h, cols * w
    pick = torch.randint(0, n, (count, cells), generator=gen)
    empty = torch.rand(count, cells, generator=gen) < empty_prob
    empty[empty.all(dim=1), 0] = False
    offsets = torch.randint(-max_offset, max_offset + 1, (count, cells, 2), generator=gen)
    out_images = torch.zeros(count, 1, height, width, dtype=torch.uint8)
    out_masks = torch.zeros(count, height, width, dtype=torch.uint8)
    out_instances = torch.zeros(count, height, width, dtype=torch.uint8)
    digits = torch.where(empty, torch.full_like(pick, -1), labels[pick])
    masks = digit_masks(images, labels, threshold)
    # 6 cells x a few thousand canvases: a plain loop is fast enough (well under a second)
    for cell in range(cells):
        r, c = divmod(cell, cols)
        for m in torch.nonzero(~empty[:, cell]).flatten().tolist():
            dy, dx = offsets[m, cell].tolist()
            y0, x0 = r * h + dy, c * w + dx
            sy0, sx0 = max(0, -y0), max(0, -x0)
            sy1, sx1 = min(h, height - y0), min(w, width - x0)
            src = images[pick[m, cell], 0, sy0:sy1, sx0:sx1]
            dst = out_images[m, 0, y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1]
            dst.copy_(torch.maximum(dst, src))
            src_mask = masks[pick[m, cell], sy0:sy1, sx0:sx1]
            on = src_mask > 0
            out_masks[m, y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1][on] = src_mask[on]
            out_instances[m, y0 + sy0 : y0 + sy1, x0 + sx0 : x0 + sx1][on] = cell + 1
    return Canvases(out_images, out_masks, out_instances, digits)
