"""Training with DVCLive curves: the part every trainer stage shares.

:func:`fit_with_curves` runs :func:`cnnlab.training.fit` and logs each epoch's losses, accuracies
and learning rate with DVCLive (x axis = epoch, 1-based) into ``live_dir``, which is written
atomically (a crash leaves the previous curves, not half of new ones). DVCLive's own scalar summary
is dropped: the scalar results go to ``metrics/`` as the stage's metrics JSON (:func:`result_metrics`).
The curves hold no wall-clock figures, so two runs, or an interrupted and resumed run
(``resume_path``/``resume_key`` of :func:`cnnlab.training.fit`, which replays the restored epochs), write
the same bytes; the timing goes to a separate file (:func:`timing_metrics`) that no stage depends on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from dvclive import Live

from cnnlab import distributed
from cnnlab.errors import UserError
from cnnlab.io import atomic_dir
from cnnlab.training import TrainResult, fit

#: history field -> DVCLive metric name: one TSV per name, ``<live_dir>/plots/metrics/<name>.tsv`` with the
#: columns ``step`` (the epoch) and ``<name>``, so each file's plot is labelled by its own column.
CLASSIFICATION_CURVES = {"train_loss": "train_loss", "test_loss": "test_loss", "train_acc": "train_accuracy",
                         "test_acc": "test_accuracy", "lr": "lr"}
SEGMENTATION_CURVES = {**CLASSIFICATION_CURVES, "train_acc": "train_pixel_accuracy", "test_acc": "test_pixel_accuracy"}


def fit_with_curves(live_dir: str | Path, *fit_args: Any, curves: dict[str, str] = CLASSIFICATION_CURVES,
                    **fit_kwargs: Any) -> TrainResult:
    """``fit(*fit_args, **fit_kwargs)`` with per-epoch DVCLive curves in ``live_dir`` (rebuilt from the
    restored history when ``fit`` resumes). Under torchrun only rank 0 writes them."""
    if not distributed.is_main():
        return fit(*fit_args, **fit_kwargs)
    with atomic_dir(live_dir) as tmp:
        with Live(str(tmp), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            def on_epoch(row: dict) -> None:
                live.step = row["epoch"]
                for field, name in curves.items():
                    live.log_metric(name, row[field])

            result = fit(*fit_args, on_epoch=on_epoch, **fit_kwargs)
        (tmp / "metrics.json").unlink(missing_ok=True)
    return result


def read_curves(live_dir: str | Path, curves: dict[str, str] = CLASSIFICATION_CURVES) -> pd.DataFrame:
    """The curves :func:`fit_with_curves` wrote to ``live_dir``: one row per epoch, columns ``epoch`` and
    the DVCLive names (``train_loss``, ``test_accuracy``, ...)."""
    table = None
    for name in curves.values():
        path = Path(live_dir) / "plots" / "metrics" / f"{name}.tsv"
        if not path.is_file():
            raise UserError(f"{path} is missing: rerun the training stage that writes {live_dir}")
        frame = pd.read_csv(path, sep="\t").rename(columns={"step": "epoch"})[["epoch", name]]
        table = frame if table is None else table.merge(frame, on="epoch", how="outer")
    return table


def result_metrics(result: TrainResult, **extra: Any) -> dict:
    """The JSON-ready scalar results of a training run (floats rounded to 6 digits) plus ``extra``; no
    wall-clock figures (:func:`timing_metrics`), so the same params give the same bytes."""
    summary = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in result.summary().items()}
    return {**extra, "diverged": result.diverged_epoch is not None, **summary}


def timing_metrics(result: TrainResult) -> dict:
    """The wall-clock figures of a training run (``train_seconds``, ``images_per_sec``, rounded), for the
    stage's timing file, and ``resumed_epoch`` (epochs restored from an interrupted run; 0 if none)."""
    return {**{k: round(v, 3) for k, v in result.timing().items()}, "resumed_epoch": result.resumed_epoch}


def result_line(name: str, result: TrainResult) -> str:
    state = f"DIVERGED in epoch {result.diverged_epoch}" if result.diverged_epoch is not None else "done"
    return (f"{name}: {state}; test accuracy {result.test_acc:.4f} (best {result.best_test_acc} at epoch "
            f"{result.best_epoch}), {result.images_per_sec:.0f} images/s")
