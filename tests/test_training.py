"""The shared training loop, batched augmentation, classification metrics and checkpoints."""

from __future__ import annotations

import logging
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.augment import crop_and_flip, make_prepare, random_crop_flip, random_window, sample_crop_flip
from cnnlab.errors import UserError
from cnnlab.metrics.classification import accuracy, confusion_matrix, per_class_accuracy
from cnnlab.models.cifar import CifarNetConfig, build_cifar_net
from cnnlab.training import (
    HISTORY_KEYS,
    TrainConfig,
    amp_dtype,
    evaluate,
    fit,
    lr_schedule,
    predict,
)

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
PLAIN = make_prepare(MEAN, STD, augment=False, channels_last=False)


def texture_data(n: int, seed: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy uint8 images whose class is their texture: horizontal/vertical stripes, checkerboard, flat.

    Each image gets a random phase, so the class does not depend on position (crops keep it).
    """
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=gen)
    rows = torch.arange(size).view(1, size, 1) + torch.randint(0, 4, (n, 1, 1), generator=gen)
    cols = torch.arange(size).view(1, 1, size) + torch.randint(0, 4, (n, 1, 1), generator=gen)
    patterns = torch.stack([(rows // 2) % 2 + 0 * cols, (cols // 2) % 2 + 0 * rows, (rows // 2 + cols // 2) % 2])
    on = torch.cat([patterns, torch.zeros_like(patterns[:1])])[labels, torch.arange(n)]  # [N, H, W]
    noise = torch.randint(0, 80, (n, 3, size, size), generator=gen)
    return (noise + 120 * on[:, None]).to(torch.uint8), labels


def small_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return build_cifar_net(CifarNetConfig("residual", 8, num_classes=num_classes))


def quick_config(**overrides) -> TrainConfig:
    settings = dict(epochs=2, batch_size=32, lr=0.05, device="cpu", show_progress=False, eval_batch_size=100)
    return TrainConfig(**{**settings, **overrides})


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_sec")} for row in history]


# --------------------------------------------------------------------------------------------------
# Augmentation


def test_crop_equals_the_padded_slice_at_the_chosen_offset() -> None:
    images = torch.randint(0, 256, (6, 3, 8, 10), dtype=torch.uint8)
    top = torch.tensor([0, 8, 3, 4, 1, 7])
    left = torch.tensor([8, 0, 5, 4, 2, 6])
    flip = torch.tensor([False, True, False, True, True, False])
    out = crop_and_flip(images, top, left, flip, padding=4)
    padded = F.pad(images, (4, 4, 4, 4))
    assert out.shape == images.shape and out.dtype == torch.uint8
    for i in range(6):
        window = padded[i, :, top[i] : top[i] + 8, left[i] : left[i] + 10]
        assert torch.equal(out[i], window.flip(-1) if flip[i] else window)
    centred = crop_and_flip(images, torch.full((6,), 4), torch.full((6,), 4), torch.zeros(6, dtype=torch.bool))
    assert torch.equal(centred, images)


def test_random_crop_flip_is_reproducible_and_varied() -> None:
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    first = random_crop_flip(images, torch.Generator().manual_seed(3))
    again = random_crop_flip(images, torch.Generator().manual_seed(3))
    other = random_crop_flip(images, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    top, left, flip = sample_crop_flip(2000, 4, torch.Generator().manual_seed(0))
    assert set(top.tolist()) == set(range(9)) == set(left.tolist())
    assert 0.45 < flip.float().mean().item() < 0.55


def test_random_window_cuts_each_image_at_its_drawn_offset_and_shards_like_the_whole_batch() -> None:
    images = torch.arange(5 * 2 * 8 * 8).view(5, 2, 8, 8)
    windows = random_window(images, 5, torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)  # the same draws: top offsets, then left offsets, each in [0, 8 - 5]
    top, left = torch.randint(0, 4, (5,), generator=gen), torch.randint(0, 4, (5,), generator=gen)
    assert windows.shape == (5, 2, 5, 5)
    for i in range(5):
        assert torch.equal(windows[i], images[i, :, top[i] : top[i] + 5, left[i] : left[i] + 5])
    assert len({(int(t), int(c)) for t, c in zip(top, left)}) > 1  # offsets vary from image to image
    # one rank's rows of a global batch get exactly the windows the whole batch would give them
    rows = random_window(images[2:4], 5, torch.Generator().manual_seed(1), shard=(2, 5))
    assert torch.equal(rows, windows[2:4])


def test_prepare_normalises_and_augments_only_in_training() -> None:
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    mean, std = [0.1, 0.5, 0.9], [0.2, 0.3, 0.4]
    prepare = make_prepare(mean, std, augment=True, channels_last=True)
    expected = (images.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    out = prepare(images, False, None)
    torch.testing.assert_close(out, expected)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    assert make_prepare(mean, std, False, channels_last=False)(images, False).is_contiguous()
    gen = torch.Generator().manual_seed(0)
    augmented = prepare(images, True, gen)
    crops = random_crop_flip(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(augmented, prepare(crops, False))
    no_augment = make_prepare(mean, std, augment=False, channels_last=True)
    torch.testing.assert_close(no_augment(images, True, gen), expected)


@pytest.mark.parametrize("padding", [0, 2])
def test_prepare_shifts_each_image_by_at_most_its_padding(padding: int) -> None:
    """``augment_padding``: every augmented image is a (possibly mirrored) crop of the image padded by ``padding``
    zeros, the shifts cover [-padding, padding] in both directions (0 = flips only), and a sharded batch gets the
    rows' crops of the whole batch."""
    images = (torch.arange(1, 65, dtype=torch.uint8).view(1, 1, 8, 8)).expand(300, 1, 8, 8).contiguous()
    prepare = make_prepare([0.0], [1 / 255], augment=True, channels_last=False, padding=padding)  # x -> x
    out = prepare(images, True, torch.Generator().manual_seed(0))
    padded = F.pad(images[0], (padding,) * 4).float()
    crops = {(top, left, flip): padded[:, top : top + 8, left : left + 8].flip(-1) if flip
             else padded[:, top : top + 8, left : left + 8]
             for top in range(2 * padding + 1) for left in range(2 * padding + 1) for flip in (False, True)}
    seen = set()
    for image in out:
        matches = [draw for draw, crop in crops.items() if torch.equal(image, crop)]
        assert len(matches) == 1, "not a crop of the padded image"
        seen.add(matches[0])
    assert seen == set(crops)  # every shift in [-padding, padding]^2, mirrored or not, occurs
    rows = prepare(images[10:20], True, torch.Generator().manual_seed(0), shard=(10, 300))
    torch.testing.assert_close(rows, out[10:20])


def test_prepare_rejects_mismatched_statistics() -> None:
    with pytest.raises(UserError, match="has 3"):
        PLAIN(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(UserError, match="must be positive"):
        make_prepare([0.5], [0.0], False, False)
    with pytest.raises(UserError, match="one value per channel"):
        make_prepare([0.5, 0.5], [0.2], False, False)


# --------------------------------------------------------------------------------------------------
# Metrics


def test_classification_metrics() -> None:
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    logits = F.one_hot(pred, 4).float()
    assert accuracy(logits, target) == pytest.approx(4 / 6) == accuracy(pred, target)
    confusion = confusion_matrix(logits, target, 4)
    assert confusion.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    per_class = per_class_accuracy(pred, target, 4)
    assert per_class[:3].tolist() == [0.5, 1.0, 0.5] and math.isnan(per_class[3])
    masks = torch.tensor([[[0, 1], [1, 1]]])
    mask_logits = F.one_hot(torch.tensor([[[0, 1], [0, 1]]]), 2).permute(0, 3, 1, 2).float()
    assert accuracy(mask_logits, masks) == 0.75  # pixel accuracy
    with pytest.raises(ValueError, match="must lie in"):
        confusion_matrix(pred, target, 2)


# --------------------------------------------------------------------------------------------------
# Configuration and schedule


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lr": 0.0}, "training lr=0.0 is invalid: use a number in (0, inf)"),
        ({"lr": float("nan")}, "training lr=nan is invalid"),
        ({"epochs": 0}, "training epochs=0 is invalid: use an integer >= 1"),
        ({"batch_size": 0}, "training batch_size=0 is invalid: use an integer >= 1"),
        ({"batch_size": 200}, "training batch_size=200 is larger than the 100 training examples: use at most 100"),
        ({"optimizer": "rmsprop"}, "training optimizer='rmsprop' is not supported: use one of sgd, adam"),
        ({"schedule": "onecycle"},
         "training schedule='onecycle' is not supported: use one of cosine, linear, step, constant"),
        ({"label_smoothing": 1.0}, "training label_smoothing=1.0 is invalid: use a number in [0, 1)"),
        ({"ema_epochs": -1}, "training ema_epochs=-1 is invalid: use a number in [0, inf)"),
        ({"eval_flip": 1}, "training eval_flip=1 is invalid: use true or false"),
        ({"decay_bn_bias": "no"}, "training decay_bn_bias='no' is invalid: use true or false"),
        ({"momentum": 1.0}, "training momentum=1.0 is invalid: use a number in [0, 1)"),
        ({"momentum": 0.0}, "training nesterov=True needs momentum > 0"),
        ({"weight_decay": -1e-4}, "training weight_decay=-0.0001 is invalid"),
        ({"warmup_epochs": 3}, "training warmup_epochs=3 exceeds epochs=2"),
        ({"amp": "yes"}, "training amp='yes' is invalid: use true or false"),
        ({"eval_batch_size": 0}, "training eval_batch_size=0 is invalid"),
        ({"device": "tpu"}, "'tpu' is not a device"),
        ({"small_crop_epochs": 2}, "training small_crop_epochs=2 leaves no full-size epoch of the 2: use at most 1"),
        ({"small_crop_epochs": -1}, "training small_crop_epochs=-1 is invalid: use an integer >= 0"),
        ({"small_crop_size": 0}, "training small_crop_size=0 is invalid: use an integer >= 1"),
    ],
)
def test_bad_training_configs_name_the_key_and_value(overrides: dict, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        quick_config(**overrides).validate(100)


def test_training_config_from_dict() -> None:
    assert TrainConfig.from_dict({"epochs": 3, "batch_size": 8, "lr": 0.1}) == TrainConfig(3, 8, 0.1)
    assert TrainConfig.from_dict(quick_config().to_dict()) == quick_config()
    with pytest.raises(UserError, match="unknown training config key.*lr_decay"):
        TrainConfig.from_dict({"epochs": 3, "batch_size": 8, "lr": 0.1, "lr_decay": 0.1})
    with pytest.raises(UserError, match="missing key.*batch_size"):
        TrainConfig.from_dict({"epochs": 3, "lr": 0.1})


def test_learning_rate_schedules() -> None:
    cosine = lr_schedule(quick_config(epochs=5, lr=1.0, warmup_epochs=1), steps_per_epoch=10)
    rates = [cosine(step) for step in range(50)]
    assert rates[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert rates[10] == 1.0 and rates[49] < 0.01
    assert all(a > b for a, b in zip(rates[10:], rates[11:]))
    step = lr_schedule(quick_config(epochs=4, lr=1.0, schedule="step"), steps_per_epoch=25)
    assert [step(s) for s in (0, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    constant = lr_schedule(quick_config(lr=0.3, schedule="constant"), steps_per_epoch=7)
    assert {constant(s) for s in range(14)} == {0.3}
    linear = lr_schedule(quick_config(epochs=3, lr=2.0, warmup_epochs=1, schedule="linear"), steps_per_epoch=10)
    assert [linear(s) for s in (0, 9, 10, 20, 29)] == pytest.approx([0.2, 2.0, 2.0, 1.0, 0.1])


# --------------------------------------------------------------------------------------------------
# fit, evaluate, predict


def test_fit_learns_a_separable_problem_and_reports_each_epoch() -> None:
    train, test = texture_data(512, seed=0), texture_data(200, seed=1)
    rows: list[dict] = []
    model = small_net()
    cfg = quick_config(warmup_epochs=1)
    result = fit(model, train, test, cfg, make_prepare(MEAN, STD, True, True), on_epoch=rows.append, name="res8")
    assert result.test_acc > 0.9  # chance is 0.25
    assert rows == result.history and [row["epoch"] for row in rows] == [1, 2]
    assert all(tuple(row) == HISTORY_KEYS for row in rows)
    assert rows[-1]["lr"] == pytest.approx(lr_schedule(cfg, 16)(31))
    assert result.diverged_epoch is None and result.best_epoch in (1, 2)
    assert result.best_test_acc == max(row["test_acc"] for row in rows)
    assert result.train_seconds > 0 and result.images_per_sec > 0
    assert set(result.summary()) == {"best_epoch", "best_test_acc", "test_loss", "test_acc", "diverged_epoch"}
    assert set(result.timing()) == {"train_seconds", "images_per_sec"}  # wall-clock: kept out of the summary
    expected = evaluate(model, test, make_prepare(MEAN, STD, False, True), cfg.eval_batch_size, "cpu", amp=cfg.amp)
    assert (result.test_loss, result.test_acc) == expected


def test_fit_is_deterministic_on_cpu() -> None:
    train, test = texture_data(128, seed=0), texture_data(64, seed=1)
    runs = []
    for _ in range(2):
        model = small_net()
        result = fit(model, train, test, quick_config(epochs=2), make_prepare(MEAN, STD, True, True))
        runs.append((without_timing(result.history), model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for key, value in runs[0][1].items():
        assert torch.equal(value, runs[1][1][key]), key
    other = fit(small_net(), train, test, quick_config(epochs=2, seed=1), make_prepare(MEAN, STD, True, True))
    assert without_timing(other.history) != runs[0][0]


def test_fit_trains_only_parameters_that_require_grad() -> None:
    model = small_net()
    for parameter in model.stem.parameters():
        parameter.requires_grad_(False)
    frozen = {k: v.clone() for k, v in model.stem.named_parameters()}
    before = model.fc.weight.clone()
    fit(model, texture_data(64, 0), texture_data(32, 1), quick_config(epochs=1), PLAIN)
    for key, value in model.stem.named_parameters():
        assert torch.equal(value, frozen[key])
    assert not torch.equal(model.fc.weight, before)


def test_fit_handles_segmentation_masks() -> None:
    """Targets [N, H, W] with logits [N, K, H, W]: loss and accuracy are per pixel."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (96, 1, 8, 8), dtype=torch.uint8, generator=gen)
    masks = (images[:, 0] > 127).long()
    torch.manual_seed(0)
    model = nn.Conv2d(1, 2, 1)
    prepare = make_prepare([0.5], [0.5], augment=False, channels_last=True)
    result = fit(model, (images, masks), (images, masks), quick_config(epochs=3, optimizer="adam"), prepare)
    assert result.test_acc > 0.95
    loss, acc = evaluate(model, (images, masks), prepare, 40, "cpu")
    logits = predict(model, images, prepare, 40, "cpu")
    assert logits.shape == (96, 2, 8, 8)
    assert acc == pytest.approx((logits.argmax(1) == masks).float().mean().item())
    assert loss == pytest.approx(F.cross_entropy(logits, masks).item(), rel=1e-5)


def test_evaluate_and_predict_match_a_direct_forward_pass() -> None:
    images, labels = texture_data(70, seed=2)
    model = small_net().train()
    prepare = make_prepare(MEAN, STD, augment=True, channels_last=False)
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0])
    loss, acc = evaluate(model, (images, labels), prepare, 32, "cpu", class_weights=weights)
    logits = predict(model, images, prepare, 32, "cpu")
    assert model.training  # the mode is restored
    with torch.no_grad():
        direct = model.eval()(prepare(images, False))
    assert logits.dtype == torch.float32 and logits.device.type == "cpu"
    torch.testing.assert_close(logits, direct)
    assert loss == pytest.approx(F.cross_entropy(direct, labels, weight=weights).item(), rel=1e-5)
    assert acc == pytest.approx(accuracy(direct, labels))


def test_divergence_stops_training_and_keeps_the_initial_weights(caplog: pytest.LogCaptureFixture) -> None:
    model = small_net()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="cnnlab.training"):
        result = fit(model, texture_data(64, 0), texture_data(32, 1), quick_config(lr=1e6), PLAIN, name="boom-8")
    assert result.diverged_epoch == 1 and result.history == [] and result.best_epoch == 0
    for key, value in model.state_dict().items():
        assert torch.equal(value, initial[key]), key
    assert math.isfinite(result.test_loss)
    assert len(caplog.records) == 1 and "boom-8 diverged in epoch 1" in caplog.text and "\n" not in caplog.messages[0]


def test_divergence_restores_the_best_epoch() -> None:
    def poison(row: dict) -> None:  # blow up the weights after epoch 1, so epoch 2 diverges
        if row["epoch"] == 1:
            with torch.no_grad():
                model.fc.weight.fill_(float("inf"))

    model = small_net()
    snapshots: list[dict] = []
    result = fit(
        model,
        texture_data(64, 0),
        texture_data(32, 1),
        quick_config(epochs=3),
        PLAIN,
        on_epoch=lambda row: (snapshots.append({k: v.clone() for k, v in model.state_dict().items()}), poison(row)),
    )
    assert result.diverged_epoch == 2 and result.best_epoch == 1 and len(result.history) == 1
    assert result.test_acc == result.history[0]["test_acc"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[0][key]), key


def test_small_crop_epochs_train_on_windows_and_evaluate_whole_images() -> None:
    """Progressive resizing: the first small_crop_epochs see small_crop_size windows, later epochs and every
    evaluation the whole 16x16 images; the run stays deterministic and still learns."""
    seen: list[tuple[bool, int]] = []
    model = small_net()
    model.register_forward_pre_hook(lambda module, args: seen.append((module.training, args[0].shape[-1])))
    cfg = quick_config(epochs=3, small_crop_epochs=2, small_crop_size=10, lr=0.1)
    history: list[dict] = []
    result = fit(model, texture_data(128, 0), texture_data(64, 1), cfg, PLAIN, on_epoch=history.append)
    steps = 128 // 32
    train_sizes = [size for training, size in seen if training]
    assert train_sizes == [10] * (2 * steps) + [16] * steps
    assert {size for training, size in seen if not training} == {16}
    assert result.test_acc > 0.5  # 4 classes: chance is 0.25
    again = fit(small_net(), texture_data(128, 0), texture_data(64, 1), cfg, PLAIN)
    assert without_timing(again.history) == without_timing(result.history)


def test_small_crops_need_class_labels_and_a_window_smaller_than_the_images() -> None:
    train = texture_data(64, 0)
    with pytest.raises(UserError, match=r"small_crop_size=16 is not smaller than the 16x16 training images"):
        fit(small_net(), train, train, quick_config(small_crop_epochs=1, small_crop_size=16), PLAIN)
    masks = (train[0][:, 0] > 127).long()
    with pytest.raises(UserError, match="small_crop_epochs=1 crops the images only: it is for classifiers"):
        fit(nn.Conv2d(3, 2, 1), (train[0], masks), (train[0], masks), quick_config(small_crop_epochs=1), PLAIN)


def test_fit_rejects_bad_inputs() -> None:
    train = texture_data(16, 0)
    with pytest.raises(UserError, match="batch_size=32 is larger than the 16"):
        fit(small_net(), train, train, quick_config(), PLAIN)
    with pytest.raises(UserError, match="test split is empty"):
        fit(small_net(), train, (train[0][:0], train[1][:0]), quick_config(batch_size=8), PLAIN)
    model = small_net().requires_grad_(False)
    with pytest.raises(UserError, match="frozen has no trainable parameters"):
        fit(model, train, train, quick_config(batch_size=8), PLAIN, name="frozen")


# --------------------------------------------------------------------------------------------------
# Recipe levers: mixed precision, label smoothing, weight average, flip at test time, weight decay groups


class ZeroGradNet(nn.Module):
    """Logits that do not depend on the weights (multiplied by 0): every gradient is 0, so an SGD step
    without momentum only applies weight decay, ``p <- p * (1 - lr * wd)``, which the tests can predict."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 4)
        nn.init.uniform_(self.bn.weight, 0.5, 1.5)
        nn.init.uniform_(self.bn.bias, -0.5, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x)).mean((2, 3))) * 0.0


def decay_only(**overrides) -> TrainConfig:
    settings = dict(epochs=1, batch_size=16, lr=0.5, momentum=0.0, nesterov=False, weight_decay=0.1,
                    schedule="constant", amp=False)
    return quick_config(**{**settings, **overrides})


@pytest.mark.parametrize("decay_bn_bias", [True, False])
def test_decay_bn_bias_false_exempts_bn_and_biases_from_weight_decay(decay_bn_bias: bool) -> None:
    model = ZeroGradNet()
    before = {k: v.clone() for k, v in model.named_parameters()}
    fit(model, texture_data(64, 0), texture_data(16, 1), decay_only(decay_bn_bias=decay_bn_bias), PLAIN)
    shrink = (1 - 0.5 * 0.1) ** 4  # 64 images / batch 16 = 4 steps
    for name, value in model.named_parameters():
        decayed = decay_bn_bias or value.ndim >= 2
        torch.testing.assert_close(value, before[name] * (shrink if decayed else 1.0), msg=name)


def test_weight_average_is_what_is_evaluated_and_returned() -> None:
    """EMA of the weights with decay d = exp(-1 / (ema_epochs * steps)): the first update copies, then
    ema <- d * ema + (1 - d) * p after every step; the model returns holding the average."""
    model = ZeroGradNet()
    start = model.conv.weight.detach().clone()
    cfg = decay_only(ema_epochs=0.5, epochs=2)
    fit(model, texture_data(64, 0), texture_data(16, 1), cfg, PLAIN)
    decay, shrink = math.exp(-1 / (0.5 * 4)), 1 - 0.5 * 0.1
    ema = start * shrink
    for step in range(2, 9):  # 2 epochs x 4 steps
        ema = decay * ema + (1 - decay) * start * shrink**step
    torch.testing.assert_close(model.conv.weight, ema)
    assert not torch.allclose(model.conv.weight, start * shrink**8)  # not the raw weights
    assert model.bn.num_batches_tracked.item() == 8  # a counter, not an average of counters


def test_eval_flip_averages_the_logits_of_each_image_and_its_mirror() -> None:
    model, (images, labels) = small_net(), texture_data(40, 3)
    with torch.no_grad():
        logits = (predict(model, images, PLAIN, 100, "cpu") + predict(model, images.flip(3), PLAIN, 100, "cpu")) / 2
    loss, acc = evaluate(model, (images, labels), PLAIN, 16, "cpu", flip=True)
    assert loss == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-5)
    assert acc == (logits.argmax(1) == labels).sum().item() / len(labels)
    assert evaluate(model, (images, labels), PLAIN, 16, "cpu") != (loss, acc)


def test_label_smoothing_changes_only_the_training_loss() -> None:
    train, test = texture_data(64, 0), texture_data(32, 1)
    plain = fit(small_net(), train, test, quick_config(epochs=1, lr=1e-6, amp=False), PLAIN)
    smooth = fit(small_net(), train, test, quick_config(epochs=1, lr=1e-6, amp=False, label_smoothing=0.5), PLAIN)
    # the same (hardly moved) weights: the training loss differs, the test loss is plain cross-entropy in both
    assert abs(smooth.history[0]["train_loss"] - plain.history[0]["train_loss"]) > 0.01
    assert smooth.test_loss == pytest.approx(plain.test_loss, rel=1e-4)


def test_amp_means_bf16_on_a_cpu_with_native_bf16_only(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setenv("CNNLAB_CPU_BF16", "1")
    assert amp_dtype(cpu, True) == torch.bfloat16 and amp_dtype(cpu, False) is None
    assert amp_dtype(cuda, True) == torch.float16
    monkeypatch.setenv("CNNLAB_CPU_BF16", "0")
    assert amp_dtype(cpu, True) is None


def test_bf16_training_is_deterministic_and_learns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_CPU_BF16", "1")  # emulated (slow) on CPUs without bf16, but still deterministic
    train, test = texture_data(256, seed=0), texture_data(100, seed=1)
    cfg = quick_config(epochs=2, ema_epochs=0.3, eval_flip=True, label_smoothing=0.1, decay_bn_bias=False,
                       schedule="linear", warmup_epochs=1)
    runs = []
    for _ in range(2):
        model = small_net()
        result = fit(model, train, test, cfg, make_prepare(MEAN, STD, True, True))
        runs.append((without_timing(result.history), model.state_dict()))
    assert runs[0][0] == runs[1][0] and result.test_acc > 0.6  # chance is 0.25
    for key, value in runs[0][1].items():
        assert torch.equal(value, runs[1][1][key]), key
