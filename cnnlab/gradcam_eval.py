"""Grad-CAM over a test set: how faithful and how well placed are the maps of trained classifiers?

:func:`evaluate` runs one classifier over the first test images in chunks (accuracy, deletion AUC in
Grad-CAM and in random order, and, on data with object boxes, pointing game and energy in box);
:func:`evaluate_models` does it for the models compared (the same random deletion orders for each) and
collects the mean deletion curves. :func:`showcase` draws the heatmap figures and :func:`deletion_table`
turns the curves into the long table of the DVC plot. Checkpoints and params are the caller's business:
a :class:`Classifier` is built from a loaded model and its normalisation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnnlab.augment import Prepare, make_prepare
from cnnlab.data.canonical import Split
from cnnlab.device import memory_format_for
from cnnlab.errors import UserError
from cnnlab.figures.gradcam import CamRow, gradcam_detail, gradcam_grid, prediction_caption
from cnnlab.gradcam import grad_cam_with_scores
from cnnlab.metrics.localization import box_mask, deletion_auc, deletion_curve, energy_in_box, pointing_game

#: deletion order -> its metric (the names of :func:`cnnlab.metrics.localization.localization_summary`)
AUC_KEYS = {"heatmap": "deletion_auc", "random": "deletion_auc_random"}
ORDER_NAMES = {"heatmap": "Grad-CAM order", "random": "random order"}


@dataclass
class Classifier:
    """A trained classifier ready for Grad-CAM: eval mode, frozen, on the device, with its normalisation."""

    arch: str
    label: str  # "plain-56"
    model: nn.Module
    prepare: Prepare

    @classmethod
    def frozen(cls, arch: str, label: str, model: nn.Module, mean: list[float], std: list[float],
               device: torch.device) -> Classifier:
        """``model`` (trained on images normalised with ``mean``/``std``) frozen, in eval mode, on ``device``."""
        # Frozen weights: Grad-CAM differentiates only w.r.t. the captured activation, so no graph is
        # recorded below the explained layer. Channels-last convolutions are ~1.5x faster on CPUs.
        model.requires_grad_(False).eval().to(device=device, memory_format=memory_format_for(model, device, True))
        return cls(arch, label, model, make_prepare(mean, std, augment=False, channels_last=False))


class EvalSettings(Protocol):
    """How the test images are evaluated: these fields of the ``gradcam`` params
    (:class:`cnnlab.params.GradCamParams` has them)."""

    n_eval: int  # metrics over the first n_eval test images
    deletion_steps: int  # points of the deletion curve besides the intact image
    batch_size: int  # images per Grad-CAM pass (memory and speed only)
    seed: int  # the random deletion order


def evaluate(net: Classifier, layer: str, test: Split, s: EvalSettings,
             device: torch.device) -> tuple[dict, dict[str, np.ndarray]]:
    """Metrics over the first ``s.n_eval`` test images and the mean deletion curve per order.

    Works in chunks of ``s.batch_size`` images: one Grad-CAM pass, then ``deletion_steps + 1``
    forward passes per deletion order.
    """
    n = min(s.n_eval, len(test))
    gen = torch.Generator().manual_seed(s.seed)  # every model sees the same random deletion orders
    correct, hits, energy = [], [], []
    aucs: dict[str, list[torch.Tensor]] = {order: [] for order in AUC_KEYS}
    curve_sums = {order: torch.zeros(s.deletion_steps + 1, dtype=torch.float64) for order in AUC_KEYS}
    for start in range(0, n, s.batch_size):
        chunk = slice(start, min(start + s.batch_size, n))
        images = net.prepare(test.images[chunk].to(device))
        cam = grad_cam_with_scores(net.model, layer, images)
        correct.append(cam.classes == test.labels[chunk])
        if test.boxes is not None:
            hits.append(pointing_game(cam.maps, test.boxes[chunk]))
            energy.append(energy_in_box(cam.maps, test.boxes[chunk]))
        for order in AUC_KEYS:
            curves = deletion_curve(net.model, images, cam.maps, cam.classes, s.deletion_steps, order,
                                    generator=gen if order == "random" else None)
            aucs[order].append(deletion_auc(curves))
            curve_sums[order] += curves.double().sum(dim=0)
    metrics = {"accuracy": torch.cat(correct).float().mean()}
    if test.boxes is not None:
        metrics |= {"pointing_game": torch.cat(hits).float().mean(), "energy_in_box": torch.cat(energy).mean()}
    metrics |= {AUC_KEYS[order]: torch.cat(values).mean() for order, values in aucs.items()}
    mean_curves = {order: (total / n).numpy() for order, total in curve_sums.items()}
    return {name: round(float(value), 6) for name, value in metrics.items()}, mean_curves


@dataclass
class Evaluation:
    """:func:`evaluate_models`' result: the metrics JSON and the mean deletion curves of every model."""

    metrics: dict  # {"images": n, ["box_area_fraction": ...,] <arch>: {metric: value}}
    curves: pd.DataFrame  # fraction_removed, then <arch>_heatmap / <arch>_random
    labels: dict[str, str]  # arch -> "plain-56"

    @property
    def aucs(self) -> dict[str, float]:
        """Each curve column -> its mean deletion AUC."""
        return {f"{arch}_{order}": self.metrics[arch][name] for arch in self.labels for order, name in AUC_KEYS.items()}


