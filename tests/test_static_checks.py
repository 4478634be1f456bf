"""The linter is part of the suite: `ruff check` (rules and settings in pyproject.toml) must be clean on the
whole project, so style and obvious bugs (unused names, unsorted imports, mutable defaults, ...) cannot drift."""

import subprocess
import sys

from helpers import ROOT


def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
