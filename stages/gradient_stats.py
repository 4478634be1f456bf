"""DVC stages ``gradient_stats@<arch>-<depth>-<variant>-<init>`` and ``gradient_stats_trained@<key>``.

    python stages/gradient_stats.py --arch plain --depth 56 --variant tanh-nobn --init default
    python stages/gradient_stats.py --trained plain-56-relu-bn-0

From a seeded initialisation (or a trained checkpoint of ``train_classifier``), run K SGD iterations
on real CIFAR-10 batches and record per weight layer and iteration: mean |grad|, RMS, L2 norm, std and
the weight norm. Writes ``plots/gradient_stats/<name>/`` (stats.csv: tidy rows; profile.csv: per layer;
first_last.csv: first and last layer per iteration) and ``metrics/gradient_stats/<name>.json``, where
``<name>`` is the matrix key (``trained-<key>`` for checkpoints).
"""

import argparse

import _env  # noqa: F401  (first: one-line error outside the project's environment)
import pandas as pd
import torch

from cnnlab.augment import make_prepare
from cnnlab.checkpoints import load_trained_classifier
from cnnlab.compare import gradient_headline
from cnnlab.data.canonical import load_manifest, load_split
from cnnlab.device import add_device_argument, configure_threads, pick_device, seed_everything
from cnnlab.errors import run_cli
from cnnlab.gradients import first_last_table, layer_profile, record_gradient_stats, summarize
from cnnlab.io import atomic_path, write_json
from cnnlab.models.classifiers import build_classifier
from cnnlab.params import load_params
from cnnlab.params.classifiers import model_config, trained_model_config
from cnnlab.params.sections import gradient_params
from cnnlab.pipeline import gradient_key, gradient_metrics, gradient_plots, trained_key

EMPTY = {
    "stats.csv": pd.DataFrame(columns=["iteration", "layer_index", "layer_name"]),
    "profile.csv": pd.DataFrame(columns=["layer_index", "grad_rms_mean"]),
    "first_last.csv": pd.DataFrame(columns=["iteration", "ratio_mean_abs"]),
}


def cifar_batches(folder: str, batch_size: int, iterations: int, seed: int, device: torch.device):
    """``iterations`` seeded, normalised (not augmented) batches of the CIFAR-10 train split."""
    manifest = load_manifest(folder)
    train = load_split(folder, "train")
    needed = batch_size * iterations
    gen = torch.Generator().manual_seed(seed)
    order = torch.cat([torch.randperm(len(train), generator=gen) for _ in range(-(-needed // len(train)))])[:needed]
    prepare = make_prepare(manifest["train_mean"], manifest["train_std"], augment=False, channels_last=False)
    for i in range(iterations):
        idx = order[i * batch_size : (i + 1) * batch_size]
        yield prepare(train.images[idx].to(device)), train.labels[idx].to(device)


def write_outputs(name: str, stats: "pd.DataFrame | None", summary: dict) -> None:
    """The three tables (header-only when ``stats`` is None: a skipped model) and the metrics JSON."""
    tables = {"stats.csv": stats, "profile.csv": None, "first_last.csv": None}
    if stats is not None:
        tables.update({"profile.csv": layer_profile(stats), "first_last.csv": first_last_table(stats)})
    for file_name, table in tables.items():
        with atomic_path(gradient_plots(name) / file_name) as tmp:
            (table if table is not None else EMPTY[file_name]).to_csv(tmp, index=False, float_format="%.6g")
    write_json(gradient_metrics(name), summary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch")
    parser.add_argument("--depth", type=int)
    parser.add_argument("--variant")
    parser.add_argument("--init")
    parser.add_argument("--trained", metavar="KEY", help="a train_classifier key, e.g. plain-56-relu-bn-0")
    add_device_argument(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data/cifar10")
    args = parser.parse_args()
    params = load_params(args.params)
    p = gradient_params(params)
    configure_threads()
    seed_everything(p.seed)
    device = pick_device(args.device)

    if args.trained:
        name = trained_key(args.trained)
        model = build_classifier(trained_model_config(params, args.trained))
        extra = load_trained_classifier(args.trained, model)
        if extra.get("metrics", {}).get("diverged"):
            print(f"{name}: skipped, the classifier diverged in training")
            write_outputs(name, None, {"diverged": True, "skipped": "the classifier diverged in training"})
            return
        train_steps = p.trained_steps
    else:
        if None in (args.arch, args.depth, args.variant, args.init):
            parser.error("give --arch, --depth, --variant and --init, or --trained KEY")
        name = gradient_key(args.arch, args.depth, args.variant, args.init)
        model = build_classifier(model_config(args.arch, args.depth, args.variant, args.init))
        train_steps = True

    batches = cifar_batches(args.data, p.batch_size, p.iterations, p.seed, device)
    stats = record_gradient_stats(model, batches, p.iterations, lr=p.lr, momentum=p.momentum,
                                  weight_decay=p.weight_decay, device=device, train=train_steps)
    summary = summarize(stats)
    write_outputs(name, stats, gradient_headline(summary))
    ratio = summary["grad_mean_abs_ratio"]
    print(f"{name}: first/last layer mean|grad| = {ratio:.3g}" if ratio is not None else f"{name}: diverged")


if __name__ == "__main__":
    run_cli(main)
