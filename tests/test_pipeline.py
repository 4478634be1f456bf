"""The DVC pipeline end to end, in a temporary copy of the repository, on tiny synthetic data.

Checks what users rely on: `dvc exp run -S ...` runs every stage, a second `dvc repro` is a no-op, a
param change reruns only the stages that read it, and a bad param fails with one line and exit 2.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "data.source": "synthetic",
    "data.mnist.train_size": 200,
    "data.mnist.test_size": 50,
    "data.cifar10.train_size": 200,
    "data.cifar10.test_size": 50,
    "segment_mnist.canvas.count": 8,
    "classifier.depths": "[8]",
    "train_classifier.epochs": 1,
    "train_classifier.batch_size": 50,
    "train_classifier.show_progress": "false",
    "gradient_matrix.depths": "[8]",
    "gradient_matrix.inits": "[default]",
    "gradient_stats.iterations": 2,
    "gradient_stats.batch_size": 16,
    "gradcam.n_eval": 20,
    "gradcam.deletion_steps": 4,
    "train_mnist_cnn.training.epochs": 1,
    "train_mnist_cnn.training.show_progress": "false",
    "train_fcn.train_size": "null",
    "train_fcn.training.epochs": 1,
    "train_fcn.upsample.training.epochs": 1,
    "train_fcn.training.show_progress": "false",
    "train_fcn.confusion_pixels": 1100,
}


def run(args, cwd, check=True):
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git+DVC copy of the project's tracked and untracked-but-not-ignored files."""
    dest = tmp_path_factory.mktemp("repo")
    files = run(["git", "ls-files", "-co", "--exclude-standard"], ROOT).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    run(["git", "init", "-q"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"], dest)
    (dest / "dvc.lock").unlink(missing_ok=True)
    overrides = [a for k, v in TINY.items() for a in ("-S", f"{k}={v}")]
    proc = run(["dvc", "exp", "run", *overrides], dest)
    return dest, proc.stdout


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
