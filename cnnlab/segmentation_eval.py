"""An FCN over a segmentation test set: predicted class maps and the :class:`SegmentationMeter` metrics.

:func:`segment` serves the single test digits (each image's foreground is one digit) and the
multi-digit canvases (``instances`` split each canvas into its digits, for the per-digit accuracy), for
either target of :data:`~cnnlab.data.segmentation.TARGETS` (masks already in that target's labels);
:func:`summary_line` is its metrics in one line, for logs and figure titles.
"""

from __future__ import annotations

import torch

from cnnlab.data.segmentation import TARGETS
from cnnlab.metrics.segmentation import SegmentationMeter
from cnnlab.training import PrepareFn, predict


def segment(
    model: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    instances: torch.Tensor | None,
    prepare: PrepareFn,
    batch_size: int,
    device: torch.device,
    target: str = "digits",
) -> tuple[torch.Tensor, dict, torch.Tensor]:
    """Predicted class maps (uint8 ``[N, H, W]``), the :class:`SegmentationMeter` metrics and pixel confusion.

    ``masks`` hold ``target``'s labels; the binary target has no per-digit accuracy (``None``).
    """
    classes = TARGETS[target]
    meter = SegmentationMeter(len(classes), classes, per_digit=target == "digits")
    preds = []
    for start in range(0, len(images), batch_size):
        batch = slice(start, start + batch_size)
        pred = predict(model, images[batch], prepare, batch_size, device).argmax(dim=1).to(torch.uint8)
        meter.update(pred, masks[batch], None if instances is None else instances[batch])
        preds.append(pred)
    return torch.cat(preds), meter.compute(), meter.confusion


def summary_line(metrics: dict) -> str:
    """``"mean IoU 0.912, foreground IoU 0.870, digit accuracy 0.980"`` (``n/a`` for an undefined metric)."""
    shown = {"mean IoU": "mean_iou", "foreground IoU": "foreground_iou", "digit accuracy": "digit_accuracy"}
    return ", ".join(f"{label} {'n/a' if metrics[key] is None else format(metrics[key], '.3f')}"
                     for label, key in shown.items())
