"""The README's parameter table lists every key of params.yaml, and no key params.yaml lacks."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def dotted_keys(tree: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            keys += dotted_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def readme_table() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Parameters\n"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


def test_dotted_keys_flatten_nested_sections():
    assert dotted_keys({"a": 1, "b": {"c": None, "d": {"e": [1, 2]}}}) == ["a", "b.c", "b.d.e"]


def test_readme_table_has_every_params_key_once():
    params = dotted_keys(yaml.safe_load((ROOT / "params.yaml").read_text()))
    table = readme_table()
    assert all(len(row) == 4 for row in table)  # key | meaning | default | allowed values
    keys = [row[0].strip("`") for row in table]
    assert len(keys) == len(set(keys)), "a key is listed twice"
    assert sorted(set(params) - set(keys)) == [], "keys of params.yaml missing from the README's table"
    assert sorted(set(keys) - set(params)) == [], "keys in the README's table that params.yaml lacks"
    assert keys == params  # in the file's order


def test_readme_defaults_are_the_values_in_params_yaml():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, _, default, _ in readme_table():
        value = params
        for part in key.strip("`").split("."):
            value = value[part]
        shown = yaml.safe_load(default.strip("`")) if default != '`""`' else ""
        assert shown == value, (key, default, value)
