"""DVC stage ``train_fcn@<variant>``: FCN surgery on a trained MNIST classifier, trained to label every pixel.

    python stages/train_fcn.py <variant> [--device cuda]

A variant (``fcn.variants.<variant>``) names its ``encoder`` (``cnn`` | ``resnet18``), its ``decoder``
(``upsample`` | ``fcn8s``) and its ``target`` (``digits``: background + the ten digits, 11 classes; ``binary``:
digit vs background, the same masks with every digit class collapsed to 1). The stage loads the classifier of
``train_encoder@<encoder>`` (``models/encoder/<encoder>.pt``, which must match ``train_encoder.<encoder>.model``),
keeps its encoder and adds the decoder (:func:`cnnlab.models.segmenters.build_segmenter`), then trains on the
segmented train digits of ``data/segmented_mnist`` with the classifier's normalisation (the MNIST mean/std
stored in the checkpoint). Params: ``seed``, ``fcn.variants.<variant>``, ``train_encoder.<encoder>.model`` and
``train_fcn`` (``training``, updated by ``train_fcn.<variant>.training``; ``train_size``, ``class_weighting``,
``confusion_pixels``, ``preview``, and the variant's ``freeze_encoder``/``decoder_channels``).

Evaluated with :func:`cnnlab.segmentation_eval.segment` on the single-digit test split and on the multi-digit
canvases (per-digit accuracy over each canvas's digit instances; none for the binary target, which does not
name digits). Writes

- ``models/fcn/<variant>.pt``: weights; config ``{"fcn": FcnConfig, "encoder": <encoder config>,
  "encoder_family": <encoder>, "target": <target>}``;
- ``metrics/train_fcn/<variant>.json``: training summary, ``digits`` and ``canvases`` metrics (mean IoU over the
  target's classes, ``foreground_iou`` (digit vs background, every digit class merged: the one number every
  variant shares), pixel and digit accuracy);
- ``plots/train_fcn/<variant>/per_class_iou.csv``: IoU per class of the target (``class``, ``digits``,
  ``canvases``);
- ``plots/train_fcn/<variant>/confusion.png``: the exact pixel confusion matrix of the test digits,
  normalised per true class;
- ``plots/train_fcn/<variant>/confusion.csv`` (``actual``, ``predicted``) for DVC's ``confusion``
  template, which draws one row per sample. The test digits have millions of pixels, so the file holds a
  deterministic (seeded) sample of ``train_fcn.confusion_pixels`` of them, stratified by true class: an
  equal share per class (every pixel of a class with fewer), so that background, about 80% of all pixels,
  does not swamp the plot. Its counts therefore show each true class's row of the confusion matrix with
  equal weight, not how frequent the classes are;
- ``plots/train_fcn/<variant>/digits.png`` and ``canvases.png``: input / ground truth / prediction for
  seeded random test digits and canvases;
- ``dvclive/train_fcn/<variant>/``: per-epoch train/test loss, pixel accuracy and learning rate;
- ``metrics/timing/train_fcn/<variant>.json``: the wall-clock figures (every other output is byte-reproducible).

An interrupted run resumes at its last completed epoch (``.cnnlab-resume/``, see :mod:`cnnlab.resume`).
"""

import argparse
from dataclasses import fields
from pathlib import Path

import _env  # noqa: F401  (first: one-line error outside the project's environment)
import pandas as pd
import torch

from cnnlab import distributed
from cnnlab.augment import make_prepare
from cnnlab.checkpoints import CLASSES, count_parameters, encoder_hint, load_encoder_checkpoint, save_checkpoint
from cnnlab.data.canonical import Split, load_split
from cnnlab.data.segmentation import Canvases, target_masks
from cnnlab.data.sources import stratified_indices
from cnnlab.device import add_device_argument, configure_threads, pick_device, seed_everything
from cnnlab.errors import UserError, run_cli
from cnnlab.figures.segmentation import confusion_figure, segmentation_predictions
from cnnlab.figures.style import save_figure
from cnnlab.io import atomic_path, load_torch, write_json
from cnnlab.metrics.segmentation import class_weights, stratified_pixels
from cnnlab.models.encoders import build_classifier, encoder
from cnnlab.models.segmenters import build_segmenter
from cnnlab.params import load_params
from cnnlab.params.segmentation import FcnParams, fcn_params
from cnnlab.pipeline import (
    encoder_checkpoint,
    fcn_checkpoint,
    fcn_curves,
    fcn_metrics,
    fcn_plots,
    timing_metrics_path,
)
from cnnlab.resume import Resume
from cnnlab.segmentation_eval import segment, summary_line
from cnnlab.tracking import SEGMENTATION_CURVES, fit_with_curves, timing_metrics

