"""``training`` sections: a validated :class:`~cnnlab.training.TrainConfig` (shared by the trainer sections)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from cnnlab.config import get, integer
from cnnlab.errors import UserError
from cnnlab.params.sections import RESERVED_TRAIN_KEYS, _located, _section
from cnnlab.training import TrainConfig


def train_config(
    params: dict, key: str, overrides: Mapping[str, Any] | None = None, overrides_key: str = "",
    device: str | None = None,
) -> TrainConfig:
    """A validated :class:`~cnnlab.training.TrainConfig` from the mapping at ``key`` updated with ``overrides``.

    ``seed`` comes from the top-level ``seed`` and ``device`` from the caller, never from the section.
    Everything but the batch size (which needs the data) is checked here, so a bad value fails at start-up.
    """
    where = f"{key} (updated by {overrides_key})" if overrides else key
    section = {**_section(params, key), **(overrides or {})}
    for name, source in RESERVED_TRAIN_KEYS.items():
        if name in section:
            raise UserError(
                f"params.yaml: {where} sets {name}={section[name]!r}: remove it, {name} comes from {source}")
    seed = integer("seed", get(params, "seed"), 0)
    try:
        config = TrainConfig.from_dict({**section, "seed": seed, "device": device})
        config.validate(n_train=sys.maxsize)  # fit() checks batch_size against the real number of examples
    except UserError as err:
        raise _located(where, err) from None
    return config
