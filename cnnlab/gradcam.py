"""Grad-CAM (Selvaraju et al., 2017, "Grad-CAM: Visual Explanations from Deep Networks").

For a target class ``c`` with raw (pre-softmax) logit ``y_c`` and a layer with output ``A`` of shape
``[C, h, w]``::

    alpha_k = mean_{i,j} d y_c / d A_k[i, j]              (global-average-pooled gradients)
    L_c     = ReLU(sum_k alpha_k * A_k)                   (at the layer's resolution h x w)

``L_c`` is then upsampled bilinearly (``align_corners=False``) to the input size and min-max
normalised per image to ``[0, 1]``; a constant map becomes all zeros.

The whole batch takes one forward and one backward pass (the selected logits are summed; in eval
mode the images do not interact, so each image's gradient is its own). The gradient is taken with
:func:`torch.autograd.grad` with respect to the captured activation only, so no parameter's
``.grad`` is touched, and the model's train/eval flags are restored afterwards.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.device import eval_mode, model_device
from cnnlab.errors import UserError

ClassSpec = int | Sequence[int] | torch.Tensor | None

_MAX_LISTED_NAMES = 12


class GradCamResult(NamedTuple):
    """Grad-CAM maps with the class each was computed for and the model's probability of it (all on CPU)."""

    maps: torch.Tensor  # float32 [N, H, W] in [0, 1]
    classes: torch.Tensor  # int64 [N], the target classes
    probs: torch.Tensor  # float32 [N], softmax probability of the target class


# --------------------------------------------------------------------------------------------------
# Model helpers


