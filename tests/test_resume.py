"""Interrupted training resumes bit-identically; outputs are byte-reproducible; a kill leaves no debris.

The stage tests run ``stages/train_classifier.py`` as a real process on a tiny synthetic CIFAR-like
project. To stop it right after epoch k, a small driver runs the stage script unchanged (``runpy``) with
``cnnlab.training.save_torch`` wrapped so that, once the resume state of epoch k is on disk, the process
sends itself a real signal (SIGKILL or SIGINT).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from cnnlab.models.mnist import MnistCnn, MnistCnnConfig
from cnnlab.training import TrainConfig, fit
from helpers import write_tiny_project

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "stages" / "train_classifier.py"
KEY = "plain-8-relu-bn-0"
ARGS = ["--arch", "plain", "--depth", "8", "--variant", "relu-bn", "--seed", "0"]
EPOCHS = 3
STATE = Path(".cnnlab-resume/train_classifier") / f"{KEY}.pt"
#: every output train_classifier declares in dvc.yaml except the timing file (wall-clock by nature)
REPRODUCIBLE = [f"models/classifier/{KEY}.pt", f"metrics/train_classifier/{KEY}.json",
                f"plots/train_classifier/{KEY}/gradients.csv"]
TIMING = f"metrics/timing/train_classifier/{KEY}.json"

DRIVER = textwrap.dedent("""
    import os, runpy, signal, sys
    stage, after, signame, *args = sys.argv[1:]
    # a shell's background job (`cmd &`) starts with SIGINT ignored, and Python then installs no KeyboardInterrupt
    # handler: restore it, so that the test means Ctrl-C in a terminal however the suite was launched
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.path.insert(0, os.path.dirname(stage))  # what `python stages/x.py` does, for `import _env`
    import cnnlab.training as training

    save = training.save_torch

    def save_then_signal(path, obj):
        save(path, obj)
        if isinstance(obj, dict) and "optimizer" in obj and obj["epoch"] == int(after):
            os.kill(os.getpid(), getattr(signal, signame))

    training.save_torch = save_then_signal
    sys.argv = [stage, *args]
    runpy.run_path(stage, run_name="__main__")