SEGMENT_HINT = "run `dvc repro segment_mnist` first"


def load_segmented(folder: Path) -> tuple[Split, Split, Canvases]:
    """Train and test splits (with ``masks``) and the canvases written by ``segment_mnist``."""
    if not (folder / "manifest.json").exists():
        raise UserError(f"dataset {folder} is missing (no manifest.json): {SEGMENT_HINT}")
    train, test = load_split(folder, "train"), load_split(folder, "test")
    for name, split in (("train", train), ("test", test)):
        if "masks" not in split.extra:
            raise UserError(f"{folder / f'{name}.pt'} has no masks, it is not segment_mnist output: {SEGMENT_HINT}")
    canvases = load_torch(folder / "canvases.pt", what="canvas file", hint=SEGMENT_HINT)
    missing = [f.name for f in fields(Canvases) if f.name not in canvases]
    if missing:
        raise UserError(f"{folder / 'canvases.pt'} lacks {', '.join(missing)}: {SEGMENT_HINT}")
    return train, test, Canvases(**{f.name: canvases[f.name] for f in fields(Canvases)})


def encoder_normalisation(path: Path, hint: str) -> tuple[list[float], list[float]]:
    """The per-channel mean/std the classifier was trained with (``extra`` of its checkpoint)."""
    extra = load_torch(path, what="checkpoint", hint=hint).get("extra") or {}
    if "train_mean" not in extra or "train_std" not in extra:
        raise UserError(f"checkpoint {path} does not record its normalisation (train_mean/train_std): {hint}")
    return extra["train_mean"], extra["train_std"]


def write_confusion_csv(path: Path, actual: torch.Tensor, predicted: torch.Tensor, classes: list[str]) -> None:
    names = pd.Series(classes)
    table = pd.DataFrame({"actual": names[actual.numpy()].values, "predicted": names[predicted.numpy()].values})
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def fcn_checkpoint_config(p: FcnParams) -> dict:
    """What an FCN checkpoint was trained as: decoder config, encoder config, encoder family, target.

    The family is stored apart from the encoder config: the two families' configs share no key that says which
    one it is, and the target too, though ``num_classes`` implies it (2 or 11), so the file says what it holds.
    """
    return {"fcn": p.model.to_dict(), "encoder": p.encoder.to_dict(), "encoder_family": p.variant.encoder,
            "target": p.variant.target}


