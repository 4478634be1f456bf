"""Segmentation metrics for segmented MNIST: class 0 is the background, class ``d + 1`` is digit ``d``.

Pixel metrics come from a confusion matrix ``cm[true, predicted]`` of pixel counts, accumulated over
batches (:func:`confusion_matrix`, a ``bincount`` over ``num_classes ** 2`` cells):

- **pixel accuracy**: correctly labelled pixels / all pixels;
- **per-class IoU**: ``TP / (TP + FP + FN)``. A class absent from both the truth and the prediction has
  no union; its IoU is NaN (undefined, not 0 or 1) and it is left out of the mean;
- **mean IoU**: the mean of the defined per-class IoUs (background included);
- **foreground IoU**: IoU of "digit" vs "background", ignoring which digit: a pixel counts as a true
  positive when both truth and prediction are any digit class.

**Per-digit accuracy** judges whole digits rather than pixels: the predicted digit of a digit instance is
the majority predicted *foreground* class over the instance's true digit pixels (background predictions do
not vote; ties go to the lowest class); it is correct when it equals the instance's true digit, and an
instance where no pixel was predicted as a digit counts as wrong. Instances come from an ``instance`` map
``[N, H, W]`` (0 = background, ``k`` = the image's k-th digit; pixels of an instance that are background in
the truth are ignored, so a box-shaped instance works too). Without one, each image's foreground is a single
instance, which is the single-digit MNIST case. A model of the binary target (digit vs background, class 1 =
any digit) cannot name digits: its meter is made with ``per_digit=False`` and reports no per-digit accuracy
(``None``); its foreground IoU is the same quantity as every 11-class model's, so the two compare directly.

:class:`SegmentationMeter` accumulates all of these over batches and returns a JSON-ready dict (undefined
values as ``None``). For training and plots: :func:`class_weights` (cross-entropy weights from pixel
frequencies) and :func:`stratified_pixels` (an equal share of pixels per true class for the confusion plot).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from cnnlab.data.segmentation import BACKGROUND, SEGMENT_CLASSES
from cnnlab.errors import UserError

NUM_CLASSES = len(SEGMENT_CLASSES)


def _check_labels(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> None:
    if pred.shape != target.shape:
        raise UserError(f"predictions {tuple(pred.shape)} and masks {tuple(target.shape)} must have the same shape")
    for name, labels in (("predictions", pred), ("masks", target)):
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise UserError(f"{name} must hold integer class indices, got {labels.dtype}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise UserError(
                f"{name} hold class {int(labels.min())}..{int(labels.max())}, outside 0..{num_classes - 1}: "
                f"check the dataset's mask classes against num_classes={num_classes}"
            )


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Pixel counts ``[num_classes, num_classes]`` (int64, CPU): row = true class, column = predicted class."""
    _check_labels(pred, target, num_classes)
    cells = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(cells, minlength=num_classes**2).reshape(num_classes, num_classes).cpu()


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Fraction of correctly labelled pixels (NaN for an empty matrix)."""
    total = int(cm.sum())
    return int(cm.trace()) / total if total else math.nan


def per_class_iou(cm: torch.Tensor) -> torch.Tensor:
    """IoU of each class (float64 ``[num_classes]``); NaN for a class absent from both truth and prediction."""
    cm = cm.to(torch.float64)
    tp = cm.diagonal()
    union = cm.sum(dim=0) + cm.sum(dim=1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, math.nan))


def mean_iou(cm: torch.Tensor) -> float:
    """Mean of the defined per-class IoUs (NaN when no class occurs at all)."""
    iou = per_class_iou(cm)
    defined = iou[~iou.isnan()]
    return float(defined.mean()) if defined.numel() else math.nan


def foreground_iou(cm: torch.Tensor) -> float:
    """IoU of digit-vs-background, the digit's class ignored (NaN when neither truth nor prediction has a digit)."""
    tp = int(cm[1:, 1:].sum())  # digit pixels predicted as some digit (classes 1.. are digits)
    union = int(cm.sum()) - int(cm[0, 0])  # every pixel that is a digit in truth or prediction
    return tp / union if union else math.nan