def resolve_layer(model: nn.Module, layer: nn.Module | str) -> tuple[str, nn.Module]:
    """Return ``(dotted name, module)`` for a submodule given as a module or as its name in ``named_modules()``."""
    modules = dict(model.named_modules())
    if isinstance(layer, str):
        if layer in modules:
            return layer, modules[layer]
        names = [name for name in modules if name]
        close = difflib.get_close_matches(layer, names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        listed = ", ".join(names[:_MAX_LISTED_NAMES])
        more = f", ... (+{len(names) - _MAX_LISTED_NAMES} more)" if len(names) > _MAX_LISTED_NAMES else ""
        raise UserError(
            f"grad-cam layer {layer!r} is not a module of {type(model).__name__}: {hint}"
            f"use a name from named_modules(): {listed}{more}"
        )
    for name, module in modules.items():
        if module is layer:
            return name, module
    raise UserError(
        f"grad-cam layer {type(layer).__name__} is not a submodule of {type(model).__name__}: "
        "pass one of the model's own modules or its dotted name"
    )


def resolve_classes(classes: ClassSpec, logits: torch.Tensor) -> torch.Tensor:
    """Turn a class spec into int64 ``[N]`` on the logits' device.

    ``None`` -> each row's argmax; an ``int`` -> that class for every row; a sequence or tensor ->
    one class per row (length must be ``N``, values in ``[0, num_classes)``).
    """
    n, num_classes = logits.shape
    if classes is None:
        return logits.argmax(dim=1)
    if isinstance(classes, bool):
        raise UserError(f"class {classes!r} is a bool: give a class index, a list of N indices, or None")
    if isinstance(classes, (int, np.integer)):
        target = torch.full((n,), int(classes), dtype=torch.int64)
    else:
        target = torch.as_tensor(classes)
        if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
            raise UserError(f"classes must be integer class indices, got dtype {target.dtype}: convert with .long()")
        if target.ndim == 0:
            target = target.expand(n)
        if target.ndim != 1 or target.shape[0] != n:
            raise UserError(
                f"classes has shape {tuple(target.shape)} but there are {n} images: give one class per image, "
                "a single int, or None for the predicted class"
            )
    bad = (target < 0) | (target >= num_classes)
    if bool(bad.any()):
        value = int(target[bad][0])
        raise UserError(
            f"class {value} is out of range for a model with {num_classes} classes: use 0..{num_classes - 1}"
        )
    return target.to(device=logits.device, dtype=torch.int64)


# --------------------------------------------------------------------------------------------------
# Grad-CAM


class ActivationCapture:
    """Context manager recording a module's output on each forward call; the hook is always removed on exit.

    The hook stores the output as a fresh leaf tensor that requires grad and hands an identity copy
    of it to the rest of the network. So ``torch.autograd.grad(score, capture.outputs[0])`` works
    even for frozen models, the backward pass stops at this layer, and in-place ops downstream (e.g.
    ``ReLU(inplace=True)``) cannot overwrite the recorded values.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.outputs: list[object] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _hook(self, module: nn.Module, inputs: tuple, output: object) -> object:
        if not isinstance(output, torch.Tensor) or not output.is_floating_point():
            self.outputs.append(output)
            return None
        leaf = output.detach().requires_grad_(True)
        self.outputs.append(leaf)
        return leaf.clone()

    def __enter__(self) -> ActivationCapture:
        self.outputs = []
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


def _single_activation(capture: ActivationCapture, name: str) -> torch.Tensor:
    """The one 4-D activation the layer produced, or a UserError saying why there is not exactly one."""
    runs = len(capture.outputs)
    if runs != 1:
        why = "never runs in the forward pass" if runs == 0 else (
            f"runs {runs} times per forward pass (a shared module such as one ReLU reused by several blocks)"
        )
        raise UserError(f"grad-cam layer {name!r} {why}: pick a module that runs exactly once, e.g. a conv or a block")
    out = capture.outputs[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 4 or not out.is_floating_point():
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(
            f"grad-cam layer {name!r} outputs {shape}, not a float feature map [N, C, h, w]: "
            "pick a convolutional layer or block"
        )
    return out


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each ``[H, W]`` map of ``[N, H, W]`` to ``[0, 1]``; a constant map becomes zeros."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values[:, None, None]
    span = flat.max(dim=1).values[:, None, None] - low
    scaled = (maps - low) / span.clamp_min(torch.finfo(maps.dtype).tiny)
    return torch.where(span > 0, scaled, torch.zeros_like(maps))


def grad_cam_with_scores(
    model: nn.Module, layer: nn.Module | str, images: torch.Tensor, classes: ClassSpec = None
) -> GradCamResult:
    """Grad-CAM maps of normalised float ``images [N, C, H, W]`` at ``layer``, with target classes and probabilities.

    ``classes``: ``None`` -> the predicted class of each image, an ``int`` -> that class for every
    image, a sequence/tensor of ``N`` ints -> one class per image. ``layer`` is a submodule or its
    dotted name (``"layer3.2"``). Computed in eval mode on the model's device; results are on CPU.
    """
    name, module = resolve_layer(model, layer)
    if images.ndim != 4 or not images.is_floating_point():
        raise UserError(
            f"grad-cam needs normalised float images [N, C, H, W], got {images.dtype} {tuple(images.shape)}: "
            "convert uint8 images with the dataset's normalisation first"
        )
    images = images.to(model_device(model))
    with eval_mode(model), torch.enable_grad(), ActivationCapture(module) as capture:
        logits = model(images)
        activation = _single_activation(capture, name)
        if logits.ndim != 2 or logits.shape[0] != images.shape[0]:
            raise UserError(
                f"grad-cam needs a classifier returning logits [N, num_classes], got {tuple(logits.shape)}: "
                "use a classification model"
            )
        target = resolve_classes(classes, logits)
        score = logits.gather(1, target[:, None]).sum()
        (grad,) = torch.autograd.grad(score, activation, allow_unused=True)
    if grad is None:
        raise UserError(f"the logits do not depend on grad-cam layer {name!r}: pick a layer on the path to the output")
    with torch.no_grad():
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((alpha * activation).sum(dim=1, keepdim=True))
        cam = F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)
        maps = normalize_maps(cam[:, 0])
        probs = logits.detach().softmax(dim=1).gather(1, target[:, None])[:, 0]
    return GradCamResult(maps.float().cpu(), target.cpu(), probs.float().cpu())


def grad_cam(model: nn.Module, layer: nn.Module | str, images: torch.Tensor, classes: ClassSpec = None) -> torch.Tensor:
    """Grad-CAM maps ``[N, H, W]`` in ``[0, 1]`` (CPU); see :func:`grad_cam_with_scores`."""
    return grad_cam_with_scores(model, layer, images, classes).maps


# --------------------------------------------------------------------------------------------------
# Visualisation


def overlay(
    image_uint8_hwc: np.ndarray,
    heatmap: np.ndarray | torch.Tensor,
    alpha: float = 0.5,
    colormap: int = cv2.COLORMAP_JET,
) -> np.ndarray:
    """Blend a heatmap ``[H, W]`` in ``[0, 1]`` over a uint8 RGB image ``[H, W, 3]`` (or grey ``[H, W(, 1)]``).

    Returns uint8 RGB ``[H, W, 3]`` = ``(1 - alpha) * image + alpha * colormap(heatmap)``. OpenCV's
    colormaps are BGR; the result is converted to RGB.
    """
    image = np.asarray(image_uint8_hwc)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise UserError(f"overlay needs a uint8 image [H, W, 3] or [H, W], got {image.dtype} {image.shape}")
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2)
    heat = heatmap.detach().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap)
    if heat.shape != image.shape[:2]:
        raise UserError(f"heatmap shape {heat.shape} does not match image size {image.shape[:2]}: upsample it first")
    if not np.isfinite(heat).all():
        raise UserError("heatmap contains NaN or inf: normalise it to [0, 1] first")
    if not 0.0 <= alpha <= 1.0:
        raise UserError(f"overlay alpha {alpha} is outside [0, 1]: use e.g. 0.5")
    heat_u8 = np.round(np.clip(heat, 0.0, 1.0) * 255.0).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(heat_u8, colormap), cv2.COLOR_BGR2RGB)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colour.astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)
