"""Set values in params.yaml in place, keeping its layout and comments.

    python -m cnnlab.params_edit [--file params.yaml] KEY=VALUE [KEY=VALUE ...]

KEY is a dotted path that must already exist in the file (``train_classifier.epochs``,
``data.mnist.train_size``); VALUE is parsed as YAML (``3``, ``null``, ``false``, ``[8, 20]``, ``text``).
Only the lines of the changed values change: comments, blank lines, key order, quoting and flow-style
lists (``[plain, residual]``) stay as they are. ``dvc exp run -S KEY=VALUE`` rewrites the whole file
instead (DVC dumps it again: flow lists become block lists, ``null`` becomes empty, comments go), so
``make quick`` runs this tool and then ``dvc exp run`` without ``-S``.

An unknown key, a malformed ``KEY=VALUE`` or a value that would replace a section with a scalar (or the
other way round) is a one-line error (exit status 2); the file is then left untouched.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from cnnlab.errors import UserError, run_cli


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: keeps comments, order and flow style
    yaml.preserve_quotes = True
    yaml.width = 4096  # never wrap a long line
    yaml.indent(mapping=2, sequence=4, offset=2)  # block lists as params.yaml would write them: "  xs:\n    - 1"
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"a.b=[1, 2]"`` -> ``("a.b", [1, 2])``; the value is YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"{text!r} is not KEY=VALUE (for example train_classifier.epochs=3)")
    try:
        value = YAML(typ="safe").load(raw) if raw.strip() else ""
    except YAMLError as err:
        raise UserError(f"{key}: the value {raw!r} is not valid YAML ({str(err).splitlines()[0]})") from None
    return key.strip(), value


def _styled(old: Any, new: Any) -> Any:
    """``new`` in ``old``'s YAML style: a list replacing a flow-style list stays on one line."""
    if isinstance(new, list):
        seq = CommentedSeq(new)
        if not isinstance(old, CommentedSeq) or old.fa.flow_style():
            seq.fa.set_flow_style()
        return seq
    return new


def set_values(text: str, assignments: list[tuple[str, Any]], name: str = "params.yaml") -> str:
    """``text`` (a YAML document) with every ``(dotted key, value)`` set; raises UserError on a bad key."""
    yaml = _yaml()
    doc = yaml.load(text)
    if not isinstance(doc, CommentedMap):
        raise UserError(f"{name} is not a YAML mapping")
    for key, value in assignments:
        parent, parts = doc, key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(parent, CommentedMap) or part not in parent:
                where = ".".join(parts[:depth]) or "the top level"
                known = ", ".join(map(str, parent)) if isinstance(parent, CommentedMap) else "none (not a section)"
                raise UserError(f"{name}: no key {key!r} ({where} has: {known}); "
                                f"see the README's parameter table")
            if depth < len(parts) - 1:
                parent = parent[part]
        old = parent[parts[-1]]
        if isinstance(old, dict):
            raise UserError(f"{name}: {key} is a section; set the keys inside it one by one ({key}.<key>=VALUE)")
        if isinstance(value, dict):
            raise UserError(f"{name}: {key} is a single value, not a section")
        parent[parts[-1]] = _styled(old, value)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", default="params.yaml", type=Path, help="the params file (default: params.yaml)")
    parser.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        raise UserError(f"{args.file} does not exist: run from the project folder or pass --file")
    try:
        text = args.file.read_text(encoding="utf-8")
        new = set_values(text, [parse_assignment(a) for a in args.assignments], str(args.file))
    except YAMLError as err:
        raise UserError(f"{args.file} is not valid YAML ({str(err).splitlines()[0]})") from None
    if new != text:
        from cnnlab.io import write_text  # imports torch: only when there is something to write

        write_text(args.file, new)


if __name__ == "__main__":
    run_cli(main)
