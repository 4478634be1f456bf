"""Section ``data``: where each dataset comes from (:class:`~cnnlab.data.sources.DataParams`)."""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.config import choice, get, integer
from cnnlab.data.sources import DataParams
from cnnlab.errors import UserError

__all__ = ["DATASETS", "MIRROR_ENV", "SOURCES", "DataParams", "data_params"]

DATASETS = ("mnist", "cifar10")
SOURCES = ("torchvision", "mirror", "synthetic")
MIRROR_ENV = "CNNLAB_DATA_MIRROR"


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