def instance_predictions(
    pred: torch.Tensor,
    target: torch.Tensor,
    instance: torch.Tensor | None = None,
    num_classes: int = NUM_CLASSES,
) -> tuple[torch.Tensor, torch.Tensor]:
    """True and predicted class of every digit instance in a batch (see the module doc for the rule).

    ``pred`` and ``target`` are class maps ``[N, H, W]``; ``instance`` is an optional id map of the same shape
    (0 = background). Returns two int64 tensors ``[M]`` for the M instances with at least one true digit pixel:
    the instance's true class (majority over its pixels) and its predicted class, 0 when no pixel of it was
    predicted as a digit.
    """
    _check_labels(pred, target, num_classes)
    if instance is None:
        instance = (target != BACKGROUND).long()
    elif instance.shape != target.shape:
        raise UserError(f"instance map {tuple(instance.shape)} must have the masks' shape {tuple(target.shape)}")
    n = target.shape[0]
    ids = instance.reshape(n, -1).long().cpu()
    if ids.numel() and int(ids.min()) < 0:
        raise UserError(f"instance ids must be >= 0 (0 = background), got {int(ids.min())}")
    per_image = int(ids.max()) + 1 if ids.numel() else 1
    target_flat, pred_flat = target.reshape(n, -1).long().cpu(), pred.reshape(n, -1).long().cpu()
    evaluated = (ids > 0) & (target_flat != BACKGROUND)
    slot = (torch.arange(n)[:, None] * per_image + ids)[evaluated]  # one slot per (image, instance id)
    slots = n * per_image

    def votes(labels: torch.Tensor) -> torch.Tensor:
        cells = slot * num_classes + labels[evaluated]
        return torch.bincount(cells, minlength=slots * num_classes).reshape(slots, num_classes)

    true_votes, pred_votes = votes(target_flat), votes(pred_flat)
    present = true_votes.sum(dim=1) > 0
    true_class = true_votes[present].argmax(dim=1)
    foreground_votes = pred_votes[present].clone()
    foreground_votes[:, BACKGROUND] = 0
    predicted = foreground_votes.argmax(dim=1)  # the first maximum: ties go to the lowest class
    predicted[foreground_votes.sum(dim=1) == 0] = BACKGROUND
    return true_class, predicted


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


class SegmentationMeter:
    """Accumulates the confusion matrix and per-digit hits over batches; :meth:`compute` returns the metrics."""

    def __init__(
        self, num_classes: int = NUM_CLASSES, class_names: Sequence[str] | None = None, per_digit: bool = True
    ) -> None:
        # per_digit: the classes 1.. name digits, so a digit instance's majority class says which digit it is
        self.per_digit = per_digit
        if class_names is None:
            class_names = SEGMENT_CLASSES if num_classes == NUM_CLASSES else [str(c) for c in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.reset()

    def reset(self) -> None:
        self.confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.int64)
        self.digits_correct = 0
        self.digits_total = 0

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor, instance: torch.Tensor | None = None) -> None:
        """Add a batch: ``output`` logits ``[N, C, H, W]`` or class maps ``[N, H, W]``, ``target`` masks ``[N, H, W]``.

        ``instance`` (optional, ``[N, H, W]``, 0 = background) splits multi-digit canvases into digits; without
        it each image's foreground is one digit.
        """
        pred = output.argmax(dim=1) if output.ndim == target.ndim + 1 else output
        self.confusion += confusion_matrix(pred, target, self.num_classes)
        true_class, predicted = instance_predictions(pred, target, instance, self.num_classes)
        self.digits_correct += int((true_class == predicted).sum())
        self.digits_total += int(true_class.numel())

    def compute(self) -> dict:
        """Metrics as a JSON-ready dict; values that are undefined so far (see module doc) are ``None``."""
        iou = per_class_iou(self.confusion)
        digit_accuracy = self.digits_correct / self.digits_total if self.digits_total and self.per_digit else math.nan
        return {
            "pixel_accuracy": _json_float(pixel_accuracy(self.confusion)),
            "mean_iou": _json_float(mean_iou(self.confusion)),
            "foreground_iou": _json_float(foreground_iou(self.confusion)),
            "digit_accuracy": _json_float(digit_accuracy),
            "digits": self.digits_total,
            "per_class_iou": {name: _json_float(float(v)) for name, v in zip(self.class_names, iou)},
        }


def class_weights(masks: torch.Tensor, num_classes: int, scheme: str) -> torch.Tensor | None:
    """Cross-entropy class weights from the pixel counts of the training masks (``None`` for ``"none"``).

    ``inverse_sqrt_frequency``: ``w_c = f_c ** -0.5`` for a class with pixel frequency ``f_c``, scaled so
    the average weight over all training pixels is 1; a class without training pixels gets weight 0.
    """
    if scheme == "none":
        return None
    counts = torch.bincount(masks.reshape(-1).long(), minlength=num_classes).double()
    freq = counts / counts.sum()
    weights = torch.where(freq > 0, freq.clamp_min(1e-12).rsqrt(), torch.zeros_like(freq))
    return (weights / (freq * weights).sum()).float()


def stratified_pixels(
    truth: torch.Tensor, pred: torch.Tensor, total: int, num_classes: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(actual, predicted) classes of ``total`` pixels drawn without replacement, an equal share per true class.

    Class ``c`` gets ``total // num_classes`` pixels (one more for the first ``total % num_classes``
    classes), or all of its pixels when it has fewer.
    """
    truth, pred = truth.reshape(-1), pred.reshape(-1)
    chosen = []
    for c in range(num_classes):
        members = torch.nonzero(truth == c).flatten()
        share = total // num_classes + (c < total % num_classes)
        chosen.append(members[torch.randperm(members.numel(), generator=gen)[:share]])
    index = torch.cat(chosen)
    return truth[index].long(), pred[index].long()
