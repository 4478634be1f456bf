"""Time to a target accuracy: the old CIFAR-10 training recipe against the current one, in the same run.

Trains the same model (``--arch``/``--depth``, the relu-bn variant) on the same data with the same threads,
first with the recipe cnnlab used before issue #14 (:data:`OLD_RECIPE`: 30 epochs, cosine, PyTorch's default
init, fp32 on the CPU) and then with the ``train_classifier`` section of ``--params`` (today's defaults), evaluates
after every epoch and prints, for each, the wall-clock minutes (training and evaluation) and epochs until the
evaluation accuracy first reaches ``--target``, and the ratio old / new. A recipe stops once it reaches the
target (``--full`` runs every epoch). ``--set KEY=VALUE`` changes one ``train_classifier`` value of the new recipe
(``--set batch_size=64 --set small_crop_epochs=4``); ``--epochs N`` is ``--set epochs=N``.

Honesty: the recipes were chosen on a held-out part of the training set (``benchmarks/recipe_levers.py``,
``--holdout``), never on the test set this benchmark reports. ``--holdout N`` evaluates here too on N
class-stratified training images held out of training instead of the test set.

Usage (a canonical dataset folder, e.g. the pipeline's ``data/cifar10``)::

    .venv/bin/python benchmarks/time_to_accuracy.py --data data/cifar10                 # residual-32, 0.85
    .venv/bin/python benchmarks/time_to_accuracy.py --data data/cifar10 --depth 20 --train-size 10000 --target 0.7
    .venv/bin/python benchmarks/time_to_accuracy.py --data data/cifar10 --recipes new --epochs 10 \
        --set small_crop_epochs=5
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import time
from pathlib import Path

import torch

from cnnlab.augment import make_prepare
from cnnlab.data.canonical import load_manifest, load_split
from cnnlab.data.sources import stratified_indices
from cnnlab.device import configure_threads, pick_device, seed_everything
from cnnlab.errors import UserError, run_cli
from cnnlab.io import write_json
from cnnlab.models.cifar import CifarNetConfig, build_cifar_net
from cnnlab.params import load_params
from cnnlab.params.classifiers import ClassifierParams, classifier_params
from cnnlab.params_edit import parse_assignment
from cnnlab.training import amp_dtype, fit

#: ``train_classifier`` as it was before issue #14 (params.yaml of commit edc771a). Its ``amp`` meant fp16 on
#: CUDA only; :func:`recipe_section` turns it off on the CPU, as that code did.
OLD_RECIPE = {
    "epochs": 30, "batch_size": 128, "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
    "optimizer": "sgd", "schedule": "cosine", "warmup_epochs": 1, "eval_batch_size": 1000, "augment": True,
    "channels_last": True, "amp": True, "show_progress": True, "shortcut": "A", "width": 1, "init": "default",
    "nproc": 1,
}


class _ReachedTarget(Exception):
    """Raised from the epoch callback to end a run at its target (fit lets it through)."""


def recipe_section(params: dict, name: str, device: torch.device, overrides: dict | None = None) -> dict:
    """The ``train_classifier`` section of recipe ``name`` ("old" or "new" = the one in ``params``)."""
    section = copy.deepcopy(OLD_RECIPE if name == "old" else params["train_classifier"])
    if name == "old" and device.type != "cuda":
        section["amp"] = False
    section.update(overrides or {})
    return section


def load_data(folder: Path, holdout: int, train_size: int | None, seed: int) -> dict:
    """Train and evaluation splits: the test split, or ``holdout`` class-stratified training images held out;
    ``train_size``: a class-stratified subset of the remaining training images."""
    manifest = load_manifest(folder)
    train, test = load_split(folder, "train"), load_split(folder, "test")
    images, labels = train.images, train.labels
    gen = torch.Generator().manual_seed(seed)
    evaluation = (test.images, test.labels)
    if holdout:
        held = stratified_indices(labels, holdout, gen, key="--holdout")
        keep = torch.ones(len(labels), dtype=torch.bool)
        keep[held] = False
        evaluation = (images[held], labels[held])
        images, labels = images[keep], labels[keep]
    if train_size is not None:
        subset = stratified_indices(labels, train_size, gen, key="--train-size")
        images, labels = images[subset], labels[subset]
    return {"train": (images, labels), "eval": evaluation, "eval_name": "held-out" if holdout else "test",
            "mean": manifest["train_mean"], "std": manifest["train_std"], "classes": len(manifest["classes"])}


def recipe_params(params: dict, section: dict, arch: str, depth: int, seed: int, device: str) -> ClassifierParams:
    """The relu-bn classifier ``arch``-``depth`` trained by ``section`` (as ``train_classifier``) from ``seed``."""
    return classifier_params({**params, "train_classifier": section}, arch, depth, "relu-bn", seed, device)


def run_recipe(name: str, p: ClassifierParams, data: dict, device: str, target: float | None = None,
               stop_at_target: bool = True) -> dict:
    """Train the model ``p`` describes, as ``p`` says; returns its per-epoch history (with cumulative wall-clock
    ``elapsed`` seconds) and when it first reached ``target``."""
    seed_everything(p.seed)  # as the stage does: every recipe starts from the same initial weights
    model = build_cifar_net(CifarNetConfig.from_dict({**p.model, "num_classes": data["classes"]}))
    prepare = make_prepare(data["mean"], data["std"], p.augment, p.train.channels_last, p.padding)
    rows: list[dict] = []
    start = time.perf_counter()

    def on_epoch(row: dict) -> None:
        rows.append({**row, "elapsed": time.perf_counter() - start})
        if stop_at_target and target is not None and row["test_acc"] >= target:
            raise _ReachedTarget

    with contextlib.suppress(_ReachedTarget):
        fit(model, data["train"], data["eval"], p.train, prepare, on_epoch=on_epoch, name=f"{name} {p.key}")
    reached = next((row for row in rows if target is not None and row["test_acc"] >= target), None)
    dtype = amp_dtype(pick_device(device), p.train.amp)
    return {
        "recipe": name, "model": p.key, "epochs_planned": p.train.epochs, "epochs_run": len(rows),
        "precision": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
        "final_acc": rows[-1]["test_acc"] if rows else None,
        "epochs_to_target": reached["epoch"] if reached else None,
        "minutes_to_target": reached["elapsed"] / 60 if reached else None,
        "minutes": rows[-1]["elapsed"] / 60 if rows else 0.0,
        "images_per_sec": sum(r["images_per_sec"] for r in rows) / max(1, len(rows)),
        "history": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="canonical CIFAR-10 folder (e.g. data/cifar10)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="the new recipe's params file")
    parser.add_argument("--target", type=float, default=0.85, help="accuracy to reach (default 0.85)")
    parser.add_argument("--arch", default="residual", choices=["plain", "residual"])
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--recipes", nargs="+", default=["old", "new"], choices=["old", "new"],
                        help="which recipes to train, in this order (default: old new)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="the new recipe's schedule length (default: train_classifier.epochs of --params)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="a train_classifier value of the new recipe (repeatable), e.g. batch_size=64")
    parser.add_argument("--holdout", type=int, default=0, help="evaluate on this many held-out training images")
    parser.add_argument("--train-size", type=int, default=None, help="class-stratified training subset")
    parser.add_argument("--full", action="store_true", help="run every epoch (do not stop at the target)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--seed", type=int, default=0, help="training seed and held-out/subset draw")
    parser.add_argument("--out", type=Path, default=None, help="write the results (with histories) as JSON")
    args = parser.parse_args()
    if not 0 < args.target <= 1:
        raise UserError(f"--target {args.target} must be in (0, 1]: it is an accuracy")
    if len(set(args.recipes)) < len(args.recipes):
        raise UserError(f"--recipes {' '.join(args.recipes)} names a recipe twice: name each of old, new once")
    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs {args.epochs} must be at least 1: it is the new recipe's schedule length")

    params = load_params(args.params)
    new_overrides = dict(parse_assignment(text) for text in args.assignments)
    unknown = sorted(set(new_overrides) - set(params["train_classifier"]))
    if unknown:
        raise UserError(f"--set {unknown[0]}: not a train_classifier key of {args.params}; use one of "
                        f"{', '.join(params['train_classifier'])}")
    if args.epochs is not None:
        new_overrides["epochs"] = args.epochs
    threads = configure_threads()
    data = load_data(args.data, args.holdout, args.train_size, args.seed)
    device = pick_device(args.device)
    print(f"{args.arch}-{args.depth}: {len(data['train'][0])} training images, {len(data['eval'][0])} "
          f"{data['eval_name']} images, target {args.target}, {threads} threads on {device}", flush=True)
    sections = {name: recipe_section(params, name, device, new_overrides if name == "new" else None)
                for name in args.recipes}
    recipes = {name: recipe_params(params, section, args.arch, args.depth, args.seed, args.device)
               for name, section in sections.items()}
    for p in recipes.values():  # every recipe's settings are checked before the first one trains
        p.train.validate(len(data["train"][0]))
    results = []
    for name, p in recipes.items():
        results.append(run_recipe(name, p, data, args.device, args.target, stop_at_target=not args.full))
        if args.out is not None:  # after every recipe: a run stopped during the next one keeps this one's result
            write_json(args.out, {"args": {k: str(v) for k, v in vars(args).items()}, "threads": threads,
                                  "results": results})
    print(f"\n{'recipe':<6} {'precision':<9} {'epochs':>6} {'to target':>9} {'minutes':>8} {'final acc':>9} "
          f"{'img/s':>6}")
    for r in results:
        to_epochs = "-" if r["epochs_to_target"] is None else f"{r['epochs_to_target']}/{r['epochs_planned']}"
        minutes = "-" if r["minutes_to_target"] is None else f"{r['minutes_to_target']:.1f}"
        print(f"{r['recipe']:<6} {r['precision']:<9} {r['epochs_run']:>6} {to_epochs:>9} {minutes:>8} "
              f"{r['final_acc']:>9.4f} {r['images_per_sec']:>6.0f}")
    by_name = {r["recipe"]: r for r in results}
    if len(by_name) == 2 and all(r["minutes_to_target"] for r in results):
        ratio = by_name["old"]["minutes_to_target"] / by_name["new"]["minutes_to_target"]
        print(f"time to {args.target:g} ({data['eval_name']} accuracy): old / new = {ratio:.2f}x")
    elif len(by_name) == 2:
        missed = [r["recipe"] for r in results if r["minutes_to_target"] is None]
        print(f"no ratio: recipe {', '.join(missed)} never reached {args.target:g}")
    if args.out is not None:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
