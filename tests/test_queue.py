"""Section "Many experiments: DVC's queue": a depth sweep queued with ``dvc exp run --queue`` and run by two
parallel workers (``CNNLAB_JOBS=2 dvc queue start -j 2``) gives the same metrics as the same experiments run
one after the other, and the workers' stages split the cores (threads = cores // jobs)."""

from __future__ import annotations

import time

import pytest

from cnnlab.device import thread_count
from helpers import CHEAP_SETTINGS, CHEAP_TARGETS, ROOT, copy_project, experiment_metrics, run_in

TARGETS = CHEAP_TARGETS
SETTINGS = CHEAP_SETTINGS | {"train_classifier.epochs": 2}
DEPTHS = (8, 14)


def overrides(depth: int) -> list[str]:
    return [a for k, v in {**SETTINGS, "classifier.depths": f"[{depth}]"}.items() for a in ("-S", f"{k}={v}")]


def wait_for_queue(repo, names, timeout=240.0) -> str:
    """Poll ``dvc queue status`` until every experiment in ``names`` succeeded (fail on a failure or timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        status = run_in(repo, ["dvc", "queue", "status"]).stdout
        rows = {line.split()[1]: line.split()[-1] for line in status.splitlines()
                if len(line.split()) >= 4 and line.split()[1] in names}
        assert not any(s == "Failed" for s in rows.values()), status
        if len(rows) == len(names) and all(s == "Success" for s in rows.values()):
            return status
        assert time.monotonic() < deadline, f"queue not done after {timeout} s:\n{status}"
        time.sleep(2)


@pytest.mark.slow  # about 95 s on the 2 shared cores
def test_queued_sweep_in_parallel_equals_sequential_runs(tmp_path, monkeypatch):
    repo = copy_project(tmp_path)
    # the environment of `dvc queue start` is what the workers' stages see
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("CNNLAB_DEVICE", "cpu")
    monkeypatch.delenv("CNNLAB_THREADS", raising=False)
    queued = [f"q{d}" for d in DEPTHS]
    for depth, name in zip(DEPTHS, queued, strict=True):
        run_in(repo, ["dvc", "exp", "run", "--queue", "-n", name, *overrides(depth), *TARGETS])
    monkeypatch.setenv("CNNLAB_JOBS", "2")
    try:
        run_in(repo, ["dvc", "queue", "start", "-j", "2"])
        wait_for_queue(repo, queued)
    finally:
        run_in(repo, ["dvc", "queue", "stop"], check=False)

    # each worker's stage used cores // 2 threads: CNNLAB_JOBS reached it through `dvc queue start`
    expected_threads = thread_count()
    for depth, name in zip(DEPTHS, queued, strict=True):
        log = run_in(repo, ["dvc", "queue", "logs", name]).stdout
        assert f"residual-{depth}-relu-bn-0: " in log and f"{expected_threads} CPU threads" in log, log

    # the same experiments one after the other in the workspace (-f: train, not restore from the run-cache),
    # with the same thread count: on the CPU the float sums of a convolution depend on how many threads share it
    sequential = [f"s{d}" for d in DEPTHS]
    for depth, name in zip(DEPTHS, sequential, strict=True):
        out = run_in(repo, ["dvc", "exp", "run", "-f", "-n", name, *overrides(depth), *TARGETS]).stdout
        assert f"Running stage 'train_classifier@residual-{depth}-relu-bn-0'" in out, out

    metrics = experiment_metrics(repo, {*queued, *sequential})
    for depth in DEPTHS:
        path = f"metrics/train_classifier/residual-{depth}-relu-bn-0.json"
        q, s = metrics[f"q{depth}"], metrics[f"s{depth}"]
        assert set(q) == {path} and set(s) == {path}, (q, s)
        assert q[path] == s[path]
        assert q[path]["model"] == f"residual-{depth}-relu-bn-0" and 0.0 <= q[path]["test_acc"] <= 1.0
    # and the two depths are different models (the comparison above is not vacuous)
    assert metrics["q8"] != metrics["q14"]
