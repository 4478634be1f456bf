"""DVC stage ``gradcam@<depth>-<variant>-<seed>``: where do the plain and the residual classifier look?

    python stages/gradcam.py --depth 56 --variant relu-bn --seed 0 [--device cuda]

Explains the trained ``plain-<depth>-<variant>-<seed>`` and ``residual-<depth>-<variant>-<seed>`` classifiers
(``--seed``: their training seed, an entry of ``classifier.seeds``) with
Grad-CAM at the module ``gradcam.layer`` (null: the last stage's output, ``layer3`` of a 6n+2 net and ``layer4``
of ResNet-18 at depth 18), always for the
class each model predicts. Reads ``data/cifar10``, ``models/classifier/{plain,residual}-<depth>-<variant>-<seed>.pt``
and params ``seed`` (which images are sampled), ``gradcam`` (and ``train_classifier``'s model keys, which built
the checkpoints). Writes, with ``<key> = <depth>-<variant>-<seed>``:

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

The evaluation and the figures' image selection are :mod:`cnnlab.gradcam_eval`.
"""

import argparse

import _env  # noqa: F401  (first: one-line error outside the project's environment)
import torch

from cnnlab.checkpoints import load_trained_classifier
from cnnlab.data.canonical import load_manifest, load_split
from cnnlab.device import add_device_argument, configure_threads, pick_device, seed_everything
from cnnlab.errors import UserError, run_cli
from cnnlab.families import model_label
from cnnlab.figures.gradcam import deletion_curves
from cnnlab.figures.style import save_figure
from cnnlab.gradcam import resolve_layer
from cnnlab.gradcam_eval import Classifier, deletion_table, evaluate_models, showcase
from cnnlab.io import atomic_path, write_json
from cnnlab.models.cifar import ARCHS
from cnnlab.models.classifiers import build_classifier, default_gradcam_layer
from cnnlab.params import load_params
from cnnlab.params.classifiers import trained_model_config
from cnnlab.params.sections import gradcam_params
from cnnlab.pipeline import classifier_key, gradcam_key, gradcam_metrics, gradcam_plots


def load_classifier(arch: str, depth: int, variant: str, seed: int, params: dict, classes: list[str],
                    device: torch.device) -> Classifier:
    """The checkpoint of ``train_classifier@<arch>-<depth>-<variant>-<seed>``, checked against params and data."""
    key = classifier_key(arch, depth, variant, seed)
    model = build_classifier({**trained_model_config(params, key), "num_classes": len(classes)})
    extra = load_trained_classifier(key, model, classes)
    return Classifier.frozen(arch, model_label(arch, depth), model, extra["train_mean"], extra["train_std"], device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depth", required=True, type=int)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seed", required=True, type=int, help="training seed of both classifiers")
    add_device_argument(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/cifar10")
    args = parser.parse_args()

    params = load_params(args.params)
    p = gradcam_params(params)
    key = gradcam_key(args.depth, args.variant, args.seed)
    threads = configure_threads()
    seed_everything(p.seed)
    device = pick_device(args.device)
    manifest = load_manifest(args.data)
    classes = list(manifest["classes"])
    test = load_split(args.data, "test")
    nets = [load_classifier(arch, args.depth, args.variant, args.seed, params, classes, device) for arch in ARCHS]
    layer = p.layer or default_gradcam_layer(nets[0].model.config)  # both nets are of one family
    try:
        resolve_layer(nets[0].model, layer)
    except UserError as err:
        raise UserError(f"params.yaml: gradcam.layer: {err}") from None
    class_index = p.class_index(classes)  # a bad class name fails before the long evaluation
    n = min(p.n_eval, len(test))
    print(f"gradcam@{key}: {n} test images ({manifest['source']} data), layer {layer}, {p.deletion_steps} "
          f"deletion steps, {device}, {threads} threads")

    where = f"depth {args.depth}, {args.variant}, seed {args.seed}"
    title = f"Grad-CAM at {layer} for the predicted class, {where}"
    figures = showcase(nets, layer, test, classes, class_index, p.k, title, device)
    result = evaluate_models(nets, layer, test, p, device)
    figures["deletion.png"] = deletion_curves(
        result.curves, result.labels, result.aucs,
        f"Deletion curves over {n} test images, {where}")

    out = gradcam_plots(key)
    for name, figure in figures.items():
        save_figure(figure, out / name)
    with atomic_path(out / "deletion.csv") as tmp:
        deletion_table(result.curves, result.labels, where).to_csv(
            tmp, index=False, float_format="%.6g")
    write_json(gradcam_metrics(key), result.metrics)


if __name__ == "__main__":
    run_cli(main)
