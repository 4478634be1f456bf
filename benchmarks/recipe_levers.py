"""What each lever of the CIFAR-10 training recipe buys: accuracy at a fixed budget, measured on held-out data.

Trains plain and residual nets (``--depth``, relu-bn) with the recipe of ``--params`` (``train_classifier``, the
defaults) and with one lever changed at a time (:data:`LEVERS`), plus the old recipe
(:data:`time_to_accuracy.OLD_RECIPE`) at the same epoch budget. Evaluation is on ``--holdout`` class-stratified
training images held out of training: the levers are chosen on these numbers, so the test set stays unused
until the reported runs. Prints a table (accuracy of each variant and its difference from the recipe, per
architecture) and writes it with ``--out``. Every variant starts from the same initial weights and data order
(``--seed``), so levers that leave training alone (EMA, flip at test time) change only the evaluation; the row
"recipe, another seed" shows how far a different seed alone moves the accuracy (the noise floor).

Usage::

    .venv/bin/python benchmarks/recipe_levers.py --data data/cifar10 --train-size 8000 --epochs 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from time_to_accuracy import load_data, recipe_params, recipe_section, run_recipe

from cnnlab.device import configure_threads, pick_device
from cnnlab.errors import run_cli
from cnnlab.io import write_text
from cnnlab.params import load_params

#: One lever changed from the recipe: name -> train_classifier overrides (the recipe's own value when it
#: already differs from these is what the row measures).
LEVERS = {
    "no label smoothing": {"label_smoothing": 0.0},
    "no weight average (EMA)": {"ema_epochs": 0.0},
    "no flip at test time": {"eval_flip": False},
    "weight decay on BN and biases": {"decay_bn_bias": True},
    "cosine instead of linear decay": {"schedule": "cosine"},
    "batch 256, lr x2": {"batch_size": 256, "lr_scale": 2.0},
    "PyTorch default init": {"init": "default"},
    "fp32 instead of bf16": {"amp": False},
}


def lever_section(params: dict, overrides: dict, device) -> dict:
    section = recipe_section(params, "new", device)
    overrides = dict(overrides)
    section["lr"] = section["lr"] * overrides.pop("lr_scale", 1.0)
    section.update(overrides)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="canonical CIFAR-10 folder (e.g. data/cifar10)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--archs", nargs="+", default=["plain", "residual"])
    parser.add_argument("--epochs", type=int, default=8, help="the fixed budget of every variant")
    parser.add_argument("--holdout", type=int, default=5000)
    parser.add_argument("--train-size", type=int, default=8000)
    parser.add_argument("--levers", nargs="*", default=list(LEVERS), help="names of LEVERS to run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the table as CSV")
    args = parser.parse_args()

    threads = configure_threads()
    params = load_params(args.params)
    data = load_data(args.data, args.holdout, args.train_size, args.seed)
    device = pick_device(args.device)
    print(f"depth {args.depth}: {len(data['train'][0])} training / {len(data['eval'][0])} held-out images, "
          f"{args.epochs} epochs each, {threads} threads", flush=True)
    variants = {"recipe": {}, "recipe, another seed": {}, **{name: LEVERS[name] for name in args.levers},
                "old recipe": None}
    rows = []
    for arch in args.archs:
        for name, overrides in variants.items():
            if overrides is None:
                section = recipe_section(params, "old", device)
            else:
                section = lever_section(params, overrides, device)
            section.update(epochs=args.epochs, show_progress=False)
            # the noise floor: the same recipe from another initialisation, data order and augmentation
            seed = args.seed + 1 if name == "recipe, another seed" else args.seed
            result = run_recipe(name, recipe_params(params, section, arch, args.depth, seed, args.device), data,
                                args.device)
            rows.append({"arch": arch, "variant": name, "acc": result["final_acc"],
                         "images_per_sec": result["images_per_sec"], "minutes": result["minutes"]})
            print(f"{arch:<8} {name:<32} {result['final_acc']:.4f}  {result['images_per_sec']:.0f} img/s", flush=True)
    table = pd.DataFrame(rows)
    base = table[table.variant == "recipe"].set_index("arch")["acc"]
    table["vs_recipe"] = table.acc - table.arch.map(base)
    wide = table.pivot(index="variant", columns="arch", values=["acc", "vs_recipe"]).reindex(list(variants))
    print(wide.round(4).to_string())
    if args.out is not None:
        write_text(args.out, table.to_csv(index=False, float_format="%.4f"))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
