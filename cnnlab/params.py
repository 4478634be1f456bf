"""Loading ``params.yaml`` and validating it once, with messages that name the key, the value and the fix.

Each stage reads exactly its own section (plus the shared ``seed`` and ``data``), through a typed
accessor defined here, so a bad value fails at start-up before any output is touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from cnnlab.errors import UserError

PARAMS_FILE = "params.yaml"
_MISSING = object()


def load_params(path: str | os.PathLike = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: run from the project root (where dvc.yaml is)")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise UserError(f"{path} must be a mapping of sections, got {type(params).__name__}")
    return params


def get(params: dict, key: str, default: Any = _MISSING) -> Any:
    """``get(params, "data.mnist.train_size")``; a missing key without default is a UserError."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not _MISSING:
                return default
            raise UserError(f"params.yaml: missing key {key} (see the README's parameter table)")
        node = node[part]
    return node


def choice(key: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = list(allowed)
    if value not in allowed:
        raise UserError(f"params.yaml: {key}={value!r} is not allowed; use one of: {', '.join(map(str, allowed))}")
    return value


def integer(key: str, value: Any, minimum: int | None = None, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        what = "an integer or null" if allow_none else "an integer"
        raise UserError(f"params.yaml: {key}={value!r} must be {what}")
    if minimum is not None and value < minimum:
        raise UserError(f"params.yaml: {key}={value} must be >= {minimum}")
    return value


def number(key: str, value: Any, low: float | None = None, high: float | None = None, open_interval: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"params.yaml: {key}={value!r} must be a number")
    value = float(value)
    if open_interval:
        ok = (low is None or value > low) and (high is None or value < high)
        interval = f"({low}, {high})"
    else:
        ok = (low is None or value >= low) and (high is None or value <= high)
        interval = f"[{low}, {high}]"
    if not ok:
        raise UserError(f"params.yaml: {key}={value} must lie in {interval.replace('None', 'inf')}")
    return value


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"params.yaml: {key}={value!r} must be true or false")
    return value


def integer_list(key: str, value: Any, minimum: int | None = None) -> list[int]:
    if not isinstance(value, list) or not value:
        raise UserError(f"params.yaml: {key}={value!r} must be a non-empty list of integers, e.g. [20, 56]")
    return [integer(f"{key}[{i}]", v, minimum) for i, v in enumerate(value)]


# --------------------------------------------------------------------------- shared sections

DATASETS = ("mnist", "cifar10")
SOURCES = ("torchvision", "mirror", "synthetic")
MIRROR_ENV = "CNNLAB_DATA_MIRROR"


@dataclass(frozen=True)
class DataParams:
    dataset: str
    source: str
    mirror: Path | None
    train_size: int | None
    test_size: int | None
    seed: int


def data_params(params: dict, dataset: str) -> DataParams:
    """The ``data`` section for one dataset; ``data.mirror`` falls back to ``$CNNLAB_DATA_MIRROR``."""
    choice("dataset", dataset, DATASETS)
    source = choice("data.source", get(params, "data.source"), SOURCES)
    mirror_value = get(params, "data.mirror", "") or os.environ.get(MIRROR_ENV, "")
    mirror = Path(mirror_value) if mirror_value else None
    if source == "mirror" and mirror is None:
        raise UserError(
            f"params.yaml: data.source=mirror needs a folder: set data.mirror (or ${MIRROR_ENV}) to a folder "
            f"holding mnist/ and cifar10/"
        )
    return DataParams(
        dataset=dataset,
        source=source,
        mirror=mirror,
        train_size=integer(f"data.{dataset}.train_size", get(params, f"data.{dataset}.train_size", None), 1, True),
        test_size=integer(f"data.{dataset}.test_size", get(params, f"data.{dataset}.test_size", None), 1, True),
        seed=integer("seed", get(params, "seed"), 0),
    )


@dataclass(frozen=True)
class SegmentParams:
    threshold: float
    canvas_count: int
    canvas_rows: int
    canvas_cols: int
    empty_prob: float
    max_offset: int
    preview: int
    seed: int


def segment_params(params: dict) -> SegmentParams:
    s = "segment_mnist"
    return SegmentParams(
        threshold=number(f"{s}.threshold", get(params, f"{s}.threshold"), 0.0, 1.0, open_interval=True),
        canvas_count=integer(f"{s}.canvas.count", get(params, f"{s}.canvas.count"), 1),
        canvas_rows=integer(f"{s}.canvas.rows", get(params, f"{s}.canvas.rows"), 1),
        canvas_cols=integer(f"{s}.canvas.cols", get(params, f"{s}.canvas.cols"), 1),
        empty_prob=number(f"{s}.canvas.empty_prob", get(params, f"{s}.canvas.empty_prob"), 0.0, 1.0),
        max_offset=integer(f"{s}.canvas.max_offset", get(params, f"{s}.canvas.max_offset"), 0),
        preview=integer(f"{s}.preview", get(params, f"{s}.preview"), 1),
        seed=integer("seed", get(params, "seed"), 0),
    )
