"""What tests share: running stages as DVC runs them, the one-line-error check, fake mirrors in the official layouts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from cnnlab.classes import CIFAR10_CLASSES
from cnnlab.data.canonical import Dataset, Split, save_dataset
from cnnlab.data.idx import write_idx
from cnnlab.data.sources import MNIST_FILES

ROOT = Path(__file__).resolve().parents[1]
STAGES = ROOT / "stages"


def stage_env(**extra: str) -> dict[str, str]:
    """The environment of a stage run in a test: one CPU thread, the CPU device, no DVC analytics."""
    return dict(os.environ, CNNLAB_THREADS="1", CNNLAB_DEVICE="cpu", DVC_NO_ANALYTICS="1", **extra)


def start_stage(cwd: Path, script: str, *args: str) -> subprocess.Popen:
    """Start ``python stages/<script> args`` in ``cwd`` (as DVC runs a stage) without waiting for it."""
    return subprocess.Popen([sys.executable, str(STAGES / script), *map(str, args)], cwd=cwd, env=stage_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    """Wait for a :func:`start_stage` process; its output as :func:`run_stage` returns it."""
    stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def run_stage(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python stages/<script> args`` in ``cwd`` and return its exit code and output."""
    return finish(start_stage(cwd, script, *args))


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str, pattern: str | None = None) -> str:
    """The stage failed as a user error must: exit 2, exactly one line on stderr, ``error: ...``, no traceback,
    holding every literal ``fragment`` (and matching the regular expression ``pattern``); returns the line."""
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if pattern is not None:
        assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def make_mnist_mirror(root: Path, n_train: int = 60, n_test: int = 20, compress: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = MNIST_FILES[split]
        suffix = ".gz" if compress else ""
        write_idx(folder / f"{images_name}{suffix}", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress)
        write_idx(folder / f"{labels_name}{suffix}", (np.arange(n) % 10).astype(np.uint8), compress)
    return root


def make_cifar_mirror(
    root: Path, per_class: dict[str, int] | None = None, as_tar: bool = False, ext: str = ".png"
) -> Path:
    per_class = per_class or {"train": 3, "test": 1}
    rng = np.random.default_rng(0)
    tree = root / "cifar10_tree" if as_tar else root / "cifar10"
    for split, n in per_class.items():
        for cls in CIFAR10_CLASSES:
            d = tree / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                cv2.imwrite(str(d / f"{i:04d}{ext}"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    if as_tar:
        (root / "cifar10").mkdir(parents=True, exist_ok=True)
        with tarfile.open(root / "cifar10" / "cifar10-jpg.tar.gz", "w:gz") as tar:
            tar.add(tree, arcname="cifar10")
    return root


def run_in(cwd: Path, args: list, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (dvc, git, ...) in ``cwd`` with the venv's tools first on PATH and DVC analytics off;
    a failure raises with its full output."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def copy_project(dest: Path) -> Path:
    """A fresh git repository in ``dest`` holding the project's tracked and untracked-but-not-ignored files,
    committed, without ``dvc.lock`` (no stage has run there yet); DVC's cache is ``dest/.dvc/cache``."""
    import shutil

    files = run_in(ROOT, ["git", "ls-files", "-co", "--exclude-standard"]).stdout.split()
    for name in files:
        src = ROOT / name
        if src.is_file() and name != "dvc.lock":
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    run_in(dest, ["git", "init", "-q"])
    git_commit(dest, "copy")
    return dest


def git_commit(repo: Path, message: str) -> None:
    """``git add -A`` and commit everything in ``repo`` (a throwaway identity)."""
    run_in(repo, ["git", "add", "-A"])
    run_in(repo, ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message])


def experiment_metrics(repo, names) -> dict[str, dict]:
    """``{experiment name: {metrics file: numbers}}`` from ``dvc exp show --json`` (classifier metrics only)."""
    import json

    rows = json.loads(run_in(repo, ["dvc", "exp", "show", "--json"]).stdout)
    found = {}
    for row in rows:
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                if rev["name"] in names:
                    found[rev["name"]] = {path: entry["data"] for path, entry in rev["data"]["metrics"].items()
                                          if path.startswith("metrics/train_classifier/") and "data" in entry}
    return found


#: the cheap corner of the pipeline, for tests of DVC machinery (queue, remote): synthetic CIFAR-10
#: (download@cifar10) and residual classifiers, one epoch each on 200 images
CHEAP_TARGETS = ["download@cifar10", "train_classifier"]
CHEAP_SETTINGS = {
    "data.source": "synthetic",
    "data.cifar10.train_size": 200,
    "data.cifar10.test_size": 100,
    "classifier.archs": "[residual]",
    "classifier.variants": "[relu-bn]",
    "train_classifier.epochs": 1,
    "train_classifier.batch_size": 32,
    "train_classifier.show_progress": "false",
}


def write_tiny_project(folder: Path, dataset: str, n_train: int, n_test: int, **training: object) -> Path:
    """``folder/params.yaml`` (the project's, with ``training`` merged into ``train_classifier``) and a canonical
    CIFAR-10 folder ``folder/dataset`` of ``n_train`` / ``n_test`` seeded random images, labels cycling 0..9."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train_classifier"].update(training)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    gen = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8), torch.arange(n) % 10)

    save_dataset(Dataset("cifar10", list(CIFAR10_CLASSES), split(n_train), split(n_test), "synthetic"),
                 folder / dataset)
    return folder


def torchvision_loaded_after(*steps: str) -> list[bool]:
    """Run the Python ``steps`` one after another in a fresh interpreter in the project root; after each, whether
    torchvision has been imported (its import costs ~1.8 s of start-up, which stages that do not need it avoid)."""
    probe = "; print('torchvision' in __import__('sys').modules); "
    out = subprocess.run([sys.executable, "-c", probe.join(steps) + probe], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    return [word == "True" for word in out]
