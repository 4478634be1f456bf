"""Config parsing and validation helpers: the leaf every layer may use (stdlib + :mod:`cnnlab.errors` only).

Two families of checks, both raising a one-line :class:`~cnnlab.errors.UserError`:

- ``choice``/``integer``/``number``/``boolean``/``integer_list`` check a value read from params.yaml and
  name it by its dotted key (``params.yaml: train_fcn.train_size=0 must be >= 1``);
- :func:`require_int` and :func:`config_from_dict` serve the config dataclasses of the models and the
  training loop (``MNIST CNN convs_per_block must be an integer >= 1, got 0``).

Every "is this an integer" question is :func:`is_int` (a bool is not an integer here, although Python says
``isinstance(True, int)``), every "is this a number" question :func:`is_number`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from cnnlab.errors import UserError

ConfigT = TypeVar("ConfigT")
_MISSING = object()


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool`` (YAML's ``true`` must not pass for 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any, finite: bool = False) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``; with ``finite``, also not NaN or infinite."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and (not finite or math.isfinite(value))


def get(params: Mapping, key: str, default: Any = _MISSING) -> Any:
    """``get(params, "data.mnist.train_size")``; a missing key without default is a UserError."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is not _MISSING:
                return default
            raise UserError(f'params.yaml: missing key {key} (see README, section "Parameters")')
        node = node[part]
    return node


# --------------------------------------------------------------------------- values of params.yaml


def choice(key: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = list(allowed)
    if value not in allowed:
        raise UserError(f"params.yaml: {key}={value!r} is not allowed; use one of: {', '.join(map(str, allowed))}")
    return value


def integer(key: str, value: Any, minimum: int | None = None, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not is_int(value):
        what = "an integer or null" if allow_none else "an integer"
        raise UserError(f"params.yaml: {key}={value!r} must be {what}")
    if minimum is not None and value < minimum:
        raise UserError(f"params.yaml: {key}={value} must be >= {minimum}")
    return value


def number(key: str, value: Any, low: float | None = None, high: float | None = None,
           open_interval: bool = False) -> float:
    if not is_number(value):
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


def integer_list(key: str, value: Any, minimum: int | None = None, example: str = "[20, 56]") -> list[int]:
    if not isinstance(value, list) or not value:
        raise UserError(f"params.yaml: {key}={value!r} must be a non-empty list of integers, e.g. {example}")
    return [integer(f"{key}[{i}]", v, minimum) for i, v in enumerate(value)]


# --------------------------------------------------------------------------- config dataclasses


def require_int(value: Any, name: str, minimum: int) -> None:
    """Raise a :class:`UserError` unless ``value`` is an integer (not a bool) of at least ``minimum``."""
    if not is_int(value) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


def config_from_dict(cls: type[ConfigT], data: Any, what: str) -> ConfigT:
    """Build the dataclass ``cls`` from ``data``; unknown or missing required keys are a :class:`UserError`.

    ``what`` names the config in messages (e.g. ``"MNIST CNN config"``). Value checks are the
    dataclass's own ``__post_init__``.
    """
    if not isinstance(data, Mapping):
        raise UserError(f"{what} must be a mapping of keys to values, got {type(data).__name__} {data!r}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise UserError(f"unknown {what} key(s) {', '.join(unknown)}: allowed keys are {', '.join(allowed)}")
    missing = [f.name for f in fields(cls)
               if f.default is MISSING and f.default_factory is MISSING and f.name not in data]
    if missing:
        raise UserError(f"{what} is missing key(s) {', '.join(missing)}: add them to params")
    return cls(**data)
