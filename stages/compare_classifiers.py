"""DVC stage ``compare_classifiers``: the plain-vs-residual accuracy table and figures.

Reads ``metrics/train_classifier/<key>.json`` and the DVCLive curves of exactly the models the
``classifier`` matrix in params.yaml names (older files of other depths are ignored); writes
``metrics/compare_classifiers.json``, ``tables/classifier_accuracy.md`` and ``plots/compare_classifiers/``
(accuracy.csv, accuracy_vs_depth.png, test_accuracy_curves.png, train_loss_curves.png).
"""

import argparse
from pathlib import Path

import _bootstrap  # noqa: F401
import pandas as pd

from cnnlab.compare import accuracy_table, table_metrics, to_markdown
from cnnlab.errors import UserError, run_cli
from cnnlab.figures import accuracy_vs_depth, save_figure, training_curves
from cnnlab.io import atomic_path, read_json, write_json, write_text
from cnnlab.params import classifier_key, get, load_params

CURVE_FILES = {"test_acc": "accuracy/test.tsv", "train_loss": "loss/train.tsv"}


def read_history(live_dir: Path) -> pd.DataFrame:
    frames = []
    for column, rel in CURVE_FILES.items():
        path = live_dir / "plots" / "metrics" / rel
        if not path.exists():
            raise UserError(f"{path} is missing: rerun `dvc repro train_classifier`")
        frame = pd.read_csv(path, sep="\t")
        frames.append(frame.rename(columns={"step": "epoch", frame.columns[-1]: column})[["epoch", column]])
    return frames[0].merge(frames[1], on="epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="plots/compare_classifiers")
    parser.add_argument("--table", default="tables/classifier_accuracy.md")
    args = parser.parse_args()
    params = load_params(args.params)
    keys = [classifier_key(a, d, v) for v in get(params, "classifier.variants")
            for d in get(params, "classifier.depths") for a in get(params, "classifier.archs")]
    metrics = [read_json(f"metrics/train_classifier/{k}.json") for k in keys]
    table = accuracy_table(metrics)
    out = Path(args.out)
    with atomic_path(out / "accuracy.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    write_text(args.table, to_markdown(table))
    write_json("metrics/compare_classifiers.json", table_metrics(table))
    save_figure(accuracy_vs_depth(table), out / "accuracy_vs_depth.png")
    histories = {k: read_history(Path("dvclive/train_classifier") / k) for k in keys}
    save_figure(training_curves(histories, "test_acc", "test accuracy", "CIFAR-10 test accuracy per epoch"),
                out / "test_accuracy_curves.png")
    save_figure(training_curves(histories, "train_loss", "training loss (cross-entropy)",
                                "CIFAR-10 training loss per epoch"), out / "train_loss_curves.png")
    print(to_markdown(table))


if __name__ == "__main__":
    run_cli(main)
