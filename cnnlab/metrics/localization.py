"""How well saliency maps localise the object: pointing game, energy in box, deletion curve.

Conventions: maps are float ``[N, H, W]`` (e.g. Grad-CAM, non-negative); boxes are ``[N, 4]`` =
``(x0, y0, x1, y1)`` in pixels with exclusive end, as in the canonical dataset format. Pixel
``(row y, column x)`` lies in a box iff ``x0 <= x < x1`` and ``y0 <= y < y1``, i.e. exactly the pixels
of ``map[y0:y1, x0:x1]`` for integer boxes.

- **Pointing game** (Zhang et al., 2016, "Top-down Neural Attention by Excitation Backprop"): a hit
  when the map's maximum lies in the box. The original allows a 15-pixel tolerance on ~224-pixel
  images; for 32x32 images we use none by default (``tolerance=0``). Ties: bilinear upsampling makes
  plateaus of equal maximal pixels, so a map hits when *any* maximal pixel lies within the
  tolerance of the box (order-independent, unlike "first argmax", which favours the top-left). A
  constant map (e.g. all zeros) has no peak and is a miss.
- **Energy in box** (as in Score-CAM's energy-based pointing game): the fraction of the map's mass
  inside the box; 0 for an all-zero map.
- **Deletion curve** (Petsiuk et al., 2018, "RISE"): the target-class probability as the top-k% pixels
  are replaced by a baseline, most salient first; a lower area under the curve is a better
  explanation. Compare with ``order="random"``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.device import eval_mode, model_device
from cnnlab.errors import UserError
from cnnlab.gradcam import ClassSpec, resolve_classes

DELETION_ORDERS = ("heatmap", "random")


def _check_maps(maps: torch.Tensor, what: str) -> None:
    if maps.ndim != 3 or not maps.is_floating_point():
        raise UserError(f"{what} needs float maps [N, H, W], got {maps.dtype} {tuple(maps.shape)}")
    if not bool(torch.isfinite(maps).all()):
        raise UserError(f"{what}: maps contain NaN or inf; fix the saliency method that produced them")


def _check_boxes(boxes: torch.Tensor, n: int, what: str) -> None:
    if boxes.shape != (n, 4):
        raise UserError(f"{what} needs boxes [N, 4] = (x0, y0, x1, y1) for N={n} maps, got {tuple(boxes.shape)}")


def box_distance(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Euclidean distance ``[N, H, W]`` from each pixel to the nearest pixel inside its image's box.

    0 inside the box; ``inf`` everywhere for a box that contains no pixel.
    """
    boxes = boxes.to(torch.float64)
    # Integer pixel range of each box: lo <= index <= hi.
    lo = boxes[:, :2].ceil()  # (x_lo, y_lo)
    hi = boxes[:, 2:].ceil() - 1  # (x_hi, y_hi)
    xs = torch.arange(width, dtype=torch.float64)
    ys = torch.arange(height, dtype=torch.float64)
    dx = (lo[:, 0, None] - xs).clamp_min(0) + (xs - hi[:, 0, None]).clamp_min(0)  # [N, W]
    dy = (lo[:, 1, None] - ys).clamp_min(0) + (ys - hi[:, 1, None]).clamp_min(0)  # [N, H]
    dist = (dy[:, :, None] ** 2 + dx[:, None, :] ** 2).sqrt()
    empty = (hi < lo).any(dim=1)
    return dist.masked_fill(empty[:, None, None], math.inf)


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bool ``[N, H, W]``: which pixels lie inside each image's box (``x0 <= x < x1``, ``y0 <= y < y1``)."""
    return box_distance(boxes, height, width) == 0


