"""Segmentation metrics against hand-computed cases."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cnnlab.data.segmentation import target_masks
from cnnlab.errors import UserError
from cnnlab.metrics.segmentation import (
    SegmentationMeter,
    confusion_matrix,
    foreground_iou,
    instance_predictions,
    mean_iou,
    per_class_iou,
    pixel_accuracy,
)

# One 2x4 image with 3 classes. Truth: class 0 on the left half, class 1 on the right half.
TRUTH = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])
PRED = torch.tensor([[[0, 1, 1, 1], [0, 0, 2, 1]]])
# cm[true, pred]: true 0 -> pred 0 x3, pred 1 x1; true 1 -> pred 1 x3, pred 2 x1.
EXPECTED_CM = torch.tensor([[3, 1, 0], [0, 3, 1], [0, 0, 0]])


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    assert torch.equal(confusion_matrix(PRED, TRUTH, num_classes=3), EXPECTED_CM)


def test_iou_by_hand():
    cm = confusion_matrix(PRED, TRUTH, num_classes=3)
    assert pixel_accuracy(cm) == pytest.approx(6 / 8)
    # class 0: TP 3, union 3 + 1 (FN) = 4; class 1: TP 3, FP 1 + FN 1 -> 5; class 2: TP 0, FP 1 -> 1.
    assert per_class_iou(cm).tolist() == pytest.approx([3 / 4, 3 / 5, 0.0])
    assert mean_iou(cm) == pytest.approx((3 / 4 + 3 / 5 + 0) / 3)
    # digits (1, 2) vs background: TP 4 (the 1->1 and 1->2 pixels), union = 8 - 3 = 5.
    assert foreground_iou(cm) == pytest.approx(4 / 5)


def test_class_absent_from_truth_and_prediction_is_nan_and_excluded_from_the_mean():
    cm = confusion_matrix(TRUTH, TRUTH, num_classes=4)  # classes 2 and 3 never occur
    iou = per_class_iou(cm)
    assert iou[:2].tolist() == [1.0, 1.0]
    assert math.isnan(iou[2]) and math.isnan(iou[3])
    assert mean_iou(cm) == 1.0
    empty = torch.zeros(3, 3, dtype=torch.int64)
    assert math.isnan(mean_iou(empty)) and math.isnan(foreground_iou(empty)) and math.isnan(pixel_accuracy(empty))


def test_foreground_iou_ignores_the_digit_class():
    truth = torch.tensor([[[0, 3, 3, 0]]])
    wrong_digit = torch.tensor([[[0, 5, 5, 0]]])
    cm = confusion_matrix(wrong_digit, truth, num_classes=11)
    assert foreground_iou(cm) == 1.0
    assert per_class_iou(cm)[3] == 0.0
    half = confusion_matrix(torch.tensor([[[0, 5, 0, 5]]]), truth, num_classes=11)
    assert foreground_iou(half) == pytest.approx(1 / 3)  # TP 1, FP 1, FN 1


def test_confusion_accumulates_over_batches():
    gen = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 11, (6, 9, 7), generator=gen)
    truth = torch.randint(0, 11, (6, 9, 7), generator=gen)
    whole = confusion_matrix(pred, truth)
    parts = confusion_matrix(pred[:2], truth[:2]) + confusion_matrix(pred[2:], truth[2:])
    assert torch.equal(whole, parts)
    assert int(whole.sum()) == 6 * 9 * 7


def digit_image(true_class: int, predicted: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x8 image: 2 background pixels then 6 pixels of ``true_class``, predicted as ``[p0, ..., p7]``."""
    truth = torch.tensor([[[0, 0] + [true_class] * 6]])
    return torch.tensor([predicted]).unsqueeze(0), truth


@pytest.mark.parametrize(
    ("predicted", "expected"),
    [
        ([0, 0, 4, 4, 4, 4, 2, 2], 4),  # majority right despite wrong pixels
        ([0, 0, 0, 0, 0, 0, 0, 4], 4),  # background does not vote: one digit pixel decides
        ([0, 0, 0, 0, 0, 0, 0, 0], 0),  # nothing predicted as a digit: wrong
        ([4, 4, 2, 2, 2, 4, 4, 0], 2),  # predictions outside the digit do not count (4 x2 there)
        ([0, 0, 4, 4, 2, 2, 0, 0], 2),  # a tie goes to the lowest class
    ],
)
def test_single_digit_prediction(predicted, expected):
    pred, truth = digit_image(4, predicted)
    true_class, predicted_class = instance_predictions(pred, truth)
    assert true_class.tolist() == [4]
    assert predicted_class.tolist() == [expected]


def test_multi_digit_canvas_is_judged_per_instance():
    # Two 3s (instances 1 and 2) and a 7 (instance 3) on one canvas; image 2 has no digit at all.
    truth = torch.tensor([[[3, 3, 0, 3, 3, 0, 7, 7]], [[0] * 8]])
    instance = torch.tensor([[[1, 1, 0, 2, 2, 0, 3, 3]], [[0] * 8]])
    pred = torch.tensor([[[3, 3, 0, 5, 0, 0, 7, 3]], [[0] * 8]])
    true_class, predicted = instance_predictions(pred, truth, instance)
    assert true_class.tolist() == [3, 3, 7]
    assert predicted.tolist() == [3, 5, 3]  # instance 3 ties 7/3 -> 3 (lowest)
    # Without the instance map, the canvas would count as one (wrong-class-mixing) digit.
    assert instance_predictions(pred, truth)[0].tolist() == [3]


