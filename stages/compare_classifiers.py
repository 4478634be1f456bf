"""DVC stage ``compare_classifiers``: the plain-vs-residual accuracy table and figures.

Reads ``metrics/train_classifier/<key>.json`` and the DVCLive curves of exactly the models the
``classifier`` matrix in params.yaml names (older files of other depths or seeds are ignored); writes
``metrics/compare_classifiers.json``, ``tables/classifier_accuracy.md`` and ``plots/compare_classifiers/``
(accuracy.csv: the accuracies, with several seeds their mean, std and n and every seed's accuracy,
accuracy_by_depth.csv: the means as a long table, curves.csv: every run's per-epoch curves in one long table,
accuracy_vs_depth.png, test_accuracy_curves.png, train_loss_curves.png). With several ``classifier.seeds``
the table and the figures show mean ± std over seeds; with one they read as a single run.
"""

import argparse
from pathlib import Path

import _env  # noqa: F401  (first: one-line error outside the project's environment)

from cnnlab.compare import (
    accuracy_by_depth,
    accuracy_csv,
    accuracy_table,
    classifier_labels,
    several_seeds,
    stack_tables,
    table_metrics,
    to_markdown,
)
from cnnlab.errors import run_cli
from cnnlab.figures.classifiers import accuracy_vs_depth, training_curves
from cnnlab.figures.style import save_figure
from cnnlab.io import atomic_path, read_json, write_json, write_text
from cnnlab.params import load_params
from cnnlab.pipeline import classifier_curves, classifier_keys, classifier_metrics
from cnnlab.tracking import read_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="plots/compare_classifiers")
    parser.add_argument("--table", default="tables/classifier_accuracy.md")
    args = parser.parse_args()
    params = load_params(args.params)
    keys = classifier_keys(params, by_variant=True)
    metrics = [read_json(classifier_metrics(k)) for k in keys]
    table = accuracy_table(metrics)
    out = Path(args.out)
    with atomic_path(out / "accuracy.csv") as tmp:
        accuracy_csv(table).to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(out / "accuracy_by_depth.csv") as tmp:
        accuracy_by_depth(table).to_csv(tmp, index=False, float_format="%.4f")
    write_text(args.table, to_markdown(table))
    write_json("metrics/compare_classifiers.json", table_metrics(table))
    save_figure(accuracy_vs_depth(table), out / "accuracy_vs_depth.png")
    histories = {k: read_curves(classifier_curves(k)) for k in keys}
    with atomic_path(out / "curves.csv") as tmp:
        labels = {k: classifier_labels(k, with_seed=several_seeds(table)) for k in keys}  # one line per run
        stack_tables(histories, labels).to_csv(tmp, index=False, float_format="%.6g")
    save_figure(training_curves(histories, "test_accuracy", "test accuracy", "CIFAR-10 test accuracy per epoch"),
                out / "test_accuracy_curves.png")
    save_figure(training_curves(histories, "train_loss", "training loss (cross-entropy)",
                                "CIFAR-10 training loss per epoch"), out / "train_loss_curves.png")
    print(to_markdown(table))


if __name__ == "__main__":
    run_cli(main)
