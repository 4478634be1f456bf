"""cnnlab/segmentation_eval.py: an FCN's predictions and metrics over a test set, on analytic models."""

import pytest
import torch
from torch import nn

from cnnlab.data.segmentation import SEGMENT_CLASSES, target_masks
from cnnlab.segmentation_eval import segment, summary_line

K = len(SEGMENT_CLASSES)


class ShiftedOneHot(nn.Module):
    """Logits whose argmax is ``(pixel value + shift) % K``: a model whose errors we know in advance."""

    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        classes = (x[:, 0].round().long() + self.shift) % K
        return nn.functional.one_hot(classes, K).permute(0, 3, 1, 2).float()


def identity(images: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
    return images.float()


def masks_and_images(n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    masks = torch.zeros(n, 6, 6, dtype=torch.uint8)
    for i in range(n):  # one digit of class 1 + i % 10 in a 3 x 3 square; background elsewhere
        masks[i, 1:4, 2:5] = 1 + i % 10
    masks[:, 0, 0] = torch.randint(0, K, (n,), generator=gen, dtype=torch.uint8)  # a stray pixel of any class
    return masks.unsqueeze(1).clone(), masks


@pytest.mark.parametrize("batch_size", [1, 3, 100])
def test_a_perfect_model_scores_one_and_its_confusion_is_diagonal(batch_size):
    images, masks = masks_and_images()
    pred, metrics, confusion = segment(ShiftedOneHot(0), images, masks, None, identity, batch_size, torch.device("cpu"))
    assert pred.dtype == torch.uint8 and torch.equal(pred, masks)
    assert metrics["pixel_accuracy"] == 1.0 and metrics["digit_accuracy"] == 1.0 and metrics["digits"] == len(masks)
    assert torch.equal(confusion, torch.diag(torch.bincount(masks.flatten().long(), minlength=K)))
    assert summary_line(metrics) == f"mean IoU {metrics['mean_iou']:.3f}, foreground IoU 1.000, digit accuracy 1.000"


def test_a_model_that_is_always_one_class_off_gets_every_pixel_wrong():
    images, masks = masks_and_images()
    pred, metrics, confusion = segment(ShiftedOneHot(1), images, masks, None, identity, 2, torch.device("cpu"))
    assert torch.equal(pred.long(), (masks.long() + 1) % K)
    assert metrics["pixel_accuracy"] == 0.0 and metrics["digit_accuracy"] == 0.0
    assert confusion.trace() == 0 and confusion.sum() == masks.numel()
    assert confusion[0, 1] == (masks == 0).sum()  # background predicted as class 1


def test_instances_split_a_canvas_into_its_digits():
    masks = torch.zeros(1, 4, 8, dtype=torch.uint8)
    masks[0, 1:3, 1:3], masks[0, 1:3, 5:7] = 3, 3  # two digits of the same class on one canvas
    instances = torch.zeros_like(masks)
    instances[0, 1:3, 1:3], instances[0, 1:3, 5:7] = 1, 2
    _, metrics, _ = segment(ShiftedOneHot(0), masks.unsqueeze(1), masks, instances, identity, 1, torch.device("cpu"))
    assert metrics["digits"] == 2
    _, metrics, _ = segment(ShiftedOneHot(0), masks.unsqueeze(1), masks, None, identity, 1, torch.device("cpu"))
    assert metrics["digits"] == 1  # without instances the foreground is one digit


def test_the_binary_target_scores_collapsed_masks_with_two_classes():
    """A model that is one digit off everywhere is all wrong on the 11 classes but perfect on digit vs
    background, as long as it never moves a pixel between background and digit (shift 0 -> stray classes only)."""
    images, masks = masks_and_images()
    masks[:, 0, 0] = 0  # no stray pixel: background stays background under the shift below
    images = masks.unsqueeze(1).clone()

    class DigitOff(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            labels = x[:, 0].round().long()
            binary = (labels > 0).long()
            return nn.functional.one_hot(binary, 2).permute(0, 3, 1, 2).float()

    binary = target_masks(masks, "binary")
    pred, metrics, confusion = segment(DigitOff(), images, binary, None, identity, 4, torch.device("cpu"), "binary")
    assert pred.dtype == torch.uint8 and torch.equal(pred, binary)
    assert confusion.shape == (2, 2) and confusion[0, 1] == confusion[1, 0] == 0
    assert metrics["mean_iou"] == metrics["foreground_iou"] == metrics["pixel_accuracy"] == 1.0
    assert list(metrics["per_class_iou"]) == ["background", "digit"]
    assert metrics["digit_accuracy"] is None and metrics["digits"] == len(masks)  # no digit is named
    assert "digit accuracy n/a" in summary_line(metrics)


def test_summary_line_shows_undefined_metrics_as_n_a():
    assert summary_line({"mean_iou": 0.91234, "foreground_iou": None, "digit_accuracy": 0.5}) == (
        "mean IoU 0.912, foreground IoU n/a, digit accuracy 0.500")
