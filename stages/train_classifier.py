"""DVC stage ``train_classifier@<arch>-<depth>-<variant>-<seed>``: train one CIFAR-10 classifier (depth 18: ResNet-18).

    python stages/train_classifier.py --arch residual --depth 56 --variant relu-bn --seed 0 [--device cuda]

``--seed`` (an entry of ``classifier.seeds``) seeds initialisation, data order and augmentation.
Reads ``data/cifar10`` and params ``train_classifier``; writes
``models/classifier/<key>.pt`` (state dict + the config that built it),
``metrics/train_classifier/<key>.json``, the DVCLive curves ``dvclive/train_classifier/<key>/`` and the
per-epoch gradient statistics ``plots/train_classifier/<key>/gradients.csv`` (``train_classifier.grad_every``;
only the header when it is 0) (all byte-reproducible), and the wall-clock figures
``metrics/timing/train_classifier/<key>.json``.
A run whose loss becomes NaN/inf is recorded as diverged (metrics say so; no garbage numbers).
An interrupted run resumes at its last completed epoch (``.cnnlab-resume/``, see :mod:`cnnlab.resume`).
"""

import argparse

import _env  # noqa: F401  (first: one-line error outside the project's environment)

from cnnlab import distributed
from cnnlab.augment import make_prepare
from cnnlab.checkpoints import CLASSES, count_parameters, save_checkpoint
from cnnlab.data.canonical import load_manifest, load_split
from cnnlab.device import add_device_argument, configure_threads, seed_everything
from cnnlab.errors import run_cli
from cnnlab.gradient_recording import training_gradients_frame
from cnnlab.io import atomic_path, write_json
from cnnlab.models.classifiers import build_classifier, config_from_dict
from cnnlab.params import load_params
from cnnlab.params.classifiers import classifier_params
from cnnlab.pipeline import (
    classifier_checkpoint,
    classifier_curves,
    classifier_gradients,
    classifier_metrics,
    timing_metrics_path,
)
from cnnlab.resume import Resume
from cnnlab.tracking import fit_with_curves, result_line, result_metrics, timing_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--depth", required=True, type=int)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seed", required=True, type=int, help="training seed, an entry of classifier.seeds")
    add_device_argument(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/cifar10")
    args = parser.parse_args()

    p = classifier_params(load_params(args.params), args.arch, args.depth, args.variant, args.seed,
                          args.device)
    distributed.relaunch(p.nproc, p.train.batch_size, "train_classifier.nproc")  # returns at once if nproc is 1
    threads = configure_threads()
    seed_everything(p.seed)
    manifest = load_manifest(args.data)
    train, test = load_split(args.data, "train"), load_split(args.data, "test")
    model_config = config_from_dict({**p.model, "num_classes": len(manifest["classes"])})
    model = build_classifier(model_config)
    prepare = make_prepare(manifest["train_mean"], manifest["train_std"], p.augment, p.train.channels_last, p.padding)
    n_params = count_parameters(model)
    print(f"{p.key}: {n_params / 1e6:.3f}M parameters, {len(train)} train / {len(test)} test images, "
          f"{p.train.epochs} epochs, {threads} CPU threads")

    resume = Resume.for_stage("train_classifier", p.key, p, [args.data])
    result = fit_with_curves(classifier_curves(p.key), model, (train.images, train.labels),
                             (test.images, test.labels), p.train, prepare, name=p.key, **resume.fit_kwargs())
    if not distributed.is_main():  # under torchrun rank 0 writes the outputs
        return
    metrics = result_metrics(result, model=p.key, params=n_params)
    save_checkpoint(classifier_checkpoint(p.key), model, model_config.to_dict(),
                    {CLASSES: manifest["classes"], "train_mean": manifest["train_mean"],
                     "train_std": manifest["train_std"], "metrics": metrics})
    write_json(classifier_metrics(p.key), metrics)
    with atomic_path(classifier_gradients(p.key)) as tmp:  # a declared output: written even with recording off
        training_gradients_frame(result.gradients).to_csv(tmp, index=False, float_format="%.6g")
    write_json(timing_metrics_path("train_classifier", p.key), timing_metrics(result))
    resume.clear()
    print(result_line(p.key, result))

if __name__ == "__main__":
    run_cli(main)