def evaluate_models(nets: list[Classifier], layer: str, test: Split, s: EvalSettings, device: torch.device,
                    log: Callable[[str], None] = print) -> Evaluation:
    """:func:`evaluate` for each of ``nets``; on data with boxes, also the mean box area, the chance level of
    both box metrics (a uniform map's energy in box, a random peak's hit rate)."""
    n = min(s.n_eval, len(test))
    metrics: dict = {"images": n}
    if test.boxes is not None:
        metrics["box_area_fraction"] = round(float(box_mask(test.boxes[:n], *test.images.shape[2:]).float().mean()), 6)
    curves = {"fraction_removed": np.linspace(0.0, 1.0, s.deletion_steps + 1)}
    for net in nets:
        started = time.perf_counter()
        metrics[net.arch], mean_curves = evaluate(net, layer, test, s, device)
        curves |= {f"{net.arch}_{order}": curve for order, curve in mean_curves.items()}
        log(f"{net.label}: {metrics[net.arch]} ({time.perf_counter() - started:.0f} s)")
    return Evaluation(metrics, pd.DataFrame(curves), {net.arch: net.label for net in nets})


def deletion_table(frame: pd.DataFrame, labels: dict[str, str], panel: str) -> pd.DataFrame:
    """The mean deletion curves as one long table (one row per curve and step; ``model`` names the net and
    the deletion order, ``curve`` the column of ``frame``): the data of the DVC plot."""
    long = frame.melt(id_vars="fraction_removed", var_name="curve", value_name="probability")
    arch_order = long["curve"].str.rsplit("_", n=1)
    long["model"] = [f"{labels[arch]}, {ORDER_NAMES[order]}" for arch, order in arch_order]
    long["panel"] = panel
    return long[["model", "panel", "curve", "fraction_removed", "probability"]]


def showcase_indices(labels: torch.Tensor, class_index: int, k: int, classes: list[str]) -> tuple[list[int], list[int]]:
    """The first ``k`` test images of ``class_index``, and the first test image of every class present."""
    of_class = torch.nonzero(labels == class_index).flatten()[:k].tolist()
    if not of_class:
        raise UserError(f"the test split has no image of class {classes[class_index]!r}: raise "
                        "data.cifar10.test_size or choose another gradcam.class_name")
    first = [int(torch.nonzero(labels == c).flatten()[0]) for c in range(len(classes)) if bool((labels == c).any())]
    return of_class, first


def figure_rows(nets: list[Classifier], layer: str, test: Split, index: list[int], classes: list[str],
                device: torch.device) -> list[CamRow]:
    """Each model's Grad-CAM maps of the test images ``index``, captioned with prediction and confidence."""
    rows = []
    for net in nets:
        cam = grad_cam_with_scores(net.model, layer, net.prepare(test.images[index].to(device)))
        captions = [prediction_caption(classes[c], float(prob), c == t)
                    for c, prob, t in zip(cam.classes.tolist(), cam.probs, test.labels[index].tolist(), strict=True)]
        rows.append(CamRow(net.label, net.arch, cam.maps.numpy(), captions))
    return rows


def showcase(nets: list[Classifier], layer: str, test: Split, classes: list[str], class_index: int, k: int,
             title: str, device: torch.device) -> dict[str, Figure]:
    """``heatmaps.png`` (the first test image of every class) and ``class.png`` (the first ``k`` of
    ``class_index``)."""
    of_class, first = showcase_indices(test.labels, class_index, k, classes)
    figures = {}
    for name, draw, index, what in (
        ("heatmaps.png", gradcam_grid, first, "the first test image of each class"),
        ("class.png", gradcam_detail, of_class, f"test images of class {classes[class_index]!r}"),
    ):
        images = test.images[index].permute(0, 2, 3, 1).numpy()
        boxes = None if test.boxes is None else test.boxes[index].numpy()
        captions = [f"true: {classes[label]}" for label in test.labels[index].tolist()]
        rows = figure_rows(nets, layer, test, index, classes, device)
        figures[name] = draw(images, captions, rows, f"{title}: {what}", boxes)
    return figures
