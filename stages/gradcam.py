"""DVC stage ``gradcam@<depth>-<variant>``: where do the plain and the residual classifier look?

    python stages/gradcam.py --depth 56 --variant relu-bn [--device cuda]

Explains the trained ``plain-<depth>-<variant>`` and ``residual-<depth>-<variant>`` classifiers with
Grad-CAM at the module ``gradcam.layer`` (default ``layer3``, the last stage's output), always for the
class each model predicts. Reads ``data/cifar10``, ``models/classifier/{plain,residual}-<key>.pt`` and
params ``seed``, ``gradcam`` (and ``train_classifier``'s model keys, which built the checkpoints).
Writes, with ``<key> = <depth>-<variant>``:

- ``plots/gradcam/<key>/heatmaps.png``: the first test image of every class; rows: image, plain
  overlay, residual overlay;
- ``plots/gradcam/<key>/class.png``: the first ``gradcam.k`` test images of ``gradcam.class_name``
  (null = the dataset's class 3: "cat" in CIFAR-10), each with heatmap and overlay per model;
- ``metrics/gradcam/<key>.json``: per model, over the first ``gradcam.n_eval`` test images: accuracy,
  deletion AUC in Grad-CAM order and in random order (lower than random = the map finds the
  evidence) and, on data with object boxes (synthetic), pointing game and energy in box, with the
  mean box area as their chance level;
- ``plots/gradcam/<key>/deletion.csv`` and ``deletion.png``: the mean deletion curves (the CSV as a long
  table: model, panel, curve, fraction_removed, probability).
"""

import argparse
import time
from dataclasses import dataclass

import _env  # noqa: F401  (first: one-line error outside the project's environment)
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from cnnlab.augment import Prepare, make_prepare
from cnnlab.checkpoints import load_trained_classifier
from cnnlab.data.canonical import Split, load_manifest, load_split
from cnnlab.device import add_device_argument, configure_threads, pick_device, seed_everything
from cnnlab.errors import UserError, run_cli
from cnnlab.figures import CamRow, deletion_curves, gradcam_detail, gradcam_grid, prediction_caption, save_figure
from cnnlab.gradcam import grad_cam_with_scores, resolve_layer
from cnnlab.io import atomic_path, write_json
from cnnlab.metrics.localization import box_mask, deletion_auc, deletion_curve, energy_in_box, pointing_game
from cnnlab.models.cifar import ARCHS, CifarNetConfig, build_cifar_net
from cnnlab.params import load_params
from cnnlab.params.classifiers import trained_model_config
from cnnlab.params.sections import GradCamParams, gradcam_params
from cnnlab.pipeline import classifier_key, gradcam_key, gradcam_metrics, gradcam_plots

#: deletion order -> its metric (the names of :func:`cnnlab.metrics.localization.localization_summary`)
AUC_KEYS = {"heatmap": "deletion_auc", "random": "deletion_auc_random"}
ORDER_NAMES = {"heatmap": "Grad-CAM order", "random": "random order"}


def deletion_table(frame: pd.DataFrame, labels: dict[str, str], panel: str) -> pd.DataFrame:
    """The mean deletion curves as one long table (one row per curve and step; ``model`` names the net and
    the deletion order, ``curve`` the column of ``frame``): the data of the DVC plot."""
    long = frame.melt(id_vars="fraction_removed", var_name="curve", value_name="probability")
    arch_order = long["curve"].str.rsplit("_", n=1)
    long["model"] = [f"{labels[arch]}, {ORDER_NAMES[order]}" for arch, order in arch_order]
    long["panel"] = panel
    return long[["model", "panel", "curve", "fraction_removed", "probability"]]


@dataclass
class Classifier:
    """A trained classifier ready for Grad-CAM: eval mode, frozen, on the device, with its normalisation."""

    arch: str
    label: str  # "plain-56"
    model: nn.Module
    prepare: Prepare


def load_classifier(arch: str, depth: int, variant: str, params: dict, classes: list[str],
                    device: torch.device) -> Classifier:
    """The checkpoint of ``train_classifier@<arch>-<depth>-<variant>``, checked against params and data."""
    key = classifier_key(arch, depth, variant)
    config = {**trained_model_config(params, key), "num_classes": len(classes)}
    model = build_cifar_net(CifarNetConfig.from_dict(config))
    extra = load_trained_classifier(key, model, classes)
    # Frozen weights: Grad-CAM differentiates only w.r.t. the captured activation, so no graph is
    # recorded below the explained layer. Channels-last convolutions are ~1.5x faster on CPUs.
    model.requires_grad_(False).eval().to(device=device, memory_format=torch.channels_last)
    prepare = make_prepare(extra["train_mean"], extra["train_std"], augment=False, channels_last=False)
    return Classifier(arch, f"{arch}-{depth}", model, prepare)


