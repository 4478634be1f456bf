"""DVC stage ``train_fcn@<variant>``: FCN surgery on the trained MNIST CNN, trained to label every pixel.

    python stages/train_fcn.py {upsample|fcn8s} [--device cuda]

Loads the CNN of ``train_mnist_cnn`` (``models/mnist_cnn.pt``, which must match ``train_mnist_cnn.model``),
keeps its encoder and adds the ``<variant>`` decoder (:func:`cnnlab.models.fcn.build_fcn`), then trains on
the segmented train digits of ``data/segmented_mnist`` with the CNN's normalisation (the MNIST mean/std
stored in the checkpoint). Params: ``seed``, ``train_mnist_cnn.model`` and ``train_fcn`` (``training``,
updated by ``train_fcn.<variant>.training``; ``train_size``, ``class_weighting``, ``confusion_pixels``,
``preview``, and the variant's ``freeze_encoder``/``decoder_channels``).

Evaluated with :func:`cnnlab.segmentation_eval.segment` on the single-digit test split and on
the multi-digit canvases (per-digit accuracy over each canvas's digit instances). Writes

- ``models/fcn/<variant>.pt``: weights; config ``{"fcn": FcnConfig, "encoder": MnistCnnConfig}``;
- ``metrics/train_fcn/<variant>.json``: training summary, ``digits`` and ``canvases`` metrics (mean IoU,
  foreground IoU, pixel and digit accuracy);
- ``plots/train_fcn/<variant>/per_class_iou.csv``: IoU per class (``class``, ``digits``, ``canvases``);
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
from cnnlab.checkpoints import CLASSES, ENCODER_HINT, count_parameters, load_encoder_checkpoint, save_checkpoint
from cnnlab.data.canonical import Split, load_split
from cnnlab.data.segmentation import SEGMENT_CLASSES, Canvases
from cnnlab.data.sources import stratified_indices
from cnnlab.device import add_device_argument, configure_threads, pick_device, seed_everything
from cnnlab.errors import UserError, run_cli
from cnnlab.figures.segmentation import confusion_figure, segmentation_predictions
from cnnlab.figures.style import save_figure
from cnnlab.io import atomic_path, load_torch, write_json
from cnnlab.metrics.segmentation import class_weights, stratified_pixels
from cnnlab.models.fcn import build_fcn
from cnnlab.models.mnist import MnistCnn
from cnnlab.params import load_params
from cnnlab.params.segmentation import FcnParams, fcn_params
from cnnlab.pipeline import (
    MNIST_CNN_CHECKPOINT,
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


def encoder_normalisation(path: Path) -> tuple[list[float], list[float]]:
    """The per-channel mean/std the CNN was trained with (``extra`` of its checkpoint)."""
    extra = load_torch(path, what="checkpoint", hint=ENCODER_HINT).get("extra") or {}
    if "train_mean" not in extra or "train_std" not in extra:
        raise UserError(f"checkpoint {path} does not record its normalisation (train_mean/train_std): {ENCODER_HINT}")
    return extra["train_mean"], extra["train_std"]


def write_confusion_csv(path: Path, actual: torch.Tensor, predicted: torch.Tensor) -> None:
    names = pd.Series(SEGMENT_CLASSES)
    table = pd.DataFrame({"actual": names[actual.numpy()].values, "predicted": names[predicted.numpy()].values})
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def train(p: FcnParams, encoder_path: Path, data: Path, device_name: str) -> None:
    """Everything the stage does, once the params are validated (see the module docstring)."""
    cnn = load_encoder_checkpoint(encoder_path, MnistCnn(p.encoder))
    mean, std = encoder_normalisation(encoder_path)
    train_split, test, canvases = load_segmented(data)
    if p.train_size is not None:
        gen = torch.Generator().manual_seed(p.seed)
        keep = stratified_indices(train_split.labels, p.train_size, gen, "train_fcn.train_size")
        train_split = train_split.subset(keep)
    threads = configure_threads()
    seed_everything(p.seed)
    device = pick_device(device_name)
    model = build_fcn(cnn, p.model)
    prepare = make_prepare(mean, std, augment=False, channels_last=p.train.channels_last)
    train_masks, test_masks = train_split.extra["masks"], test.extra["masks"]
    weights = class_weights(train_masks, p.model.num_classes, p.class_weighting)
    n_params = count_parameters(model)
    n_trainable = count_parameters(model, trainable_only=True)
    name = f"fcn-{p.variant}"
    print(f"{name}: {n_params / 1e3:.0f}k parameters ({n_trainable / 1e3:.0f}k trainable), {len(train_split)} train "
          f"digits, {len(test)} test digits, {len(canvases.images)} canvases, {p.train.epochs} epochs, "
          f"{threads} CPU threads")

    resume = Resume.for_stage("train_fcn", p.variant, p, [data, encoder_path])
    result = fit_with_curves(fcn_curves(p.variant), model,
                             (train_split.images, train_masks.long()), (test.images, test_masks.long()), p.train,
                             prepare, curves=SEGMENTATION_CURVES, class_weights=weights, name=name,
                             **resume.fit_kwargs())
    if not distributed.is_main():  # under torchrun rank 0 evaluates and writes the outputs
        return

    batch = p.train.eval_batch_size
    digit_pred, digit_metrics, digit_confusion = segment(model, test.images, test_masks, None, prepare, batch, device)
    canvas_pred, canvas_metrics, _ = segment(
        model, canvases.images, canvases.masks, canvases.instances, prepare, batch, device
    )
    summary = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.summary().items()}
    metrics = {
        "variant": p.variant,
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
    save_checkpoint(fcn_checkpoint(p.variant), model, {"fcn": p.model.to_dict(), "encoder": p.encoder.to_dict()},
                    {CLASSES: SEGMENT_CLASSES, "train_mean": mean, "train_std": std,
                     "class_weights": None if weights is None else weights.tolist(), "metrics": metrics})
    write_json(fcn_metrics(p.variant), metrics)
    write_json(timing_metrics_path("train_fcn", p.variant), timing_metrics(result))

    plots = fcn_plots(p.variant)
    gen = torch.Generator().manual_seed(p.seed)
    actual, predicted = stratified_pixels(test_masks, digit_pred, p.confusion_pixels, len(SEGMENT_CLASSES), gen)
    write_confusion_csv(plots / "confusion.csv", actual, predicted)
    with atomic_path(plots / "per_class_iou.csv") as tmp:
        pd.DataFrame({"class": SEGMENT_CLASSES, "digits": digit_metrics["per_class_iou"].values(),
                      "canvases": canvas_metrics["per_class_iou"].values()}).to_csv(tmp, index=False)
    save_figure(confusion_figure(digit_confusion, SEGMENT_CLASSES,
                                 f"FCN {p.variant}: pixel confusion on the test digits"), plots / "confusion.png")
    for file_name, images, truth, pred, count, what, m in (
        ("digits.png", test.images, test_masks, digit_pred, p.preview_digits, "test digits", digit_metrics),
        ("canvases.png", canvases.images, canvases.masks, canvas_pred, p.preview_canvases, "canvases", canvas_metrics),
    ):
        pick = torch.randperm(len(images), generator=gen)[:count]
        title = f"FCN {p.variant} on {what}: {summary_line(m)}"
        save_figure(segmentation_predictions(images[pick], truth[pick], pred[pick], SEGMENT_CLASSES, title),
                    plots / file_name)
    resume.clear()
    state = f"DIVERGED in epoch {result.diverged_epoch}" if metrics["diverged"] else "done"
    print(f"{name}: {state}, {result.train_seconds:.0f} s training; test digits: {summary_line(digit_metrics)}; "
          f"canvases: {summary_line(canvas_metrics)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", help="decoder: upsample or fcn8s")
    add_device_argument(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/segmented_mnist")
    parser.add_argument("--encoder", default=str(MNIST_CNN_CHECKPOINT), help="checkpoint written by train_mnist_cnn")
    args = parser.parse_args()
    p = fcn_params(load_params(args.params), args.variant, args.device)
    distributed.relaunch(p.nproc, p.train.batch_size, "train_fcn.nproc")  # returns at once if nproc is 1
    train(p, Path(args.encoder), Path(args.data), args.device)


if __name__ == "__main__":
    run_cli(main)