def pointing_game(maps: torch.Tensor, boxes: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """Bool ``[N]``: does a maximal pixel of each map lie within ``tolerance`` pixels of its box?

    Any maximal pixel counts (ties from upsampling plateaus); a constant map is a miss.
    """
    _check_maps(maps, "pointing_game")
    _check_boxes(boxes, maps.shape[0], "pointing_game")
    if tolerance < 0:
        raise UserError(f"pointing-game tolerance {tolerance} is negative: use 0 (or e.g. 15 px for 224 px images)")
    top = maps.amax(dim=(1, 2), keepdim=True)
    bottom = maps.amin(dim=(1, 2), keepdim=True)
    peaks = maps == top
    near = box_distance(boxes.cpu(), maps.shape[1], maps.shape[2]).to(maps.device) <= tolerance
    return (peaks & near).any(dim=(1, 2)) & (top > bottom).flatten()


def energy_in_box(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Float ``[N]``: fraction of each (non-negative) map's total mass inside its box; 0 for an all-zero map."""
    _check_maps(maps, "energy_in_box")
    _check_boxes(boxes, maps.shape[0], "energy_in_box")
    if bool((maps < 0).any()):
        raise UserError("energy_in_box needs non-negative maps (e.g. Grad-CAM after ReLU); got negative values")
    inside = box_mask(boxes.cpu(), maps.shape[1], maps.shape[2]).to(maps.device)
    total = maps.sum(dim=(1, 2))
    boxed = (maps * inside).sum(dim=(1, 2))
    return torch.where(total > 0, boxed / total.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(total))


def deletion_order(
    maps: torch.Tensor, order: str = "heatmap", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Int64 ``[N, H*W]``: each pixel's rank in the deletion order (0 = deleted first).

    ``"heatmap"``: highest map value first, ties in row-major order. ``"random"``: an independent
    random permutation per image drawn from ``generator`` (CPU; the global RNG if ``None``).
    """
    if order not in DELETION_ORDERS:
        raise UserError(f"deletion order {order!r} is unknown: use one of {', '.join(DELETION_ORDERS)}")
    flat = maps.detach().flatten(1).cpu()
    if order == "heatmap":
        sequence = flat.argsort(dim=1, descending=True, stable=True)
    else:
        sequence = torch.rand(flat.shape, generator=generator).argsort(dim=1)
    ranks = torch.empty_like(sequence)
    ranks.scatter_(1, sequence, torch.arange(flat.shape[1]).expand_as(sequence).contiguous())
    return ranks


@torch.no_grad()
def deletion_curve(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    classes: ClassSpec = None,
    steps: int = 20,
    order: str = "heatmap",
    generator: torch.Generator | None = None,
    baseline: float = 0.0,
) -> torch.Tensor:
    """Float ``[N, steps + 1]`` (CPU): softmax probability of the target class as pixels are deleted.

    ``images`` are normalised float ``[N, C, H, W]``; at step ``j`` the first
    ``round(j * H * W / steps)`` pixels of :func:`deletion_order` (all channels of a pixel together)
    are set to ``baseline`` (0 in normalised space = the dataset mean colour). Column 0 is the intact
    image, the last column the fully deleted one. ``classes`` as in Grad-CAM (``None`` = the class
    predicted on the intact image). Runs in eval mode on the model's device, one forward per step
    over the whole batch (chunk large sets yourself).
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise UserError(
            f"deletion_curve needs normalised float images [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
        )
    _check_maps(maps, "deletion_curve")
    n, _, height, width = images.shape
    if maps.shape != (n, height, width):
        raise UserError(
            f"deletion_curve: maps {tuple(maps.shape)} do not match images {tuple(images.shape)}: "
            f"expected {(n, height, width)}"
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"deletion steps {steps!r} must be a positive integer, e.g. 20")
    device = model_device(model)
    images = images.to(device)
    ranks = deletion_order(maps, order, generator).view(n, 1, height, width).to(device)
    pixels = height * width
    counts = [round(j * pixels / steps) for j in range(steps + 1)]
    curve = []
    with eval_mode(model):
        logits = model(images)
        target = resolve_classes(classes, logits)[:, None]
        for count in counts:
            if count > 0:
                logits = model(torch.where(ranks < count, torch.full_like(images, baseline), images))
            curve.append(logits.softmax(dim=1).gather(1, target)[:, 0])
    return torch.stack(curve, dim=1).float().cpu()


def deletion_auc(probs: torch.Tensor) -> torch.Tensor:
    """Float ``[N]``: trapezoidal area under deletion curves ``[N, steps + 1]`` over the fraction deleted, [0, 1]."""
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise UserError(f"deletion_auc needs curves [N, steps + 1] with at least 2 points, got {tuple(probs.shape)}")
    return torch.trapezoid(probs, dx=1.0 / (probs.shape[1] - 1), dim=1)


def localization_summary(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    boxes: torch.Tensor,
    classes: ClassSpec = None,
    steps: int = 20,
    generator: torch.Generator | None = None,
    tolerance: float = 0.0,
) -> dict[str, float]:
    """Mean of each localisation metric over the batch, as a flat dict ready for ``write_json``/dvclive.

    Keys: ``pointing_game`` (hit rate), ``energy_in_box``, ``deletion_auc`` (heatmap order) and
    ``deletion_auc_random`` (random order from ``generator``; lower than it means the map beats chance).
    """
    heatmap_auc = deletion_auc(deletion_curve(model, images, maps, classes, steps, "heatmap"))
    random_auc = deletion_auc(deletion_curve(model, images, maps, classes, steps, "random", generator))
    return {
        "pointing_game": float(pointing_game(maps, boxes, tolerance).float().mean()),
        "energy_in_box": float(energy_in_box(maps, boxes).mean()),
        "deletion_auc": float(heatmap_auc.mean()),
        "deletion_auc_random": float(random_auc.mean()),
    }
