"""The DVC pipeline end to end, in a temporary copy of the repository, on tiny synthetic data
(the ``tiny_pipeline`` fixture of conftest.py, shared with test_browser.py).

Checks what users rely on: `dvc exp run -S ...` runs every stage, a second `dvc repro` is a no-op, a
param change reruns only the stages that read it, and a bad param fails with one line and exit 2.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from helpers import run_in


@pytest.fixture(scope="module")
def repo(tiny_pipeline):
    return tiny_pipeline


def run(args, cwd, check=True):
    return run_in(cwd, args, check=check)


def test_all_stages_ran_and_wrote_outputs(repo):
    dest, out = repo
    stages = run(["dvc", "stage", "list", "--name-only"], dest).stdout.split()
    assert len(stages) >= 8, stages
    for stage in stages:
        assert f"Running stage '{stage}'" in out, f"{stage} did not run:\n{out}"
    for path in [
        "metrics/compare_classifiers.json",
        "metrics/gradient_stats/plain-8-tanh-nobn-default.json",
        "metrics/gradient_stats/trained-residual-8-relu-bn.json",
        "tables/classifier_accuracy.md",
        "metrics/gradcam/8-relu-bn.json",
        "metrics/train_mnist_cnn.json",
        "metrics/train_fcn/upsample.json",
        "metrics/train_fcn/fcn8s.json",
        "plots/train_fcn/fcn8s/canvases.png",
        "plots/gradcam/8-relu-bn/heatmaps.png",
        "data/mnist/manifest.json",
        "data/cifar10/manifest.json",
        "data/segmented_mnist/canvases.pt",
        "plots/segment_mnist/digits.png",
        "plots/segment_mnist/canvases.png",
    ]:
        assert (dest / path).exists(), path


def test_second_repro_is_a_noop(repo):
    dest, _ = repo
    out = run(["dvc", "repro"], dest).stdout
    assert "Data and pipelines are up to date" in out, out


def test_param_change_reruns_only_dependent_stages(repo):
    dest, _ = repo
    out = run(["dvc", "exp", "run", "-S", "segment_mnist.canvas.count=9"], dest).stdout
    assert "Running stage 'segment_mnist'" in out, out
    for stage in ("download@mnist", "download@cifar10"):
        assert f"Running stage '{stage}'" not in out, out
    assert "count: 9" in (dest / "dvc.lock").read_text()


def test_bad_param_fails_with_one_line(repo):
    dest, _ = repo
    shutil.copy(dest / "params.yaml", dest / "params.bak")
    try:
        text = (dest / "params.yaml").read_text().replace("threshold: 0.5", "threshold: 1.5")
        (dest / "params.yaml").write_text(text)
        proc = run(["dvc", "repro", "segment_mnist"], dest, check=False)
        assert proc.returncode != 0
        assert "error: params.yaml: segment_mnist.threshold=1.5 must lie in (0.0, 1.0)" in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr + proc.stdout
    finally:
        shutil.move(dest / "params.bak", dest / "params.yaml")


def test_plots_diff_overlays_two_experiments_with_different_depths(repo):
    """`dvc plots diff <exp1> <exp2>` draws both sweeps' curves in one plot (colour = model, dash = revision)."""
    dest, out = repo
    first = re.search(r"Ran experiment\(s\): (\S+)", out).group(1)
    run(["dvc", "exp", "run", "-n", "deeper", "-S", "classifier.depths=[14]"], dest)
    plots = json.loads(run(["dvc", "plots", "diff", first, "deeper", "--json"], dest).stdout)["data"]
    for plot_id in ("cifar10_test_accuracy", "cifar10_accuracy_vs_depth"):
        (entry,) = plots[plot_id]
        rows = entry["content"]["data"]["values"]
        assert {r["rev"] for r in rows} == {first, "deeper"}, plot_id
        models = {(r["rev"], r["model"]) for r in rows}
        if plot_id == "cifar10_test_accuracy":
            assert {(first, "plain-8"), (first, "residual-8"), ("deeper", "plain-14"), ("deeper", "residual-14")} <= models
