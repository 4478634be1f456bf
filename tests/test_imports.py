"""The package's layers: no import cycle in cnnlab/ (module level or inside functions), imports downward only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cnnlab.devtools.deps import find_cycle, import_graph, imported_names, module_files

ROOT = Path(__file__).resolve().parents[1]

#: module (prefix) -> what it may import besides the standard library ("cnnlab.models" = every model module)
ALLOWED = {
    "cnnlab.errors": set(),
    "cnnlab.classes": set(),
    "cnnlab.families": set(),
    "cnnlab.config": {"cnnlab.errors"},
    "cnnlab.pipeline": {"cnnlab.config", "cnnlab.errors", "cnnlab.families"},
    "cnnlab.models": {"torch", "torchvision", "cnnlab.config", "cnnlab.errors", "cnnlab.classes", "cnnlab.families",
                      "cnnlab.models"},
}


def outside_imports(path: Path, module: str) -> set[str]:
    """The imports of ``path`` that are neither the standard library nor the allowed modules' submodules."""
    names = {n for n in imported_names(path, module) if n.split(".")[0] not in sys.stdlib_module_names}
    # `from cnnlab.config import get` names cnnlab.config and cnnlab.config.get: keep the module
    return {n for n in names if not any(n == m or n.startswith(m + ".") for m in module_files(ROOT, scripts=None))
            or n in module_files(ROOT, scripts=None)}


def test_cnnlab_has_no_import_cycle():
    cycle = find_cycle(import_graph(ROOT, scripts=None))
    assert cycle is None, "import cycle in cnnlab: " + " -> ".join(cycle)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_what_they_may(layer):
    files = {name: path for name, path in module_files(ROOT, scripts=None).items()
             if name == layer or name.startswith(layer + ".")}
    assert files, f"no module {layer}"
    allowed = ALLOWED[layer]
    for name, path in files.items():
        bad = sorted(n for n in outside_imports(ROOT / path, name)
                     if not any(n == a or n.startswith(a + ".") for a in allowed))
        assert not bad, f"{path} imports {', '.join(bad)}; {layer} may import only {sorted(allowed) or 'the stdlib'}"


def test_only_stages_import_params():
    """cnnlab.params (reads params.yaml) is the top layer: nothing else in the package imports it."""
    graph = import_graph(ROOT, scripts=None)
    importers = sorted(m for m, imported in graph.items() if not m.startswith("cnnlab.params")
                       and any(n == "cnnlab.params" or n.startswith("cnnlab.params.") for n in imported))
    assert not importers, f"{', '.join(importers)} import cnnlab.params: pass configs down instead"


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import f\n",
        "pkg/b.py": "def f():\n    from pkg import c\n    return c\n",
        "pkg/c.py": "import os\nfrom . import a\n",
        "pkg/d.py": "import pkg.a\n",
    })
    graph = import_graph(tmp_path, package="pkg", scripts=None)
    assert graph["pkg.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_an_acyclic_package_passes(tmp_path):
    write_package(tmp_path, {
        "pkg/__init__.py": "from pkg import a\n",  # a package importing its own modules is no cycle
        "pkg/a.py": "from pkg.b import f\n",
        "pkg/b.py": "def f():\n    import pkg.c\n",
        "pkg/c.py": "import json\n",
    })
    assert find_cycle(import_graph(tmp_path, package="pkg", scripts=None)) is None
