"""torchrun + DistributedDataParallel: 2 CPU processes (gloo) against 1, resume under DDP, errors on any rank.

The stage tests run ``stages/train_classifier.py`` as real processes on the tiny synthetic project of
``tests/test_resume.py``, either with ``train_classifier.nproc: 2`` (the stage starts itself under
torchrun) or under ``python -m torch.distributed.run`` with a small driver script as the worker, which
injects a fault (SIGKILL of rank 0 after epoch k, or a UserError on rank 0 only) and then runs the stage
unchanged.

Tolerance: 1 and 2 processes take the same steps on the same images with the same augmentation and
BatchNorm statistics of the whole global batch; in float64 the gradients agree to 1e-15
(:func:`test_sync_batchnorm_and_ddp_gradients_equal_one_process`). In float32 the summation order of the
reductions (gradient all-reduce, BatchNorm statistics) differs, so the weights differ by rounding
(~1e-7 relative) after the first step and SGD amplifies that a little every step: the stage test
allows 1e-3 on losses and one image on accuracies (the measured gaps are ~1e-5).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from test_resume import ARGS, KEY, REPRODUCIBLE, STAGE, env, make_project, outputs

LOSS_TOL = 1e-3
DRIVER = textwrap.dedent("""
    import os, runpy, signal, sys
    stage, mode, epoch = os.environ["DRIVER_STAGE"], os.environ["DRIVER_MODE"], int(os.environ["DRIVER_EPOCH"])
    sys.path.insert(0, os.path.dirname(stage))  # what `python stages/x.py` does, for `import _env`
    import cnnlab.training as training
    from cnnlab.errors import UserError

    save, fit = training.save_torch, training.fit

    def save_then_kill(path, obj):
        save(path, obj)
        if mode == "kill" and isinstance(obj, dict) and "optimizer" in obj and obj["epoch"] == epoch:
            os.kill(os.getpid(), signal.SIGKILL)

    def fit_failing_on_rank0(*args, **kwargs):
        if mode == "fail-rank0" and os.environ.get("RANK") == "0":
            raise UserError("injected failure on rank 0 only")
        return fit(*args, **kwargs)

    training.save_torch, training.fit = save_then_kill, fit_failing_on_rank0
    sys.argv = [stage, *sys.argv[1:]]
    runpy.run_path(stage, run_name="__main__")