def test_box_shaped_instances_only_use_their_digit_pixels():
    truth = torch.tensor([[[0, 2, 2, 0, 0, 9, 0, 0]]])
    boxes = torch.tensor([[[1, 1, 1, 1, 2, 2, 2, 2]]])  # each box also covers background pixels
    pred = torch.tensor([[[0, 2, 0, 8, 8, 9, 8, 8]]])
    true_class, predicted = instance_predictions(pred, truth, boxes)
    assert true_class.tolist() == [2, 9]
    assert predicted.tolist() == [2, 9]


def test_meter_reports_json_ready_metrics():
    meter = SegmentationMeter()
    truth = torch.tensor([[[0, 0, 5, 5], [0, 0, 5, 5]], [[0, 1, 1, 0], [0, 1, 1, 0]]])
    pred = torch.tensor([[[0, 0, 5, 5], [0, 0, 5, 0]], [[0, 1, 1, 0], [0, 0, 0, 0]]])
    logits = torch.nn.functional.one_hot(pred, 11).permute(0, 3, 1, 2).float()
    meter.update(logits[:1], truth[:1])
    meter.update(pred[1:], truth[1:])  # class maps are accepted too
    metrics = meter.compute()
    json.dumps(metrics, allow_nan=False)
    assert metrics["pixel_accuracy"] == pytest.approx(13 / 16)
    assert metrics["digits"] == 2 and metrics["digit_accuracy"] == 1.0
    assert list(metrics["per_class_iou"]) == ["background", *"0123456789"]
    iou = metrics["per_class_iou"]
    assert iou["background"] == pytest.approx(8 / 11)  # TP 8, FN 0, FP 3
    assert iou["0"] == pytest.approx(2 / 4) and iou["4"] == pytest.approx(3 / 4)
    assert iou["9"] is None  # absent from truth and prediction
    assert metrics["mean_iou"] == pytest.approx((8 / 11 + 2 / 4 + 3 / 4) / 3)
    assert metrics["foreground_iou"] == pytest.approx(5 / 8)
    meter.reset()
    assert meter.compute()["digit_accuracy"] is None


def test_foreground_iou_is_the_same_number_for_the_11_class_and_the_binary_target():
    """Hand-made: digit 3 (class 4) in a 2 x 3 block; the prediction misses one pixel, adds one, and calls one
    pixel a 7. Foreground IoU merges the digit classes (TP 5: the wrong 7 is still a digit; FP 1, FN 1 -> 5/7),
    so it is identical for the 11-class maps and the binary ones collapsed from them, where it is the IoU of
    class "digit"; the binary meter reports no per-digit accuracy (its classes name no digit)."""
    truth = torch.zeros(1, 4, 4, dtype=torch.int64)
    truth[0, 1:3, 0:3] = 4
    pred = truth.clone()
    pred[0, 1, 0] = 0  # missed digit pixel (FN)
    pred[0, 3, 3] = 4  # background called a digit (FP)
    pred[0, 2, 2] = 8  # the right place, the wrong digit: still foreground
    digits = SegmentationMeter()
    digits.update(pred, truth)
    binary = SegmentationMeter(2, ["background", "digit"], per_digit=False)
    binary.update(target_masks(pred, "binary"), target_masks(truth, "binary"))
    m11, m2 = digits.compute(), binary.compute()
    assert m11["foreground_iou"] == m2["foreground_iou"] == pytest.approx(5 / 7)
    assert m2["per_class_iou"] == {"background": pytest.approx(9 / 11), "digit": pytest.approx(5 / 7)}
    assert m2["mean_iou"] == pytest.approx((9 / 11 + 5 / 7) / 2)
    assert m2["pixel_accuracy"] == pytest.approx(14 / 16) and m11["pixel_accuracy"] == pytest.approx(13 / 16)
    assert m11["digit_accuracy"] == 1.0 and m2["digit_accuracy"] is None and m2["digits"] == 1


def test_bad_inputs_are_user_errors():
    truth = torch.zeros(1, 4, 4, dtype=torch.int64)
    with pytest.raises(UserError, match=r"predictions \(1, 4, 3\) and masks \(1, 4, 4\) must have the same shape"):
        confusion_matrix(torch.zeros(1, 4, 3, dtype=torch.int64), truth)
    out_of_range = truth.clone()
    out_of_range[0, 0, 0] = 11
    with pytest.raises(UserError, match=r"masks hold class 0..11, outside 0..10: check the dataset's mask classes"):
        confusion_matrix(truth, out_of_range)
    with pytest.raises(UserError, match="predictions must hold integer class indices, got torch.float32"):
        confusion_matrix(truth.float(), truth)
    with pytest.raises(UserError, match=r"instance map \(1, 2, 2\) must have the masks' shape \(1, 4, 4\)"):
        instance_predictions(truth, truth, torch.zeros(1, 2, 2, dtype=torch.int64))