def evaluate(net: Classifier, layer: str, test: Split, p: GradCamParams, device: torch.device) -> tuple[dict, dict]:
    """Metrics over the first ``p.n_eval`` test images and the mean deletion curve per order.

    Works in chunks of ``p.batch_size`` images: one Grad-CAM pass, then ``deletion_steps + 1``
    forward passes per deletion order.
    """
    n = min(p.n_eval, len(test))
    gen = torch.Generator().manual_seed(p.seed)  # every model sees the same random deletion orders
    correct, hits, energy = [], [], []
    aucs: dict[str, list[torch.Tensor]] = {order: [] for order in AUC_KEYS}
    curve_sums = {order: torch.zeros(p.deletion_steps + 1, dtype=torch.float64) for order in AUC_KEYS}
    for start in range(0, n, p.batch_size):
        chunk = slice(start, min(start + p.batch_size, n))
        images = net.prepare(test.images[chunk].to(device))
        cam = grad_cam_with_scores(net.model, layer, images)
        correct.append(cam.classes == test.labels[chunk])
        if test.boxes is not None:
            hits.append(pointing_game(cam.maps, test.boxes[chunk]))
            energy.append(energy_in_box(cam.maps, test.boxes[chunk]))
        for order in AUC_KEYS:
            curves = deletion_curve(net.model, images, cam.maps, cam.classes, p.deletion_steps, order,
                                    generator=gen if order == "random" else None)
            aucs[order].append(deletion_auc(curves))
            curve_sums[order] += curves.double().sum(dim=0)
    metrics = {"accuracy": torch.cat(correct).float().mean()}
    if test.boxes is not None:
        metrics |= {"pointing_game": torch.cat(hits).float().mean(), "energy_in_box": torch.cat(energy).mean()}
    metrics |= {AUC_KEYS[order]: torch.cat(values).mean() for order, values in aucs.items()}
    mean_curves = {order: (total / n).numpy() for order, total in curve_sums.items()}
    return {name: round(float(value), 6) for name, value in metrics.items()}, mean_curves


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


def showcase(nets: list[Classifier], layer: str, test: Split, classes: list[str], p: GradCamParams, title: str,
             device: torch.device) -> dict[str, Figure]:
    """``heatmaps.png`` (the first test image of every class) and ``class.png`` (the first k of one class)."""
    class_index = p.class_index(classes)
    of_class, first = showcase_indices(test.labels, class_index, p.k, classes)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", required=True, type=int)
    parser.add_argument("--variant", required=True)
    add_device_argument(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/cifar10")
    args = parser.parse_args()

    params = load_params(args.params)
    p = gradcam_params(params)
    key = gradcam_key(args.depth, args.variant)
    threads = configure_threads()
    seed_everything(p.seed)
    device = pick_device(args.device)
    manifest = load_manifest(args.data)
    classes = list(manifest["classes"])
    test = load_split(args.data, "test")
    nets = [load_classifier(arch, args.depth, args.variant, params, classes, device) for arch in ARCHS]
    try:
        resolve_layer(nets[0].model, p.layer)
    except UserError as err:
        raise UserError(f"params.yaml: gradcam.layer: {err}") from None
    p.class_index(classes)  # a bad class name fails before the long evaluation
    n = min(p.n_eval, len(test))
    print(f"gradcam@{key}: {n} test images ({manifest['source']} data), layer {p.layer}, {p.deletion_steps} "
          f"deletion steps, {device}, {threads} threads")

    title = f"Grad-CAM at {p.layer} for the predicted class, depth {args.depth}, {args.variant}"
    figures = showcase(nets, p.layer, test, classes, p, title, device)
    metrics: dict = {"images": n}
    if test.boxes is not None:
        # the chance level of both box metrics: a uniform map's energy in box, a random peak's hit rate
        metrics["box_area_fraction"] = round(float(box_mask(test.boxes[:n], *test.images.shape[2:]).float().mean()), 6)
    curves = {"fraction_removed": np.linspace(0.0, 1.0, p.deletion_steps + 1)}
    for net in nets:
        started = time.perf_counter()
        metrics[net.arch], mean_curves = evaluate(net, p.layer, test, p, device)
        curves |= {f"{net.arch}_{order}": curve for order, curve in mean_curves.items()}
        print(f"{net.label}: {metrics[net.arch]} ({time.perf_counter() - started:.0f} s)")
    frame = pd.DataFrame(curves)
    aucs = {f"{net.arch}_{order}": metrics[net.arch][name] for net in nets for order, name in AUC_KEYS.items()}
    labels = {net.arch: net.label for net in nets}
    figures["deletion.png"] = deletion_curves(
        frame, labels, aucs, f"Deletion curves over {n} test images, depth {args.depth}, {args.variant}")

    out = gradcam_plots(key)
    for name, figure in figures.items():
        save_figure(figure, out / name)
    with atomic_path(out / "deletion.csv") as tmp:
        deletion_table(frame, labels, f"depth {args.depth}, {args.variant}").to_csv(tmp, index=False, float_format="%.6g")
    write_json(gradcam_metrics(key), metrics)


if __name__ == "__main__":
    run_cli(main)
