"""The GitHub workflow (.github/workflows/ci.yml): valid against GitHub's workflow schema, and it runs the
same make targets as .ci/run, so the two CIs cannot drift apart."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
MAKE = re.compile(r"(?:^|[;&|]\s*|\n\s*)make\s+([a-z][\w-]*)")


def make_targets(script: str) -> set[str]:
    return set(MAKE.findall(script))


def workflow_steps() -> list[dict]:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return [step for job in jobs.values() for step in job["steps"]]


def test_workflow_runs_the_make_targets_of_ci_run():
    ci_run = make_targets((ROOT / ".ci" / "run").read_text())
    workflow = make_targets("\n".join(step["run"] for step in workflow_steps() if "run" in step))
    assert {"test", "quick"} <= ci_run
    # `setup` is a prerequisite of `test` and `quick`; the workflow runs it as its own step for the log.
    # .ci/run has a 15-minute budget and runs the fast tests; the users' workflow runs all of them.
    assert workflow - {"setup"} == (ci_run - {"test"}) | {"test-all"}
    assert re.search(r"^test-all: setup$", (ROOT / "Makefile").read_text(), re.M)
    assert "make quick SOURCE=torchvision" in [step.get("run") for step in workflow_steps()]


def test_quick_accepts_the_official_downloads():
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "quick", "SOURCE=torchvision"], capture_output=True, text=True,
                         check=True).stdout
    assert re.search(r"-m cnnlab\.params_edit data\.source=torchvision ", out)


def test_workflow_sets_up_as_the_readme_says_and_caches():
    steps = workflow_steps()
    uses = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    assert uses["actions/setup-python"]["with"]["cache"] == "pip"
    assert uses["actions/setup-python"]["with"]["cache-dependency-path"] == "requirements.txt"
    assert "actions/setup-node" in uses
    assert uses["actions/cache"]["with"]["path"] == "data/downloads"
    assert "iterative/setup-cml" in uses
    comment = next(step["run"] for step in steps if "cml comment create" in step.get("run", ""))
    assert "dvc metrics diff" in comment and "$BASE" in comment


def test_workflow_validates_against_the_github_schema():
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))
    if not Path(exe).is_file():
        pytest.skip("check-jsonschema is not installed (it is in requirements.txt: make setup)")
    out = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