""")


def make_project(folder: Path, **training: object) -> Path:
    """A project folder with params.yaml (tiny training settings + ``training``) and 64/32 random CIFAR-like images."""
    # grad_every=3 of 4 steps per epoch: the gradients over training, recorded on different steps of each epoch
    return write_tiny_project(folder, "data/cifar10", 64, 32, epochs=EPOCHS, batch_size=16, eval_batch_size=32,
                              show_progress=False, warmup_epochs=0, **{"grad_every": 3, **training})


def env() -> dict:
    return dict(os.environ, CNNLAB_THREADS="1", PYTHONHASHSEED="0")


def run_stage(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGE), *ARGS], cwd=folder, env=env(), capture_output=True, text=True)


def run_until(folder: Path, epoch: int, signame: str) -> subprocess.CompletedProcess:
    """Run the stage and send it ``signame`` once the resume state of ``epoch`` is written."""
    driver = folder.parent / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.run([sys.executable, str(driver), str(STAGE), str(epoch), signame, *ARGS], cwd=folder,
                          env=env(), capture_output=True, text=True)


def outputs(folder: Path) -> dict[str, bytes]:
    """Bytes of every reproducible declared output: checkpoint, metrics JSON, every file of the DVCLive folder."""
    live = folder / "dvclive/train_classifier" / KEY
    files = [*REPRODUCIBLE, *(p.relative_to(folder).as_posix() for p in sorted(live.rglob("*")) if p.is_file())]
    return {name: (folder / name).read_bytes() for name in files}


def assert_done(proc: subprocess.CompletedProcess, folder: Path, reference: dict[str, bytes]) -> None:
    assert proc.returncode == 0, proc.stderr
    got = outputs(folder)
    assert sorted(got) == sorted(reference)
    assert [name for name in reference if got[name] != reference[name]] == []
    assert not (folder / ".cnnlab-resume").exists()  # deleted once the outputs are in place
    assert list((folder / ".cnnlab-tmp").iterdir()) == []  # no temporaries, stale ones swept


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, bytes]:
    """The outputs of an uninterrupted run, checked to be byte-identical when the stage runs again."""
    folder = make_project(tmp_path_factory.mktemp("reference") / "project")
    first = run_stage(folder)
    assert first.returncode == 0, first.stderr
    assert "resuming" not in first.stdout
    result = outputs(folder)
    assert any("/plots/metrics/" in name for name in result) and len(result) >= 7
    gradients = result[REPRODUCIBLE[2]].decode().splitlines()
    assert len(gradients) > 1 and {row.split(",")[0] for row in gradients[1:]} == {"0", "1", "2", "3"}
    timing = (folder / TIMING).read_text()
    assert '"train_seconds"' in timing and '"images_per_sec"' in timing
    for name in REPRODUCIBLE:
        assert not any(word in result[name] for word in (b"train_seconds", b"images_per_sec")), name
    assert_done(run_stage(folder), folder, result)  # a forced rerun: same bytes
    return result


def test_sigkill_then_rerun_resumes_bit_identical(tmp_path, reference):
    folder = make_project(tmp_path / "project")
    killed = run_until(folder, 1, "SIGKILL")
    assert killed.returncode == -signal.SIGKILL
    assert (folder / STATE).is_file()
    live_parent = folder / "dvclive/train_classifier"  # a dependency of compare_classifiers: no debris in it
    assert not live_parent.exists() or list(live_parent.iterdir()) == []
    assert not (folder / REPRODUCIBLE[0]).exists()
    assert len(list((folder / ".cnnlab-tmp").iterdir())) >= 1  # the dead process's temporary DVCLive folder

    # the same state, truncated, in a copy of the project: detected, ignored, a fresh run
    corrupt = tmp_path / "corrupt"
    shutil.copytree(folder, corrupt)
    data = (corrupt / STATE).read_bytes()
    (corrupt / STATE).write_bytes(data[: len(data) // 2])
    # and in another copy with a changed param: ignored, saying why
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    params = yaml.safe_load((changed / "params.yaml").read_text())
    params["train_classifier"]["lr"] = 0.05
    (changed / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    resumed = run_stage(folder)
    assert f"resuming {KEY} at epoch 2/{EPOCHS}" in resumed.stdout.splitlines()
    assert_done(resumed, folder, reference)

    fresh = run_stage(corrupt)
    assert "resuming" not in fresh.stdout
    assert f"ignoring the resume state {STATE}, it cannot be read" in fresh.stderr
    assert_done(fresh, corrupt, reference)  # started over: the same result

    other = run_stage(changed)
    assert other.returncode == 0, other.stderr
    assert "resuming" not in other.stdout
    assert f"ignoring the resume state {STATE}: params changed since it was saved" in other.stderr
    assert "data" not in other.stderr and "code" not in other.stderr
    assert outputs(changed)[REPRODUCIBLE[0]] != reference[REPRODUCIBLE[0]]
    assert not (changed / ".cnnlab-resume").exists()


def test_ctrl_c_prints_one_line_exits_130_and_resumes_bit_identical(tmp_path, reference):
    folder = make_project(tmp_path / "project")
    stopped = run_until(folder, 2, "SIGINT")
    assert stopped.returncode == 130
    assert stopped.stderr.splitlines() == [f"interrupted: {KEY} stopped after 2/{EPOCHS} epochs; rerun to resume"]
    assert (folder / STATE).is_file()
    assert not (folder / "dvclive/train_classifier" / KEY).exists()
    assert list((folder / ".cnnlab-tmp").iterdir()) == []  # Ctrl-C cleans up its temporaries itself

    resumed = run_stage(folder)
    assert f"resuming {KEY} at epoch 3/{EPOCHS}" in resumed.stdout.splitlines()
    assert_done(resumed, folder, reference)


def test_fit_with_dropout_resumes_bit_identical(tmp_path):
    """Library level, a model with dropout (the forked global RNG) and Adam: stop after epoch 1, resume."""
    gen = torch.Generator().manual_seed(1)
    train = torch.randint(0, 256, (48, 1, 28, 28), generator=gen, dtype=torch.uint8), torch.arange(48) % 10
    test = torch.randint(0, 256, (16, 1, 28, 28), generator=gen, dtype=torch.uint8), torch.arange(16) % 10
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.01, optimizer="adam", device="cpu", show_progress=False)
    config = MnistCnnConfig(channels=[8, 16], dropout=0.5)

    def prepare(images: torch.Tensor, training: bool, gen: torch.Generator | None, shard=None) -> torch.Tensor:
        return images.float() / 255

    def run(stop_after: int | None = None) -> tuple[list[dict], dict]:
        torch.manual_seed(0)
        model = MnistCnn(config)
        rows: list[dict] = []

        def on_epoch(row: dict) -> None:
            rows.append({k: v for k, v in row.items() if k not in ("seconds", "images_per_sec")})
            if row["epoch"] == stop_after:
                raise KeyboardInterrupt

        fit(model, train, test, cfg, prepare, on_epoch=on_epoch, resume_path=tmp_path / "state.pt",
            resume_key={"params": "p"})
        return rows, model.state_dict()

    (tmp_path / "state.pt").unlink(missing_ok=True)
    rows, weights = run()
    (tmp_path / "state.pt").unlink()
    with pytest.raises(KeyboardInterrupt, match="stopped after 2/3 epochs; rerun to resume"):
        run(stop_after=2)  # raised before the state of epoch 2 was saved: resumes at epoch 2
    resumed_rows, resumed_weights = run()
    assert resumed_rows == rows  # restored epoch replayed to on_epoch, then epochs 2 and 3
    assert all(torch.equal(resumed_weights[k], weights[k]) for k in weights)


def test_temporaries_live_in_the_project_tmp_folder_and_stale_ones_are_swept(tmp_path):
    from cnnlab import io

    project = tmp_path / "project"
    (project / "out").mkdir(parents=True)
    (project / "dvc.yaml").write_text("stages: {}\n")
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    stale = project / ".cnnlab-tmp" / f"{dead}.{io._HOST}.x1y2.curves.tmp"  # left by a killed process
    stale.mkdir(parents=True)
    (stale / "half.tsv").write_text("step\n")
    foreign = project / ".cnnlab-tmp" / "notes.txt"  # not a temporary of ours: kept
    foreign.write_text("")
    old_layout = project / "out" / ".curves.k2j3.tmp"  # debris beside the output, from the earlier layout
    old_layout.mkdir()
    io._swept.discard((project / ".cnnlab-tmp").resolve())
    with io.atomic_dir(project / "out" / "curves") as tmp:
        assert tmp.parent == (project / ".cnnlab-tmp").resolve()
        (tmp / "a.tsv").write_text("step\n1\n")
        assert not stale.exists() and not old_layout.exists() and foreign.exists()
    with io.atomic_path(project / "out" / "curves" / "b.json") as tmp:
        assert tmp.parent == (project / ".cnnlab-tmp").resolve()
        tmp.write_text("{}")
    assert sorted(p.name for p in (project / "out").iterdir()) == ["curves"]
    assert sorted(p.name for p in (project / "out" / "curves").iterdir()) == ["a.tsv", "b.json"]
    assert [p.name for p in (project / ".cnnlab-tmp").iterdir()] == ["notes.txt"]


def test_code_digest_in_the_project_folder_ignores_modules_without_a_real_file(monkeypatch):
    """Stages run with the project as working directory; torch.classes' ``__file__`` is the bare name
    "_classes.py", which must not be taken for a project file (it crashed every training stage there)."""
    from cnnlab.resume import PROJECT, code_digest

    assert sys.modules["torch.classes"].__file__ == "_classes.py"
    monkeypatch.chdir(PROJECT)
    digest = code_digest()
    assert len(digest) == 64 and digest == code_digest()