""")


def set_params(folder: Path, **section: object) -> None:
    params = yaml.safe_load((folder / "params.yaml").read_text())
    params["train_classifier"].update(section)
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_stage(folder: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STAGE), *ARGS], cwd=folder, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def torchrun_driver(folder: Path, mode: str, epoch: int = 0, timeout: float = 300) -> subprocess.CompletedProcess:
    """The stage as 2 torchrun workers, each through the fault-injecting driver."""
    driver = folder.parent / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(driver), *ARGS],
        cwd=folder, env=dict(env(), DRIVER_STAGE=str(STAGE), DRIVER_MODE=mode, DRIVER_EPOCH=str(epoch)),
        capture_output=True, text=True, timeout=timeout,
    )


def curves(folder: Path) -> dict[str, list[float]]:
    live = folder / "dvclive/train_classifier" / KEY / "plots/metrics"
    out = {}
    for path in sorted(live.glob("*.tsv")):
        rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
        assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)), path  # every epoch once
        out[path.stem] = [float(r[1]) for r in rows]
    return out


#: the reference runs' train_classifier settings: fp32 (amp off; the tolerances below are fp32 rounding, bf16 would
#: widen them to ~1e-4 per step), and the first epoch on 24x24 windows (progressive resizing: their draws are
#: sharded like the crops')
REFERENCE = {"batch_size": 32, "lr": 0.05, "amp": False, "small_crop_epochs": 1}


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> tuple[Path, Path]:
    """The same tiny run trained by 1 process and by 2 (``nproc: 2``); batch 32 of 64 images, 3 epochs (the first
    on small windows: progressive resizing)."""
    base = tmp_path_factory.mktemp("ddp")
    one, two = make_project(base / "one"), make_project(base / "two")
    for folder, nproc in ((one, 1), (two, 2)):
        set_params(folder, **REFERENCE, nproc=nproc)
        proc = run_stage(folder)
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
    return one, two


@pytest.mark.slow  # three stage runs, two of them under torchrun: keeps .ci/run's make test within its budget
def test_two_processes_match_one_process(projects):
    one, two = projects
    assert "train_classifier.nproc=2: starting 2 processes with torchrun --standalone" in run_log(two)
    single, double = curves(one), curves(two)
    assert sorted(single) == sorted(double) and len(single["train_loss"]) == 3
    for name in ("train_loss", "test_loss"):
        gaps = [abs(a - b) for a, b in zip(single[name], double[name], strict=True)]
        assert max(gaps) < LOSS_TOL, (name, gaps)
        assert gaps[0] < 1e-5  # the first epoch is two steps from identical weights: rounding only
    for name, n in (("train_accuracy", 64), ("test_accuracy", 32)):
        assert all(abs(a - b) <= 1 / n + 1e-9 for a, b in zip(single[name], double[name], strict=True)), name
    # the checkpoints hold the same weights up to the rounding gap, with the original (non-synced) BN layers
    a = torch.load(one / REPRODUCIBLE[0], weights_only=True)["state_dict"]
    b = torch.load(two / REPRODUCIBLE[0], weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) < 1e-2
    counters = [k for k in a if k.endswith("num_batches_tracked")]
    assert counters and all(a[k].item() == b[k].item() == 6 for k in counters)  # 3 epochs x 2 global batches
    assert not (two / ".cnnlab-resume").exists()


def run_log(folder: Path) -> str:
    """Rerun the finished 2-process project's stage and return its stdout (outputs exist: a quick check that the
    run starts torchrun and writes the same bytes again)."""
    before = outputs(folder)
    proc = run_stage(folder)
    assert proc.returncode == 0, proc.stderr
    assert outputs(folder) == before  # two 2-process runs: byte-identical outputs
    return proc.stdout


@pytest.mark.slow
def test_sigkill_under_ddp_then_rerun_resumes_bit_identical(tmp_path, projects):
    _, reference = projects
    folder = make_project(tmp_path / "project")
    set_params(folder, **REFERENCE, nproc=2)
    killed = torchrun_driver(folder, "kill", epoch=1)
    assert killed.returncode != 0
    assert (folder / ".cnnlab-resume/train_classifier" / f"{KEY}.pt").is_file()
    assert not (folder / REPRODUCIBLE[0]).exists()
    resumed = run_stage(folder)  # nproc: 2 -> torchrun again
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {KEY} at epoch 2/3" in resumed.stdout.splitlines()
    assert outputs(folder) == outputs(reference)
    assert not (folder / ".cnnlab-resume").exists()


def test_bad_params_fail_in_one_line_before_any_process_starts(tmp_path):
    folder = make_project(tmp_path / "project")
    for params, message in (
        ({"nproc": 2, "lr": -1}, "error: params.yaml: train_classifier: training lr=-1"),
        ({"nproc": 0}, "error: params.yaml: train_classifier.nproc=0 must be >= 1"),
        ({"nproc": 2, "batch_size": 15},
         "error: batch_size=15 cannot be split over train_classifier.nproc=2 processes: use a batch size divisible"),
    ):
        set_params(folder, **params)
        proc = run_stage(folder, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(message), proc.stderr
        assert "starting" not in proc.stdout
        set_params(folder, nproc=1, lr=0.1, batch_size=16)
    assert not (folder / "models").exists()


@pytest.mark.slow  # ~40 s of torchrun start-up and shut-down
def test_failure_on_rank0_only_ends_every_rank_promptly(tmp_path):
    """Rank 0 fails before training while rank 1 waits for it in the process group set-up: torchrun ends rank 1
    at once (not after the 10-minute set-up timeout); nothing is written."""
    folder = make_project(tmp_path / "project")
    start = time.monotonic()
    proc = torchrun_driver(folder, "fail-rank0", timeout=120)
    assert time.monotonic() - start < 60
    assert proc.returncode != 0
    assert "error: injected failure on rank 0 only" in proc.stderr.splitlines()
    assert not (folder / "models").exists()
    assert not any(p.is_file() for p in (folder / "dvclive").rglob("*"))  # at most the empty parent folder


def test_sync_batchnorm_and_ddp_gradients_equal_one_process(tmp_path):
    """In float64, one DDP step of 2 gloo processes on halves of a batch (synchronised BN, each rank's loss its
    share of the global mean) gives the gradients and BN running statistics of one process on the whole batch;
    afterwards the model holds its original BatchNorm layers again."""
    script = tmp_path / "check.py"
    script.write_text(textwrap.dedent("""
        import copy, torch, torch.nn.functional as F
        from torch import nn
        from cnnlab import distributed
        from cnnlab.models.cifar import CifarNetConfig, build_cifar_net
        from cnnlab.params.classifiers import model_config
        torch.manual_seed(0)
        model = build_cifar_net(CifarNetConfig.from_dict({**model_config("residual", 8, "relu-bn"),
                                                          "num_classes": 10})).double()
        ref = copy.deepcopy(model)
        x, y = torch.randn(16, 3, 32, 32, dtype=torch.float64), torch.arange(16) % 10
        assert distributed.setup(torch.device("cpu"))
        r, w = distributed.rank(), distributed.world_size()
        with distributed.sync_batchnorm(model, torch.device("cpu")):
            assert sum(isinstance(m, distributed.CpuSyncBatchNorm) for m in model.modules()) > 0
            rows = slice(r * 16 // w, (r + 1) * 16 // w)
            net = nn.parallel.DistributedDataParallel(model)  # kept alive: its reducer averages the gradients
            F.cross_entropy(net(x[rows]), y[rows]).backward()
        F.cross_entropy(ref(x), y).backward()
        assert not any(isinstance(m, distributed.CpuSyncBatchNorm) for m in model.modules())
        grads = max((a.grad - b.grad).abs().max().item() for a, b in zip(model.parameters(), ref.parameters()))
        buffers = max((a.double() - b.double()).abs().max().item() for a, b in zip(model.buffers(), ref.buffers()))
        print("GAPS", grads, buffers)
        distributed.teardown()
    """))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           str(script)], env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    gaps = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("GAPS")]
    assert len(gaps) == 2
    assert all(float(g) < 1e-12 for pair in gaps for g in pair), gaps


def test_sharded_augmentation_draws_equal_whole_batch_draws():
    """A rank's rows of the global batch get exactly the crops and flips one process draws for them."""
    from cnnlab.augment import make_prepare

    prepare = make_prepare([0.5] * 3, [0.25] * 3, augment=True, channels_last=False)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    whole = prepare(images, True, torch.Generator().manual_seed(7))
    parts = [prepare(images[s : s + 4], True, torch.Generator().manual_seed(7), shard=(s, 8)) for s in (0, 4)]
    assert torch.equal(torch.cat(parts), whole)
    assert not torch.equal(parts[1], prepare(images[4:], True, torch.Generator().manual_seed(7)))


def test_threads_split_over_local_processes(monkeypatch):
    from cnnlab.device import configure_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("CNNLAB_THREADS", "8")
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
        assert configure_threads() == 2
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
        assert configure_threads() == 1
        monkeypatch.delenv("LOCAL_WORLD_SIZE")
        assert configure_threads() == 8
    finally:
        torch.set_num_threads(before)

