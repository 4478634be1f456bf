"""DVC stage ``train_mnist_cnn``: train the MNIST digit classifier whose encoder the FCNs reuse.

    python stages/train_mnist_cnn.py [--device cuda]

Reads ``data/mnist`` and params ``seed``, ``train_mnist_cnn`` (``model``: the architecture,
``training``: the optimisation, ``augment``); writes ``models/mnist_cnn.pt`` (weights, the model config
that ``train_fcn`` checks, and the normalisation in ``extra``: ``train_mean``/``train_std``),
``metrics/train_mnist_cnn.json`` and the DVCLive curves ``dvclive/train_mnist_cnn/`` (all byte-reproducible),
and the wall-clock figures ``metrics/timing/train_mnist_cnn.json``. An interrupted run resumes at its last
completed epoch (``.cnnlab-resume/``, see :mod:`cnnlab.resume`).
"""

import argparse
from pathlib import Path

import _env  # noqa: F401  (first: one-line error outside the project's environment)

from cnnlab import distributed
from cnnlab.augment import make_prepare
from cnnlab.checkpoints import CLASSES, count_parameters, save_checkpoint
from cnnlab.data.canonical import load_manifest, load_split
from cnnlab.device import add_device_argument, configure_threads, seed_everything
from cnnlab.errors import UserError, run_cli
from cnnlab.io import write_json
from cnnlab.models.mnist import MnistCnn
from cnnlab.params import load_params
from cnnlab.params.segmentation import mnist_cnn_params
from cnnlab.pipeline import MNIST_CNN_CHECKPOINT, MNIST_CNN_CURVES, MNIST_CNN_METRICS, timing_metrics_path
from cnnlab.resume import Resume
from cnnlab.tracking import fit_with_curves, result_line, result_metrics, timing_metrics

NAME = "train_mnist_cnn"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_device_argument(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/mnist")
    args = parser.parse_args()

    p = mnist_cnn_params(load_params(args.params), args.device)
    if not (Path(args.data) / "manifest.json").exists():
        raise UserError(f"dataset {args.data} is missing (no manifest.json): run `dvc repro download@mnist` first")
    manifest = load_manifest(args.data)
    shape, classes = manifest["image_shape"], manifest["classes"]
    if shape[0] != p.model.in_channels or len(classes) != p.model.num_classes:
        raise UserError(
            f"{args.data} has {shape[0]}-channel images and {len(classes)} classes, but train_mnist_cnn.model asks for "
            f"in_channels={p.model.in_channels} and num_classes={p.model.num_classes}: fix the params or the data"
        )
    distributed.relaunch(p.nproc, p.train.batch_size, f"{NAME}.nproc")  # returns at once if nproc is 1
    threads = configure_threads()
    seed_everything(p.seed)
    train, test = load_split(args.data, "train"), load_split(args.data, "test")
    model = MnistCnn(p.model)
    prepare = make_prepare(manifest["train_mean"], manifest["train_std"], p.augment, p.train.channels_last)
    n_params = count_parameters(model)
    print(f"{NAME}: {n_params / 1e3:.0f}k parameters, {len(train)} train / {len(test)} test images, "
          f"{p.train.epochs} epochs, {threads} CPU threads")

    resume = Resume.for_stage(NAME, NAME, p, [args.data])
    result = fit_with_curves(MNIST_CNN_CURVES, model, (train.images, train.labels),
                             (test.images, test.labels), p.train, prepare, name=NAME, **resume.fit_kwargs())
    if not distributed.is_main():  # under torchrun rank 0 writes the outputs
        return
    metrics = result_metrics(result, params=n_params)
    save_checkpoint(MNIST_CNN_CHECKPOINT, model, p.model.to_dict(),
                    {CLASSES: classes, "train_mean": manifest["train_mean"], "train_std": manifest["train_std"],
                     "metrics": metrics})
    write_json(MNIST_CNN_METRICS, metrics)
    write_json(timing_metrics_path(NAME), timing_metrics(result))
    resume.clear()
    print(result_line(NAME, result))

if __name__ == "__main__":
    run_cli(main)
