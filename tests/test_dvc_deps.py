"""dvc.yaml lists, for every stage, exactly the code files its script imports (directly or not).

Fine-grained code deps rerun only the stages whose code changed; a missing dep means a stale output
after a code change, an extra one a needless rerun (hours, for the classifiers).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from cnnlab.devtools.deps import check_dvc_yaml, code_files, rewrite_dvc_yaml

ROOT = Path(__file__).resolve().parents[1]


def test_every_stage_lists_exactly_the_code_it_imports():
    results = check_dvc_yaml(ROOT)
    assert {r.stage for r in results} >= {"download", "train_classifier", "gradient_stats", "report"}
    bad = [r for r in results if r.missing or r.extra]
    message = "\n".join(
        "\n".join(r.problems()) + f"\n  the code deps of {r.stage}:\n" + "".join(f"      - {f}\n" for f in r.expected)
        for r in bad)
    assert not bad, "dvc.yaml code deps are wrong (or run `python -m cnnlab.devtools.deps`):\n" + message


def test_the_closure_follows_function_level_imports_and_skips_empty_package_files():
    files = code_files(ROOT, "stages/train_classifier.py")
    assert "cnnlab/metrics/classification.py" in files  # train_classifier -> tracking -> training -> metrics
    assert "stages/_env.py" in files and "stages/train_classifier.py" in files
    assert "cnnlab/__init__.py" not in files and "cnnlab/models/__init__.py" not in files  # docstring only
    assert "cnnlab/params/__init__.py" in files  # load_params: code
    assert "cnnlab/params/check.py" not in files  # validation only (cnnlab.devtools.deps.NOT_CODE_DEPS)
    assert "cnnlab/models/fcn.py" not in files  # the classifier never imports the FCN


def test_a_missing_and_an_extra_dep_are_both_reported(tmp_path):
    for folder in ("cnnlab", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    deps = dvc["stages"]["train_classifier"]["deps"]
    deps.remove("cnnlab/metrics/classification.py")
    deps.append("cnnlab/models/fcn.py")
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc))
    bad = {r.stage: r for r in check_dvc_yaml(tmp_path) if r.missing or r.extra}
    assert list(bad) == ["train_classifier"]
    assert bad["train_classifier"].problems() == [
        "stage train_classifier: missing code dep cnnlab/metrics/classification.py",
        "stage train_classifier: extra code dep cnnlab/models/fcn.py (its script never imports it)",
    ]


def test_write_mode_replaces_only_the_code_deps_of_the_named_stages():
    text = """stages:
  a:
    cmd: python stages/a.py
    deps:
      # code first
      - stages/a.py
      - cnnlab/old.py
      - data/x
      - models/${key}.pt
    params:
      - seed
  b:
    cmd: python stages/b.py
    deps:
      - stages/b.py
      - cnnlab/keep.py
"""
    out = rewrite_dvc_yaml(text, {"a": ["cnnlab/new.py", "stages/a.py"]})
    stages = yaml.safe_load(out)["stages"]
    assert stages["a"]["deps"] == ["cnnlab/new.py", "stages/a.py", "data/x", "models/${key}.pt"]
    assert stages["a"]["params"] == ["seed"]
    assert stages["b"]["deps"] == ["stages/b.py", "cnnlab/keep.py"]  # not named: untouched
    assert "      # code first\n" in out