def train(p: FcnParams, encoder_path: Path, data: Path, device_name: str) -> None:
    """Everything the stage does, once the params are validated (see the module docstring)."""
    v = p.variant
    classifier = load_encoder_checkpoint(encoder_path, v.encoder, build_classifier(v.encoder, p.encoder))
    mean, std = encoder_normalisation(encoder_path, encoder_hint(v.encoder))
    train_split, test, canvases = load_segmented(data)
    if p.train_size is not None:
        gen = torch.Generator().manual_seed(p.seed)
        keep = stratified_indices(train_split.labels, p.train_size, gen, "train_fcn.train_size")
        train_split = train_split.subset(keep)
    threads = configure_threads()
    seed_everything(p.seed)
    device = pick_device(device_name)
    model = build_segmenter(v.encoder, classifier, p.model)
    prepare = make_prepare(mean, std, augment=False, channels_last=p.train.channels_last)
    # every mask in the target's labels, once, here: training, metrics, CSVs and figures all see the same
    train_masks, test_masks, canvas_masks = (target_masks(m, v.target) for m in
                                             (train_split.extra["masks"], test.extra["masks"], canvases.masks))
    classes = v.classes
    weights = class_weights(train_masks, p.model.num_classes, p.class_weighting)
    n_params = count_parameters(model)
    n_trainable = count_parameters(model, trainable_only=True)
    name = f"fcn-{v.name}"
    print(f"{name}: {encoder(v.encoder).label} encoder, {v.decoder} decoder, {v.target} target ({len(classes)} "
          f"classes); {n_params / 1e3:.0f}k parameters ({n_trainable / 1e3:.0f}k trainable), {len(train_split)} train "
          f"digits, {len(test)} test digits, {len(canvases.images)} canvases, {p.train.epochs} epochs, "
          f"{threads} CPU threads")

    resume = Resume.for_stage("train_fcn", v.name, p, [data, encoder_path])
    result = fit_with_curves(fcn_curves(v.name), model,
                             (train_split.images, train_masks.long()), (test.images, test_masks.long()), p.train,
                             prepare, curves=SEGMENTATION_CURVES, class_weights=weights, name=name,
                             **resume.fit_kwargs())
    if not distributed.is_main():  # under torchrun rank 0 evaluates and writes the outputs
        return

    batch = p.train.eval_batch_size
    digit_pred, digit_metrics, digit_confusion = segment(model, test.images, test_masks, None, prepare, batch, device,
                                                         v.target)
    canvas_pred, canvas_metrics, _ = segment(
        model, canvases.images, canvas_masks, canvases.instances, prepare, batch, device, v.target
    )
    summary = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.summary().items()}
    metrics = {
        "variant": v.name,
        "encoder": v.encoder,
        "decoder": v.decoder,
        "target": v.target,
        "params": n_params,
        "trainable_params": n_trainable,
        "train_images": len(train_split),
        "diverged": result.diverged_epoch is not None,
        "test_loss": summary["test_loss"],
        "best_epoch": summary["best_epoch"],
        "best_test_pixel_accuracy": summary["best_test_acc"],
        "diverged_epoch": summary["diverged_epoch"],
        # per-class IoU goes to plots/train_fcn/<variant>/per_class_iou.csv: the metrics keep what people compare
        **{test_set: {k: v for k, v in m.items() if k != "per_class_iou"}
           for test_set, m in (("digits", digit_metrics), ("canvases", canvas_metrics))},
    }
    save_checkpoint(fcn_checkpoint(v.name), model, fcn_checkpoint_config(p),
                    {CLASSES: classes, "train_mean": mean, "train_std": std,
                     "class_weights": None if weights is None else weights.tolist(), "metrics": metrics})
    write_json(fcn_metrics(v.name), metrics)
    write_json(timing_metrics_path("train_fcn", v.name), timing_metrics(result))

    plots = fcn_plots(v.name)
    gen = torch.Generator().manual_seed(p.seed)
    actual, predicted = stratified_pixels(test_masks, digit_pred, p.confusion_pixels, len(classes), gen)
    write_confusion_csv(plots / "confusion.csv", actual, predicted, classes)
    with atomic_path(plots / "per_class_iou.csv") as tmp:
        pd.DataFrame({"class": classes, "digits": digit_metrics["per_class_iou"].values(),
                      "canvases": canvas_metrics["per_class_iou"].values()}).to_csv(tmp, index=False)
    save_figure(confusion_figure(digit_confusion, classes, f"FCN {v.name}: pixel confusion on the test digits"),
                plots / "confusion.png")
    for file_name, images, truth, pred, count, what, m in (
        ("digits.png", test.images, test_masks, digit_pred, p.preview_digits, "test digits", digit_metrics),
        ("canvases.png", canvases.images, canvas_masks, canvas_pred, p.preview_canvases, "canvases", canvas_metrics),
    ):
        pick = torch.randperm(len(images), generator=gen)[:count]
        title = f"FCN {v.name} on {what}: {summary_line(m)}"
        save_figure(segmentation_predictions(images[pick], truth[pick], pred[pick], classes, title),
                    plots / file_name)
    resume.clear()
    state = f"DIVERGED in epoch {result.diverged_epoch}" if metrics["diverged"] else "done"
    print(f"{name}: {state}, {result.train_seconds:.0f} s training; test digits: {summary_line(digit_metrics)}; "
          f"canvases: {summary_line(canvas_metrics)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", help="a name of fcn.variants, e.g. fcn8s or resnet18-binary")
    add_device_argument(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/segmented_mnist")
    parser.add_argument("--encoder", help="classifier checkpoint (default: models/encoder/<the variant's encoder>.pt, "
                                          "written by train_encoder@<encoder>)")
    args = parser.parse_args()
    p = fcn_params(load_params(args.params), args.variant, args.device)
    distributed.relaunch(p.nproc, p.train.batch_size, "train_fcn.nproc")  # returns at once if nproc is 1
    train(p, Path(args.encoder or encoder_checkpoint(p.variant.encoder)), Path(args.data), args.device)


if __name__ == "__main__":
    run_cli(main)
