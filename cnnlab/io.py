"""Atomic file output: a crash never leaves a half-written file or folder behind.

Everything is written to a temporary path first and moved into place with ``os.replace`` (atomic on
POSIX within one filesystem). Folders are swapped in as a whole.

Inside a project (a folder holding ``dvc.yaml``, ``params.yaml`` or ``.dvc``) the temporaries live in
``<project>/.cnnlab-tmp/`` (git- and DVC-ignored), never beside the output: a process killed with
SIGKILL cannot clean up, and debris beside an output would sit inside folders that stages declare as
dependencies (DVC would hash it). Each temporary is named after the process that made it
(``<pid>.<host>.<random>.<name>.tmp``); the first atomic write of a later process removes those of
processes that are gone. Outside a project (or when ``.cnnlab-tmp`` is on another filesystem) the
temporary is a hidden sibling of the output, as a last resort.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import UserError

TMP_DIR = ".cnnlab-tmp"  # temporaries of atomic writes, at the project root
PROJECT_MARKERS = ("dvc.yaml", "params.yaml", ".dvc")

_UMASK = os.umask(0)
os.umask(_UMASK)
_HOST = socket.gethostname().replace(".", "_")
_swept: set[Path] = set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _sweep(home: Path) -> None:
    """Remove the temporaries in ``home`` left by processes of this host that no longer run (once per process)."""
    if home in _swept:
        return
    _swept.add(home)
    for entry in home.iterdir():
        pid, _, rest = entry.name.partition(".")
        if not (pid.isdigit() and rest.startswith(f"{_HOST}.")) or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _tmp_home(path: Path) -> Path | None:
    """``<project>/.cnnlab-tmp`` for an output ``path`` inside a project (created, stale entries swept);
    None outside a project or when it is on another filesystem than ``path``'s folder."""
    parent = path.parent.resolve()
    root = next((d for d in (parent, *parent.parents) if any((d / m).exists() for m in PROJECT_MARKERS)), None)
    if root is None:
        return None
    home = root / TMP_DIR
    home.mkdir(exist_ok=True)
    if home.stat().st_dev != parent.stat().st_dev:
        return None
    _sweep(home)
    name = glob.escape(path.name)
    for debris in (*parent.glob(f".{name}.*.tmp"), *parent.glob(f".{name}.*.old")):  # left by the earlier layout
        if debris.is_dir():
            shutil.rmtree(debris, ignore_errors=True)
        else:
            debris.unlink(missing_ok=True)
    return home


def _tmp_names(path: Path, suffix: str) -> dict:
    """``mkstemp``/``mkdtemp`` arguments for a temporary of ``path`` (see the module docstring)."""
    home = _tmp_home(path)
    if home is None:
        return {"prefix": f".{path.name}.", "suffix": suffix, "dir": path.parent}
    return {"prefix": f"{os.getpid()}.{_HOST}.", "suffix": f".{path.name}{suffix}", "dir": home}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success move it onto ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(**_tmp_names(path, ".tmp"))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``path`` as a whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(**_tmp_names(path, ".tmp")))
    try:
        yield tmp_dir
        os.chmod(tmp_dir, 0o777 & ~_UMASK)  # mkdtemp creates 0700
        if path.exists():
            old = Path(tempfile.mkdtemp(**_tmp_names(path, ".old")))
            os.replace(path, old / "x")
            os.replace(tmp_dir, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp_dir, path)
    finally:
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for DVC)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist: run the stage that writes it (`dvc repro`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err}): delete it and rerun `dvc repro`") from None


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically. Only tensors, numbers, strings, lists and dicts belong in ``obj``.

    The same ``obj`` gives the same bytes: ``torch.save`` to a *path* names the zip archive's top folder after
    the file, which would be the random temporary name, so it writes through a file object instead.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def load_torch(path: str | os.PathLike, what: str = "file", hint: str = "run `dvc repro`") -> Any:
    """``torch.load(weights_only=True)`` with user-facing errors for missing or corrupt files."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist: {hint}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt/foreign file
        raise UserError(f"{what} {path} cannot be read ({type(err).__name__}: {err}); delete it and {hint}") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
