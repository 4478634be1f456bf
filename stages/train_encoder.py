"""DVC stage ``train_encoder@<encoder>``: train the MNIST digit classifier whose encoder the FCNs reuse.

    python stages/train_encoder.py {cnn|resnet18} [--device cuda]

One code path for every encoder family of :data:`cnnlab.models.encoders.ENCODERS` (``cnn``: the compact MNIST
CNN; ``resnet18``: the CIFAR-stem ResNet-18 with one input channel). Reads ``data/mnist`` and params ``seed``,
``train_encoder`` (``<encoder>.model``: the architecture; ``training`` updated by ``<encoder>.training``:
the optimisation; ``augment``, ``nproc``); writes ``models/encoder/<encoder>.pt`` (weights, the model config
that ``train_fcn`` checks, and in ``extra`` the family and the normalisation ``train_mean``/``train_std``),
``metrics/train_encoder/<encoder>.json`` and the DVCLive curves ``dvclive/train_encoder/<encoder>/`` (all
byte-reproducible), and the wall-clock figures ``metrics/timing/train_encoder/<encoder>.json``. An interrupted
run resumes at its last completed epoch (``.cnnlab-resume/``, see :mod:`cnnlab.resume`).
"""

import argparse
from pathlib import Path

import _env  # noqa: F401  (first: one-line error outside the project's environment)

from cnnlab import distributed
from cnnlab.augment import make_prepare
from cnnlab.checkpoints import CLASSES, ENCODER, count_parameters, save_checkpoint
from cnnlab.data.canonical import load_manifest, load_split
from cnnlab.device import add_device_argument, configure_threads, seed_everything
from cnnlab.errors import UserError, run_cli
from cnnlab.io import write_json
from cnnlab.models.encoders import build_classifier, encoder
from cnnlab.params import load_params
from cnnlab.params.segmentation import encoder_params
from cnnlab.pipeline import encoder_checkpoint, encoder_curves, encoder_metrics, timing_metrics_path
from cnnlab.resume import Resume
from cnnlab.tracking import fit_with_curves, result_line, result_metrics, timing_metrics

STAGE = "train_encoder"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoder", help="encoder family: cnn or resnet18")
    add_device_argument(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/mnist")
    args = parser.parse_args()

    p = encoder_params(load_params(args.params), args.encoder, args.device)
    name = f"{STAGE}@{p.encoder}"
    if not (Path(args.data) / "manifest.json").exists():
        raise UserError(f"dataset {args.data} is missing (no manifest.json): run `dvc repro download@mnist` first")
    manifest = load_manifest(args.data)
    shape, classes = manifest["image_shape"], manifest["classes"]
    if shape[0] != p.model.in_channels or len(classes) != p.model.num_classes:
        raise UserError(
            f"{args.data} has {shape[0]}-channel images and {len(classes)} classes, but "
            f"train_encoder.{p.encoder}.model asks for in_channels={p.model.in_channels} and "
            f"num_classes={p.model.num_classes}: fix the params or the data"
        )
    distributed.relaunch(p.nproc, p.train.batch_size, f"{STAGE}.nproc")  # returns at once if nproc is 1
    threads = configure_threads()
    seed_everything(p.seed)
    train, test = load_split(args.data, "train"), load_split(args.data, "test")
    model = build_classifier(p.encoder, p.model)
    prepare = make_prepare(manifest["train_mean"], manifest["train_std"], p.augment, p.train.channels_last)
    n_params = count_parameters(model)
    print(f"{name}: {encoder(p.encoder).label}, {n_params / 1e3:.0f}k parameters, {len(train)} train / {len(test)} "
          f"test images, {p.train.epochs} epochs, {threads} CPU threads")

    resume = Resume.for_stage(STAGE, p.encoder, p, [args.data])
    result = fit_with_curves(encoder_curves(p.encoder), model, (train.images, train.labels),
                             (test.images, test.labels), p.train, prepare, name=name, **resume.fit_kwargs())
    if not distributed.is_main():  # under torchrun rank 0 writes the outputs
        return
    # epochs in the metrics: the report states each encoder's budget without reading (and depending on) params
    metrics = result_metrics(result, encoder=p.encoder, params=n_params, epochs=p.train.epochs)
    save_checkpoint(encoder_checkpoint(p.encoder), model, p.model.to_dict(),
                    {ENCODER: p.encoder, CLASSES: classes, "train_mean": manifest["train_mean"],
                     "train_std": manifest["train_std"], "metrics": metrics})
    write_json(encoder_metrics(p.encoder), metrics)
    write_json(timing_metrics_path(STAGE, p.encoder), timing_metrics(result))
    resume.clear()
    print(result_line(name, result))


if __name__ == "__main__":
    run_cli(main)
