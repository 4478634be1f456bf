"""Reading and writing MNIST's IDX files (gzipped or not), with clear errors for damaged files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from cnnlab.errors import UserError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise UserError(f"{path} is a damaged gzip file ({err}): download it again") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read an unsigned-byte IDX file into a uint8 array of its declared shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise UserError(f"{path} is truncated ({len(data)} bytes): download it again")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise UserError(f"{path} is not an unsigned-byte IDX file (magic 0x{magic:08x}): check the mirror's files")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path} is truncated inside its header: download it again")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise UserError(
            f"{path} is truncated or padded: header says shape {shape} ({expected} bytes) but the file has "
            f"{len(data)} bytes; download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> None:
    """Write a uint8 array of 1 or 3 dimensions as IDX (used by tests and to build mirrors)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = {1: LABELS_MAGIC, 3: IMAGES_MAGIC}[array.ndim]
    blob = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()
    Path(path).write_bytes(gzip.compress(blob, mtime=0) if compress else blob)
