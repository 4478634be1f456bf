"""Stages fail fast on bad input: one line on stderr naming the problem and the fix, exit code 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import helpers
from helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]


def run_stage(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """The stage in an empty project folder holding only the project's params.yaml."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return helpers.run_stage(tmp_path, script, *args)


@pytest.mark.parametrize(
    "script,args,pattern",
    [
        ("train_classifier.py", ["--arch", "plain", "--depth", "20", "--variant", "relu-bn", "--seed", "0"],
         r"dataset data/cifar10 is missing .*run `dvc repro download`"),
        ("train_classifier.py", ["--arch", "plain", "--depth", "21", "--variant", "relu-bn", "--seed", "0"],
         r"depth 21 is neither 6n\+2 \(nearest: 20, 26\) nor 18 \(ResNet-18\)"),
        ("train_classifier.py", ["--arch", "plain", "--depth", "20", "--variant", "relu-bn", "--seed", "0",
                                 "--device", "cuda:7"],
         r"asked for CUDA but no CUDA device is available|cuda:7"),
        ("gradient_stats.py", ["--trained", "plain-20-relu-bn-0"],
         r"no trained checkpoint models/classifier/plain-20-relu-bn-0.pt: "
         r"run `dvc repro train_classifier@plain-20-relu-bn-0`"),
        ("segment_mnist.py", [], r"dataset data/mnist is missing"),
        ("compare_classifiers.py", [], r"metrics/train_classifier/plain-20-relu-bn-0.json does not exist"),
    ],
)
def test_stage_bad_input(tmp_path, script, args, pattern):
    assert_one_line_error(run_stage(tmp_path, script, *args), pattern=pattern)


def test_unknown_dataset_is_an_argparse_error(tmp_path):
    proc = run_stage(tmp_path, "download.py", "imagenet")
    assert proc.returncode == 2 and "invalid choice: 'imagenet'" in proc.stderr


def test_sigterm_removes_temporary_outputs(tmp_path):
    """A stage killed mid-write leaves neither a half-written output nor its temporary folder."""
    import signal
    import textwrap
    import time

    script = tmp_path / "slow_stage.py"
    script.write_text(textwrap.dedent("""
        import time
        from cnnlab.errors import run_cli
        from cnnlab.io import atomic_dir

        def main():
            with atomic_dir("out") as tmp:
                (tmp / "part.txt").write_text("half")
                print("writing", flush=True)
                time.sleep(60)

        run_cli(main)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    time.sleep(0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slow_stage.py"]


def test_a_stage_outside_the_project_environment_says_how_to_enter_it(tmp_path):
    """A Python without torch and cnnlab (here the same interpreter without site-packages and $PYTHONPATH,
    like a system python or `.venv/bin/dvc repro` without the venv activated): one line, exit 2."""
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    proc = subprocess.run([sys.executable, "-S", "-E", str(ROOT / "stages" / "train_classifier.py"), "--arch", "plain"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: this Python ({sys.executable}) lacks torch/cnnlab: run 'source .venv/bin/activate' "
        "(after 'make setup') and retry"]


def test_a_bad_value_anywhere_in_params_fails_the_first_stage_before_it_works(tmp_path):
    """gradcam.layer is read by the last stages; a typo must stop `download`, the first, before it writes."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="synthetic", mnist={"train_size": 20, "test_size": 10})
    params["gradcam"]["layer"] = "nonexistent"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = helpers.run_stage(tmp_path, "download.py", "mnist")
    assert_one_line_error(proc, "params.yaml: gradcam.layer: grad-cam layer 'nonexistent' is not a module of CifarNet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written
