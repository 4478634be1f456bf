"""Section "Many machines: a shared DVC remote and run-cache", and the models as DVC artifacts.

Clone A trains (cheap stages on tiny synthetic data) and ``dvc push --run-cache``es to a folder remote; a fresh
``git clone`` B that ``dvc pull --run-cache``s runs no stage command: neither ``dvc repro`` of A's committed
run nor ``dvc exp run --pull`` of an experiment A ran and pushed but never committed (restored from the
run-cache).
The trained classifier, declared under ``artifacts:`` in dvc.yaml and tagged with a GTO version, resolves
through ``dvc.api.artifacts_show`` and downloads through ``dvc artifacts get``."""

from __future__ import annotations

import pytest
import yaml

from helpers import CHEAP_SETTINGS, CHEAP_TARGETS, ROOT, copy_project, git_commit, run_in

TARGETS = CHEAP_TARGETS
SETTINGS = CHEAP_SETTINGS
ARTIFACT = "classifier-residual-20-relu-bn-0"
MODEL = "models/classifier/residual-20-relu-bn-0.pt"  # the artifact of seed 0


def overrides(depth: int) -> list[str]:
    return [a for k, v in {**SETTINGS, "classifier.depths": f"[{depth}]"}.items() for a in ("-S", f"{k}={v}")]


def assert_ran_nothing(out: str) -> None:
    assert "Running stage" not in out, out
    assert "> python stages/" not in out and "parameters," not in out, out  # no stage script ran


@pytest.mark.slow  # ~40 s of dvc subprocesses
def test_pull_with_run_cache_makes_repro_a_no_op_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("CNNLAB_DEVICE", "cpu")
    monkeypatch.setenv("CNNLAB_THREADS", "1")
    a, b, store = tmp_path / "a", tmp_path / "b", tmp_path / "store"
    a.mkdir()
    copy_project(a)
    run_in(a, ["dvc", "remote", "add", "-d", "store", store])
    # an experiment that is never committed (only the run-cache remembers it), then the committed run
    run_in(a, ["dvc", "exp", "run", "-n", "depth8", *overrides(8), *TARGETS])
    run_in(a, ["dvc", "push", "--run-cache"])  # the run entries, and the outputs now in the workspace
    model8, metrics8 = "models/classifier/residual-8-relu-bn-0.pt", "metrics/train_classifier/residual-8-relu-bn-0.json"
    a_outputs8 = (a / model8).read_bytes(), (a / metrics8).read_bytes()
    out = run_in(a, ["dvc", "exp", "run", "-n", "depth20", *overrides(20), *TARGETS]).stdout
    assert "Running stage 'train_classifier@residual-20-relu-bn-0'" in out, out
    git_commit(a, "tiny run: residual-20 on synthetic CIFAR-10")  # dvc.lock, params.yaml and metrics/ (git)
    assert run_in(a, ["git", "ls-files", "metrics/train_classifier/residual-20-relu-bn-0.json"]).stdout.strip()
    run_in(a, ["git", "tag", "-a", f"{ARTIFACT}@v1.0.0", "-m", "register"])  # a GTO version of the artifact
    run_in(a, ["dvc", "push", "--run-cache"])

    run_in(tmp_path, ["git", "clone", "-q", a, b])
    assert not (b / MODEL).exists()
    run_in(b, ["dvc", "remote", "add", "-d", "-f", "store", store])  # the same remote (already in .dvc/config)
    run_in(b, ["dvc", "pull", "--run-cache", *TARGETS])
    assert (b / MODEL).read_bytes() == (a / MODEL).read_bytes()

    out = run_in(b, ["dvc", "repro", *TARGETS]).stdout
    assert_ran_nothing(out)
    assert "didn't change, skipping" in out, out
    assert run_in(b, ["git", "status", "--porcelain", "--untracked-files=no"]).stdout == ""

    # A's uncommitted experiment: restored from the pulled run-cache, not recomputed (--pull: its outputs are
    # on the remote, not yet in B's cache)
    out = run_in(b, ["dvc", "exp", "run", "--pull", *overrides(8), *TARGETS]).stdout
    assert_ran_nothing(out)
    # (DVC 3.67 says "is cached - skipping run" when the outputs are in the local cache, this when it fetches them)
    assert "Pulling data for stage: 'train_classifier@residual-8-relu-bn-0'" in out, out
    assert ((b / model8).read_bytes(), (b / metrics8).read_bytes()) == a_outputs8

    # the model registry view of A: the tagged artifact resolves to its commit and path, and downloads
    import dvc.api

    shown = dvc.api.artifacts_show(ARTIFACT, repo=str(a))
    assert shown == {"rev": run_in(a, ["git", "rev-parse", "HEAD"]).stdout.strip(), "path": MODEL}
    run_in(tmp_path, ["dvc", "artifacts", "get", a, ARTIFACT, "-o", tmp_path / "got.pt"])
    assert (tmp_path / "got.pt").read_bytes() == (a / MODEL).read_bytes()


def test_models_are_dvc_artifacts():
    """Every trained model of the default params is a `type: model` artifact (resolving one: the test above)."""
    artifacts = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]
    assert all(a["type"] == "model" for a in artifacts.values())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    expected = {f"models/encoder/{e}.pt" for e in params["fcn"]["encoders"]}
    expected |= {f"models/fcn/{v}.pt" for v in params["fcn"]["variants"]}
    expected |= {f"models/classifier/{arch}-{d}-relu-bn-0.pt" for arch in ("plain", "residual") for d in (20, 32, 56)}
    assert {a["path"] for a in artifacts.values()} == expected
