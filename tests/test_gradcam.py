"""Grad-CAM against its closed form on CAM-style models, batching, class specs, hygiene and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import UserError
from cnnlab.gradcam import grad_cam, grad_cam_with_scores, normalize_maps, overlay

NUM_CLASSES = 5


def cam_model(relu: bool = False, inplace: bool = False) -> nn.Sequential:
    """conv (stride 2) -> [ReLU] -> global average pooling -> linear: the model CAM was defined for."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 6, 3, stride=2, padding=1)]
    if relu:
        layers.append(nn.ReLU(inplace=inplace))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, NUM_CLASSES)]
    return nn.Sequential(*layers)


def small_cnn() -> nn.Sequential:
    """A BatchNorm CNN: batch statistics would mix images in train mode, so this checks eval-mode use."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, NUM_CLASSES),
    )


def images(n: int = 4, size: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(2))


def expected_cam(weights: torch.Tensor, activation: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised, upsampled ReLU(sum_k w_k A_k) computed independently of the module under test."""
    cam = F.relu(torch.einsum("nk,nkhw->nhw", weights, activation))[:, None]
    cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    flat = cam.flatten(1)
    low, high = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return torch.where(high > low, (cam - low) / (high - low), torch.zeros_like(cam))


@pytest.mark.parametrize("relu", [False, True])
def test_matches_closed_form_cam(relu: bool) -> None:
    # For A -> GAP -> linear, d y_c / d A_k[i,j] = w_ck / (h w), so Grad-CAM = normalised ReLU(CAM).
    model = cam_model(relu)
    x = images()
    layer = "1" if relu else "0"
    classes = torch.tensor([0, 1, 2, 4])
    with torch.no_grad():
        activation = model[: int(layer) + 1](x)
    assert activation.shape[-2:] == (4, 4)  # upsampling is really exercised
    weights = model[-1].weight[classes].detach()
    maps = grad_cam(model, layer, x, classes)
    assert maps.shape == (4, 8, 8) and maps.dtype == torch.float32
    torch.testing.assert_close(maps, expected_cam(weights, activation, 8), atol=1e-5, rtol=0)
    assert maps.amin() >= 0 and maps.amax() <= 1


def test_inplace_relu_after_layer_does_not_corrupt_activation() -> None:
    # Layer = conv followed by ReLU(inplace): d y_c / d A_k = w_ck / (h w) * [A_k > 0] on the *pre*-ReLU A.
    model = cam_model(relu=True, inplace=True)
    x = images()
    with torch.no_grad():
        pre = model[0](x)
    hw = pre.shape[2] * pre.shape[3]
    classes = torch.tensor([3, 3, 1, 0])
    alpha = model[-1].weight[classes].detach()[:, :, None, None] * (pre > 0).float() / hw
    expected = expected_cam(alpha.sum(dim=(2, 3)), pre, 8)
    torch.testing.assert_close(grad_cam(model, model[0], x, classes), expected, atol=1e-5, rtol=0)


