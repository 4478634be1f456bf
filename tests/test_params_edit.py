"""cnnlab.params_edit: `make quick` sets its reduced values in params.yaml without rewriting the file."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cnnlab.errors import UserError
from cnnlab.params_edit import parse_assignment, set_values

ROOT = Path(__file__).resolve().parent.parent
PARAMS = (ROOT / "params.yaml").read_text()


def quick_assignments() -> list[str]:
    """The KEY=VALUE list the Makefile's `quick` target passes to params_edit (from `make -n`)."""
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "quick", "SOURCE=synthetic", "MIRROR=../shared/data"],
                         capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if "-m cnnlab.params_edit" in line]
    assert len(lines) == 1, out
    words = shlex.split(lines[0])
    return words[words.index("cnnlab.params_edit") + 1:]


def get(tree: dict, key: str):
    for part in key.split("."):
        tree = tree[part]
    return tree


def test_quick_params_change_only_their_own_lines():
    assignments = quick_assignments()
    assert len(assignments) == 24 and all("=" in a for a in assignments)
    new = set_values(PARAMS, [parse_assignment(a) for a in assignments])
    old_lines, new_lines = PARAMS.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(new_lines) == len(old_lines)
    changed = [(o, n) for o, n in zip(old_lines, new_lines, strict=True) if o != n]
    before, after = yaml.safe_load(PARAMS), yaml.safe_load(new)
    values = dict(parse_assignment(a) for a in assignments)
    differs = {k for k, v in values.items() if get(before, k) != v}
    assert len(changed) == len(differs)  # one line per changed value, nothing else
    for old, line in changed:
        key = old.split(":")[0].strip()
        assert line.split(":")[0] == old.split(":")[0]  # same key, same indentation
        if "#" in old:  # the comment survives verbatim
            assert line[line.index("#"):] == old[old.index("#"):], (old, line)
        assert any(k.rsplit(".", 1)[-1] == key for k in differs), line
    for key, value in values.items():
        assert get(after, key) == value, key
    # the rest of the document: the same values
    for key in ("classifier.archs", "gradient_matrix.variants", "train_encoder.cnn.model.channels", "fcn.variants"):
        assert get(after, key) == get(before, key)
    for flow_list in ("  depths: [8, 18]\n", "  depths: [20]\n", "  archs: [plain, residual]\n"):
        assert flow_list in new_lines  # flow lists stay
    with_null = set_values(PARAMS, [parse_assignment("train_fcn.train_size=null")]).splitlines()
    assert any(line.startswith("  train_size: null ") for line in with_null)  # null written as null
    assert [line for line in new_lines if line.lstrip().startswith("#")] == \
        [line for line in old_lines if line.lstrip().startswith("#")]


def test_setting_the_current_values_keeps_every_byte():
    assert set_values(PARAMS, []) == PARAMS
    assert set_values(PARAMS, [("classifier.depths", [20, 32, 56, 18]), ("gradcam.class_name", None)]) == PARAMS


def test_a_block_list_stays_a_block_list():
    text = "a:\n  # the list\n  xs:\n    - 1\n    - 2\n  b: 3  # three\n"
    new = set_values(text, [("a.xs", [4, 5, 6]), ("a.b", 4)])
    assert new == "a:\n  # the list\n  xs:\n    - 4\n    - 5\n    - 6\n  b: 4  # three\n"


@pytest.mark.parametrize("assignment,message", [
    ("data.mnist.size=3", r"no key 'data\.mnist\.size' \(data\.mnist has: train_size, test_size\)"),
    ("nonexistent=1", r"no key 'nonexistent' \(the top level has: seed, data, "),
    ("data=3", r"data is a section"),
    ("seed={a: 1}", r"seed is a single value, not a section"),
])
def test_bad_keys_are_user_errors(assignment, message):
    with pytest.raises(UserError, match=message):
        set_values(PARAMS, [parse_assignment(assignment)])


def test_cli_edits_in_place_and_fails_in_one_line_without_writing(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS)
    cmd = [sys.executable, "-m", "cnnlab.params_edit", "--file", str(path)]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([*cmd, "train_classifier.epochs=3", "gradcam.layer=layer2"], capture_output=True, text=True,
                        env=env)
    assert ok.returncode == 0, ok.stderr
    edited = path.read_text()
    assert "  epochs: 3\n" in edited and "  layer: layer2\n" in edited
    bad = subprocess.run([*cmd, "seed=1", "train_classifier.epoch=5"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1 and "train_classifier.epoch" in bad.stderr
    assert path.read_text() == edited  # nothing written, not even the valid seed=1
    # no debris: besides params.yaml at most the (empty) project temporaries folder of cnnlab.io
    assert sorted(p.name for p in tmp_path.iterdir()) in (["params.yaml"], [".cnnlab-tmp", "params.yaml"])
    assert not any((tmp_path / ".cnnlab-tmp").glob("*"))
