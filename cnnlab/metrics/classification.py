"""Classification metrics on tensors: accuracy, confusion matrix, per-class accuracy.

``scores`` may be class scores/logits (one more dimension than ``target``, classes on dimension 1:
``[N, K]`` for images, ``[N, K, H, W]`` for segmentation masks) or already predicted labels (the same
shape as ``target``). Every target element counts once, so for masks accuracy is pixel accuracy.
"""

from __future__ import annotations

import torch


def predictions(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Predicted labels: ``scores.argmax(1)`` for class scores, ``scores`` itself for labels."""
    if scores.ndim == target.ndim + 1:
        scores = scores.argmax(dim=1)
    if scores.shape != target.shape:
        raise ValueError(f"predictions {tuple(scores.shape)} do not match targets {tuple(target.shape)}")
    return scores


def count_correct(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Number of target elements predicted correctly, as a 0-dim int64 tensor on ``target``'s device."""
    return (predictions(scores, target) == target).sum()


def accuracy(scores: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of target elements predicted correctly (NaN for an empty target)."""
    if target.numel() == 0:
        return float("nan")
    return count_correct(scores, target).item() / target.numel()


def confusion_matrix(scores: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 ``[K, K]`` counts; row = true class, column = predicted class."""
    pred = predictions(scores, target).reshape(-1).long()
    true = target.reshape(-1).long()
    for what, labels in (("targets", true), ("predictions", pred)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{what} must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    counts = torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu()


def per_class_accuracy(scores: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float64 ``[K]``: recall of each class (correct / true count); NaN for classes absent from ``target``."""
    return per_class_accuracy_from_confusion(confusion_matrix(scores, target, num_classes))


def per_class_accuracy_from_confusion(confusion: torch.Tensor) -> torch.Tensor:
    """Diagonal over row sums of a confusion matrix (rows = true class); NaN for empty rows."""
    confusion = confusion.to(torch.float64)
    return confusion.diagonal() / confusion.sum(dim=1)
