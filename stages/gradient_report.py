"""DVC stage ``gradient_report``: the vanishing-gradient table and figures over every model.

Reads ``metrics/gradient_stats/<name>.json`` and ``plots/gradient_stats/<name>/`` of exactly the
models params.yaml names (``gradient_matrix`` at initialisation, ``classifier`` for trained ones, one per
training seed: the table gives their mean ± std over seeds); writes ``tables/gradient_stats.md``,
``plots/gradient_report/table.csv``, every model's per-layer profile and first/last-layer curves stacked into
``profiles.csv`` and ``first_last.csv`` (columns ``model`` and ``panel`` first: the data of the overlaid DVC
plots) and the figures ``plots/gradient_report/{profile_rms,profile_l2,grad_norm,grad_std}.png``.

Gradients over training: from every classifier's ``plots/train_classifier/<key>/gradients.csv`` and DVCLive
curves ``dvclive/train_classifier/<key>/``, one figure per (depth, variant, seed) of the ``classifier`` matrix,
``plots/gradient_report/over_training/<depth>-<variant>-<seed>.png`` (per-layer RMS gradient at the first and
the last epoch, plain vs residual, and both training losses), and their rows stacked in
``plots/gradient_report/over_training.csv`` (the overlaid DVC plot).
"""

import argparse
from pathlib import Path

import _env  # noqa: F401  (first: one-line error outside the project's environment)
import pandas as pd

from cnnlab.compare import (
    gradient_csv,
    gradient_labels,
    gradient_markdown,
    gradient_table,
    over_training_table,
    stack_tables,
)
from cnnlab.config import get
from cnnlab.errors import run_cli
from cnnlab.families import model_label, net_label
from cnnlab.figures.gradients import first_last_over_iterations, gradient_profiles, gradients_over_training
from cnnlab.figures.style import save_figure
from cnnlab.io import atomic_dir, atomic_path, read_json, write_text
from cnnlab.params import load_params
from cnnlab.pipeline import (
    GRADIENT_REPORT,
    classifier_curves,
    classifier_gradients,
    classifier_key,
    classifier_seeds,
    gradcam_keys,
    gradient_metrics,
    gradient_names,
    gradient_plots,
    over_training_figure,
)
from cnnlab.tracking import read_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=str(GRADIENT_REPORT))
    parser.add_argument("--table", default="tables/gradient_stats.md")
    args = parser.parse_args()
    params = load_params(args.params)
    names = list(gradient_names(params))
    summaries = {n: read_json(gradient_metrics(n)) for n in names}
    table = gradient_table(summaries)
    out = Path(args.out)
    with atomic_path(out / "table.csv") as tmp:
        gradient_csv(table).to_csv(tmp, index=False, float_format="%.6g")
    write_text(args.table, gradient_markdown(table))

    profiles = {n: pd.read_csv(gradient_plots(n) / "profile.csv") for n in names}
    first_last = {n: pd.read_csv(gradient_plots(n) / "first_last.csv") for n in names}
    several = len(classifier_seeds(params)) > 1  # then a trained model's seeds are one line each
    labels = {n: gradient_labels(n, with_seed=several) for n in names}
    for file_name, tables in {"profiles.csv": profiles, "first_last.csv": first_last}.items():
        with atomic_path(out / file_name) as tmp:  # every model in one long table: the overlaid DVC plots
            stack_tables(tables, labels).to_csv(tmp, index=False, float_format="%.6g")
    rms_title = "Per-layer gradient (RMS per parameter, mean over iterations)"
    save_figure(gradient_profiles(profiles, "grad_rms_mean", "RMS gradient per parameter", rms_title),
                out / "profile_rms.png")
    save_figure(gradient_profiles(profiles, "grad_l2_iter0", "gradient L2 norm",
                                  "Per-layer gradient L2 norm at the first iteration"), out / "profile_l2.png")
    save_figure(first_last_over_iterations(first_last, "grad_l2", "gradient L2 norm",
                                           "First and last layer gradient norm over iterations"), out / "grad_norm.png")
    save_figure(first_last_over_iterations(first_last, "grad_std", "gradient std",
                                           "First and last layer gradient std over iterations"), out / "grad_std.png")

    # gradients over training: one figure per (depth, variant, seed), the architectures side by side
    archs = get(params, "classifier.archs")
    recorded = {}
    with atomic_dir(out / "over_training") as folder:
        for depth, variant, seed in gradcam_keys(params):  # the (depth, variant, seed) product of the matrix
            keys = {arch: classifier_key(arch, depth, variant, seed) for arch in archs}
            gradients = {arch: pd.read_csv(classifier_gradients(key)) for arch, key in keys.items()}
            curves = {arch: read_curves(classifier_curves(key)) for arch, key in keys.items()}
            recorded |= {keys[arch]: frame for arch, frame in gradients.items()}
            title = f"Gradients over training: {net_label(depth)}, {variant}, seed {seed}"
            names = {arch: model_label(arch, depth) for arch in archs}
            save_figure(gradients_over_training(gradients, curves, title, names),
                        folder / over_training_figure(depth, variant, seed).name)
    with atomic_path(out / "over_training.csv") as tmp:
        over_training_table(recorded).to_csv(tmp, index=False, float_format="%.6g")
    print(gradient_markdown(table))


if __name__ == "__main__":
    run_cli(main)
