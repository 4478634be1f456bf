"""The time-to-accuracy benchmark as a real process on a tiny synthetic CIFAR-like folder: what it trains, when it
stops, the ratio it prints, the JSON it writes, and its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnlab.io import read_json
from helpers import ROOT, assert_one_line_error, stage_env, write_tiny_project

BENCHMARK = ROOT / "benchmarks" / "time_to_accuracy.py"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """params.yaml with small batches and 256 / 64 random CIFAR-like images (the old recipe's batch is 128)."""
    return write_tiny_project(tmp_path_factory.mktemp("tta"), "cifar10", 256, 64, batch_size=32, eval_batch_size=32,
                              show_progress=False)


def run(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARK), "--data", "cifar10", "--depth", "8", *args], cwd=project,
                          env=stage_env(), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("order", [["old", "new"], ["new", "old"]])
def test_both_recipes_stop_at_the_target_and_the_ratio_is_printed(project, order):
    proc = run(project, "--target", "0.01", "--recipes", *order, "--out", "out.json")
    assert proc.returncode == 0, proc.stderr
    results = read_json(project / "out.json")["results"]
    assert [r["recipe"] for r in results] == order
    old, new = ({r["recipe"]: r for r in results}[name] for name in ("old", "new"))
    # every epoch reaches 1 % on 10 classes: each recipe stops after its first epoch
    assert old["epochs_run"] == new["epochs_run"] == old["epochs_to_target"] == new["epochs_to_target"] == 1
    assert old["epochs_planned"] == 30 and old["precision"] == "fp32"  # the recipe before issue #14, on the CPU
    assert new["epochs_planned"] == yaml.safe_load((project / "params.yaml").read_text())["train_classifier"]["epochs"]
    ratio = old["minutes_to_target"] / new["minutes_to_target"]
    assert f"time to 0.01 (test accuracy): old / new = {ratio:.2f}x" in proc.stdout


def test_epochs_sets_the_new_recipes_schedule_and_full_runs_it_all(project):
    proc = run(project, "--recipes", "new", "--epochs", "3", "--full", "--holdout", "40", "--out", "new.json")
    assert proc.returncode == 0, proc.stderr
    assert "216 training images, 40 held-out images" in proc.stdout
    (new,) = read_json(project / "new.json")["results"]
    history = new["history"]
    assert new["epochs_planned"] == new["epochs_run"] == 3 and [row["epoch"] for row in history] == [1, 2, 3]
    assert history[0]["elapsed"] < history[1]["elapsed"] < history[2]["elapsed"]
    assert history[-1]["lr"] < history[0]["lr"]  # the 3-epoch schedule decays within the 3 epochs


def test_set_changes_the_new_recipes_values(project):
    common = ("--recipes", "new", "--epochs", "2", "--full", "--set", "lr=0.05")
    runs = {}
    windows = ("--set", "small_crop_epochs=1", "--set", "small_crop_size=20")
    for name, extra in {"windows": windows, "whole": ()}.items():
        proc = run(project, *common, *extra, "--out", f"{name}.json")
        assert proc.returncode == 0, proc.stderr
        (runs[name],) = read_json(project / f"{name}.json")["results"]
    for result in runs.values():
        assert result["epochs_planned"] == 2 and max(row["lr"] for row in result["history"]) <= 0.05
    # same seed, same initial weights and data order: only the 20x20 windows of epoch 1 make the runs differ
    assert runs["windows"]["history"][0]["train_loss"] != runs["whole"]["history"][0]["train_loss"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--set", "batch=64"], "--set batch: not a train_classifier key of params.yaml; use one of epochs, "),
    (["--set", "lr"], "'lr' is not KEY=VALUE"),
    (["--epochs", "3", "--set", "small_crop_epochs=3"],
     "small_crop_epochs=3 leaves no full-size epoch of the 3: use at most 2"),
    (["--epochs", "0"], "--epochs 0 must be at least 1"),
    (["--target", "1.5"], "--target 1.5 must be in (0, 1]"),
    (["--recipes", "new", "new"], "names a recipe twice"),
])
def test_bad_arguments_are_one_line_errors(project, args, fragment):
    assert_one_line_error(run(project, *args), fragment)
