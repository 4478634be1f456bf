"""The project's import graph, read with :mod:`ast` (nothing is imported), and the code deps of dvc.yaml.

Used by ``tests/test_imports.py`` (no import cycle in :mod:`cnnlab`, layers import downward only) and by
``tests/test_dvc_deps.py`` (every stage lists exactly the code files its script imports, directly or not).
Run ``python -m cnnlab.devtools.deps`` in the project root to print the code deps each stage should list.

Modules are the files ``cnnlab/**/*.py`` (named ``cnnlab.x.y``) and ``stages/*.py`` (named by their stem, as
``python stages/x.py`` imports its neighbours: ``import _env``). Every ``import`` and ``from ... import``
counts, at module level or inside a function. Importing ``a.b.c`` also runs the ``__init__.py`` of ``a`` and
``a.b``: these count as a file's dependencies only if they hold code (more than a docstring and constants).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PACKAGE = "cnnlab"
STAGES = "stages"
#: modules whose import is not a code dep of the stages that import them, and why
NOT_CODE_DEPS = {
    "cnnlab.params.check": "it validates every section of params.yaml at load: it can stop a stage before the "
                           "stage writes anything, never change what the stage writes",
}


def module_files(root: Path, package: str = PACKAGE, scripts: str | None = STAGES) -> dict[str, Path]:
    """Module name -> file, relative to ``root``: the package's modules (``__init__.py`` as the package
    name) and, with ``scripts``, the scripts of that folder by their stem."""
    root = Path(root)
    files = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path.relative_to(root)
    if scripts is not None and (root / scripts).is_dir():
        for path in sorted((root / scripts).glob("*.py")):
            files[path.stem] = path.relative_to(root)
    return files


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The module a ``from ... import`` names, with relative imports resolved against ``module``."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(path: Path, module: str) -> set[str]:
    """Every module name ``path`` imports (module level and inside functions); for ``from a import b``
    both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    is_package = Path(path).name == "__init__.py"
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            if base == "__future__":
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def has_code(path: Path) -> bool:
    """Whether a file holds more than a docstring and assignments of constants (``__version__ = "1.0"``)."""
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant):
            continue
        return True
    return False


def import_graph(root: Path, package: str = PACKAGE, scripts: str | None = STAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports (see :func:`module_files`); imports of outside modules
    (stdlib, torch, ...) are left out, and so are the parent packages an import runs."""
    files = module_files(root, package, scripts)
    graph = {}
    for name, path in files.items():
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        # `from . import a` also names the package being imported (an ancestor): not an edge
        graph[name] = {n for n in imported_names(Path(root) / path, name) if n in files and n != name} - ancestors
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None when the graph has none (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def closure(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """``start`` and every module it imports, directly or not."""
    seen, todo = {start}, [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def code_files(root: Path, script: str) -> list[str]:
    """The files DVC must watch for the stage script ``stages/<name>.py``: the script, every project module
    it imports directly or not (importing ``a.b.c`` runs the ``__init__.py`` of ``a`` and ``a.b`` too, so
    their imports count), except :data:`NOT_CODE_DEPS`; ``__init__.py`` files only if they hold code.
    Sorted posix paths relative to ``root``."""
    root = Path(root)
    files = module_files(root)
    graph = import_graph(root)
    deps = {}
    for name, imported in graph.items():
        parts = name.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts))} & files.keys()
        deps[name] = (imported | parents) - NOT_CODE_DEPS.keys()
    modules = closure(deps, Path(script).stem)
    return sorted(files[m].as_posix() for m in modules
                  if files[m].name != "__init__.py" or has_code(root / files[m]))


# --------------------------------------------------------------------------- dvc.yaml


@dataclass
class StageDeps:
    """One stage of dvc.yaml: the code files it lists, the ones it should list, and the difference."""

    stage: str
    script: str
    listed: list[str]
    expected: list[str]
    missing: list[str] = field(init=False)
    extra: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.missing = sorted(set(self.expected) - set(self.listed))
        self.extra = sorted(set(self.listed) - set(self.expected))

    def problems(self) -> list[str]:
        out = [f"stage {self.stage}: missing code dep {f}" for f in self.missing]
        return out + [f"stage {self.stage}: extra code dep {f} (its script never imports it)" for f in self.extra]


def _is_code(dep: str) -> bool:
    return "${" not in dep and dep.endswith(".py")


def check_dvc_yaml(root: Path, dvc_yaml: Path | None = None) -> list[StageDeps]:
    """Every stage of ``dvc_yaml`` (default ``root/dvc.yaml``) whose command runs ``python stages/<x>.py``:
    its listed code deps (``*.py`` entries of ``deps``; templated and data deps are ignored) and the
    expected ones (:func:`code_files`)."""
    root = Path(root)
    stages = yaml.safe_load(Path(dvc_yaml or root / "dvc.yaml").read_text())["stages"]
    results = []
    for name, definition in stages.items():
        body = definition.get("do", definition)  # foreach stages keep cmd and deps under `do`
        script = next((word for word in str(body.get("cmd", "")).split()
                       if word.startswith(f"{STAGES}/") and word.endswith(".py")), None)
        if script is None:
            continue
        listed = [str(dep) for dep in body.get("deps", []) if _is_code(str(dep))]
        results.append(StageDeps(name, script, listed, code_files(root, script)))
    return results


def rewrite_dvc_yaml(text: str, fixes: Mapping[str, list[str]]) -> str:
    """``text`` (a dvc.yaml) with the code deps of each stage in ``fixes`` replaced by the given list, in place
    of its first code dep (or first in ``deps``); comments, data deps and every other line are kept."""
    lines, out = text.splitlines(keepends=True), []
    stage, in_deps, deps_indent, inserted = None, False, 0, False
    for line in lines:
        stripped, indent = line.strip(), len(line) - len(line.lstrip())
        if indent == 2 and stripped.endswith(":") and not stripped.startswith("#"):
            stage, in_deps = stripped[:-1], False
        if in_deps and stripped and not stripped.startswith("#") and indent <= deps_indent:
            in_deps = False
        if stage in fixes and stripped == "deps:":
            in_deps, deps_indent, inserted = True, indent, False
            out.append(line)
            continue
        if in_deps and stripped.startswith("- "):
            item = stripped[2:].strip()
            if not inserted:
                out.extend(f"{' ' * indent}- {f}\n" for f in fixes[stage])
                inserted = True
            if _is_code(item):
                continue
        out.append(line)
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description="Check the code deps of every stage in dvc.yaml.")
    parser.add_argument("--root", default=".", help="project root (default: the current folder)")
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps to the import closures")
    args = parser.parse_args()
    bad = [s for s in check_dvc_yaml(Path(args.root)) if s.missing or s.extra]
    if args.write and bad:
        path = Path(args.root) / "dvc.yaml"
        path.write_text(rewrite_dvc_yaml(path.read_text(), {s.stage: s.expected for s in bad}))
        print(f"dvc.yaml: rewrote the code deps of {', '.join(s.stage for s in bad)}")
        bad = [s for s in check_dvc_yaml(Path(args.root)) if s.missing or s.extra]
    for s in bad:
        print("\n".join(s.problems()))
        print(f"  the code deps of {s.stage} ({s.script}):\n" + "".join(f"    - {f}\n" for f in s.expected))
    print("dvc.yaml: every stage lists exactly the code it imports" if not bad else f"{len(bad)} stage(s) to fix")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
