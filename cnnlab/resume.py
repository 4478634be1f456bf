"""Where a training stage keeps its resume state, and the key that says whether the state still applies.

A stage builds a :class:`Resume` for each model it trains and hands ``path``/``key`` to
:func:`cnnlab.training.fit` (see there for what the state holds). The state lives in
``.cnnlab-resume/<stage>/<name>.pt`` at the project root, git- and DVC-ignored and outside every declared
output, so DVC's run-cache and no-op checks never see it and ``dvc repro`` does not delete it before
rerunning an interrupted stage. The key holds three SHA-256 digests:

- ``params``: the resolved settings the stage trains with (``show_progress`` left out: it changes nothing;
  ``nproc`` too: a run interrupted with N processes may resume with M, see :mod:`cnnlab.distributed`);
- ``data``: the datasets and files it reads (a dataset folder by its ``manifest.json``, which lists the
  SHA-256 of every file; other files by their bytes);
- ``code``: every source file of the project the running stage has imported (its import closure: the
  stage script and the ``cnnlab`` modules), so editing code that cannot change the result keeps the state.

The stage deletes the state (:meth:`Resume.clear`) once its outputs are in place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cnnlab.io import sha256_file

RESUME_DIR = Path(".cnnlab-resume")
PROJECT = Path(__file__).resolve().parents[1]
IGNORED_SETTINGS = ("show_progress", "nproc")  # change nothing (nproc: only float rounding), see _canonical


def _canonical(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items() if k not in IGNORED_SETTINGS}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def params_digest(params: Any) -> str:
    """SHA-256 of ``params`` (dataclasses, mappings, lists, scalars) as canonical JSON."""
    text = json.dumps(_canonical(params), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def data_digest(paths: Iterable[str | os.PathLike]) -> str:
    """SHA-256 over the given dataset folders (their ``manifest.json``, or every file without one) and files."""
    digest = hashlib.sha256()
    for path in map(Path, paths):
        if path.is_dir():
            manifest = path / "manifest.json"
            files = [manifest] if manifest.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        else:
            files = [path]
        for file in files:
            digest.update(f"{file.as_posix()}\0{sha256_file(file) if file.exists() else 'missing'}\n".encode())
    return digest.hexdigest()


def code_digest() -> str:
    """SHA-256 over the source files of this project that the running process has imported."""
    files = set()
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        # only real files: some modules carry a bare name (torch.classes has "_classes.py"), which would
        # resolve against the working directory
        if file and file.endswith(".py") and Path(file).is_absolute() and Path(file).is_file():
            resolved = Path(file).resolve()
            if resolved.is_relative_to(PROJECT) and ".venv" not in resolved.relative_to(PROJECT).parts:
                files.add(resolved)
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(f"{file.relative_to(PROJECT).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class Resume:
    """The resume state of one model of one stage: ``path`` and ``key`` for :func:`cnnlab.training.fit`."""

    path: Path
    key: dict[str, str]

    @classmethod
    def for_stage(cls, stage: str, name: str, params: Any, data: Iterable[str | os.PathLike]) -> Resume:
        """The state of model ``name`` of ``stage`` (e.g. ``train_classifier``, ``plain-20-relu-bn-0``), keyed by
        the resolved ``params``, the ``data`` paths it reads and the imported code."""
        key = {"params": params_digest(params), "data": data_digest(data), "code": code_digest()}
        return cls(RESUME_DIR / stage / f"{name}.pt", key)

    def fit_kwargs(self) -> dict:
        return {"resume_path": self.path, "resume_key": self.key}

    def clear(self) -> None:
        """Delete the state (and its folders when they are left empty)."""
        self.path.unlink(missing_ok=True)
        for folder in (self.path.parent, self.path.parent.parent):
            try:
                folder.rmdir()
            except OSError:  # not empty or already gone
                break