def test_batch_equals_one_at_a_time_and_default_is_prediction() -> None:
    model = small_cnn()
    x = images(5)
    result = grad_cam_with_scores(model, "3", x)
    with torch.no_grad():
        logits = model.eval()(x)
    torch.testing.assert_close(result.classes, logits.argmax(1))
    torch.testing.assert_close(result.probs, logits.softmax(1).amax(1))
    single = torch.cat([grad_cam(model, "3", x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(result.maps, single, atol=1e-5, rtol=0)


def test_int_sequence_and_tensor_class_specs_agree() -> None:
    model = small_cnn()
    x = images(3)
    as_int = grad_cam_with_scores(model, "3", x, 2)
    assert as_int.classes.tolist() == [2, 2, 2]
    torch.testing.assert_close(as_int.maps, grad_cam(model, "3", x, [2, 2, 2]))
    torch.testing.assert_close(as_int.maps, grad_cam(model, "3", x, torch.tensor([2, 2, 2])))
    mixed = grad_cam(model, "3", x, [0, 4, 1])
    for i, c in enumerate([0, 4, 1]):
        torch.testing.assert_close(mixed[i], grad_cam(model, "3", x[i : i + 1], c)[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        ([0, 1], "classes has shape (2,) but there are 3 images"),
        (NUM_CLASSES, f"class {NUM_CLASSES} is out of range"),
        ([0, -1, 2], "class -1 is out of range"),
        ([0.0, 1.0, 2.0], "integer class indices"),
        (True, "is a bool"),
    ],
)
def test_bad_classes_are_user_errors_and_hooks_are_removed(classes: object, message: str) -> None:
    model = small_cnn()
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grad_cam(model, "3", images(3), classes)
    assert all(not m._forward_hooks for m in model.modules())


def test_constant_layer_output_gives_zero_maps_not_nan() -> None:
    model = cam_model()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(0.7)
    maps = grad_cam(model, "0", images(), 1)
    assert not torch.isnan(maps).any() and torch.equal(maps, torch.zeros_like(maps))
    torch.testing.assert_close(normalize_maps(torch.full((2, 3, 3), 5.0)), torch.zeros(2, 3, 3))


class Exploding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_hooks_removed_when_forward_raises() -> None:
    model = nn.Sequential(nn.Conv2d(3, 2, 3), Exploding())
    with pytest.raises(RuntimeError, match="boom"):
        grad_cam(model, "0", images(2))
    assert not model[0]._forward_hooks


def test_mode_and_parameter_grads_are_left_as_they_were() -> None:
    model = small_cnn().train()
    model[1].eval()  # a mixed state must survive too
    conv = model[0].weight
    conv.grad = torch.full_like(conv, 3.0)
    grad_object = conv.grad
    grad_cam(model, "3", images(3))
    assert model.training and not model[1].training and model[3].training
    assert conv.grad is grad_object and torch.equal(conv.grad, torch.full_like(conv, 3.0))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "0.weight")


def test_works_for_frozen_models_and_under_no_grad() -> None:
    model = small_cnn()
    reference = grad_cam(model, "3", images(2))
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        torch.testing.assert_close(grad_cam(model, "3", images(2)), reference)


def test_unknown_layer_name_lists_available_names() -> None:
    model = nn.Sequential(*[nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()) for _ in range(8)])
    with pytest.raises(UserError) as err:
        grad_cam(model, "3.O", images(1))
    text = str(err.value)
    assert "'3.O'" in text and "did you mean" in text and "3.0" in text
    assert "0, 0.0, 0.1, 1" in text and "(+" in text and "more)" in text  # listed, then truncated


def test_layer_module_must_belong_to_the_model() -> None:
    with pytest.raises(UserError, match="not a submodule"):
        grad_cam(cam_model(), nn.Conv2d(3, 6, 3), images(1))


def test_non_4d_layer_is_rejected() -> None:
    with pytest.raises(UserError, match=r"'3' outputs \(2, 5\), not a float feature map"):
        grad_cam(cam_model(), "3", images(2))  # the Linear


class SharedReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2, self.relu = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()
        self.head = nn.Linear(4, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.head(x.mean(dim=(2, 3)))


def test_module_run_twice_is_rejected() -> None:
    model = SharedReLU()
    with pytest.raises(UserError, match="'relu' runs 2 times per forward pass"):
        grad_cam(model, "relu", images(1))
    assert not model.relu._forward_hooks
    assert grad_cam(model, "conv2", images(1)).shape == (1, 8, 8)


def test_non_classifier_output_is_rejected() -> None:
    fcn = nn.Sequential(nn.Conv2d(3, NUM_CLASSES, 1))
    with pytest.raises(UserError, match=r"logits \[N, num_classes\], got \(1, 5, 8, 8\)"):
        grad_cam(fcn, "0", images(1))


def test_uint8_images_are_rejected() -> None:
    with pytest.raises(UserError, match="normalised float images"):
        grad_cam(cam_model(), "0", torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_overlay_blends_in_rgb() -> None:
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    heat = np.ones((4, 4), dtype=np.float32)
    assert np.array_equal(overlay(image, heat, alpha=0.0), image)
    hot = overlay(image, torch.from_numpy(heat), alpha=1.0)
    assert hot.dtype == np.uint8 and hot.shape == (4, 4, 3)
    assert tuple(hot[0, 0]) == (128, 0, 0)  # JET's top is dark red; OpenCV gives it as BGR (0, 0, 128)
    half = overlay(image[:, :, 0], np.zeros((4, 4)), alpha=0.5)  # grey input, JET bottom = dark blue
    assert tuple(half[0, 0]) == (50, 50, 114)
    with pytest.raises(UserError, match="does not match image size"):
        overlay(image, np.ones((3, 4)))
    with pytest.raises(UserError, match="alpha"):
        overlay(image, heat, alpha=1.5)
