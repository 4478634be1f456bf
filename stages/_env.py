"""Imported first by every stage: outside the project's environment, fail in one line that says how to enter it.

``python stages/x.py`` puts this folder on ``sys.path``, so ``import _env`` works with any Python; the
check only asks whether ``torch`` and ``cnnlab`` can be imported (without importing them).
"""

import importlib.util
import sys

_missing = [name for name in ("torch", "cnnlab") if importlib.util.find_spec(name) is None]
if _missing:
    print(f"error: this Python ({sys.executable}) lacks {'/'.join(_missing)}: run 'source .venv/bin/activate' "
          "(after 'make setup') and retry", file=sys.stderr)
    raise SystemExit(2)
