import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(autouse=True)
def _torch_threads():
    """Keep tests light on the 2-core machine and deterministic."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield


# --- the whole pipeline on tiny synthetic data, once per session (test_pipeline.py, test_browser.py) ----

#: `dvc exp run -S` overrides for a run of every stage in about two minutes. Small, but large enough
#: that every trained stage learns (tests/test_pipeline.py checks it beats chance by a wide margin).
TINY = {
    "data.source": "synthetic",
    "data.mnist.train_size": 1000,
    "data.mnist.test_size": 200,
    "data.cifar10.train_size": 1000,
    "data.cifar10.test_size": 200,
    "segment_mnist.canvas.count": 8,
    "classifier.depths": "[8, 18]",  # 18: ResNet-18 (narrow: resnet18_width) without / with skips
    "classifier.seeds": "[0, 1]",  # two training seeds per model: the tables show mean ± std (test_pipeline.py)
    "train_classifier.epochs": 10,
    "train_classifier.batch_size": 32,
    "train_classifier.lr": 0.05,
    "train_classifier.show_progress": "false",
    "train_classifier.resnet18_width": 0.125,
    "gradient_matrix.depths": "[8]",
    "gradient_matrix.inits": "[default]",
    "gradient_stats.iterations": 2,
    "gradient_stats.batch_size": 16,
    "gradcam.n_eval": 100,
    "gradcam.deletion_steps": 4,
    "train_mnist_cnn.training.epochs": 2,
    "train_mnist_cnn.training.batch_size": 32,
    "train_mnist_cnn.training.show_progress": "false",
    "train_fcn.train_size": 800,
    "train_fcn.class_weighting": "inverse_sqrt_frequency",
    "train_fcn.training.epochs": 2,
    "train_fcn.training.batch_size": 16,
    "train_fcn.upsample.training.epochs": 4,
    "train_fcn.training.show_progress": "false",
    "train_fcn.confusion_pixels": 1100,
}


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory):
    """(folder, output of `dvc exp run`): a git+DVC copy of the project's tracked and
    untracked-but-not-ignored files, after the whole pipeline ran on tiny synthetic data."""
    from helpers import run_in

    dest = tmp_path_factory.mktemp("repo")
    files = run_in(ROOT, ["git", "ls-files", "-co", "--exclude-standard"]).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    run_in(dest, ["git", "init", "-q"])
    run_in(dest, [*git, "add", "-A"])
    run_in(dest, [*git, "commit", "-qm", "copy"])
    (dest / "dvc.lock").unlink(missing_ok=True)
    overrides = [a for k, v in TINY.items() for a in ("-S", f"{k}={v}")]
    proc = run_in(dest, ["dvc", "exp", "run", *overrides])
    return dest, proc.stdout
