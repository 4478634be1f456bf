"""The MNIST classifiers whose encoders the FCNs reuse, by name: ``cnn`` and ``resnet18``.

One table (:data:`ENCODERS`) maps each name to its config class and its classifier, so the encoder stage
(``train_encoder@<encoder>``) and ``train_fcn`` have one code path for both families:

- ``cnn``: :class:`~cnnlab.models.mnist.MnistCnn` (max-pooled blocks at strides 2, 4, 8);
- ``resnet18``: :class:`~cnnlab.models.resnet18.ResNet18` (CIFAR stem; ``layer2``..``layer4`` at strides 2, 4, 8:
  14x14, 7x7 and 4x4 on a 28x28 digit).

The FCN surgery on each is in :mod:`cnnlab.models.segmenters`, apart, so that editing a decoder does not make
the encoder stages (which import this module) rerun.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from cnnlab.errors import UserError
from cnnlab.models.mnist import MnistCnn, MnistCnnConfig
from cnnlab.models.resnet18_config import ResNet18Config


@dataclass(frozen=True)
class Encoder:
    """One encoder family: its config class (``from_dict``/``to_dict``) and classifier builder."""

    config: type
    classifier: Callable[[Any], nn.Module]
    label: str  # for people: logs, figure titles, the report


def _build_resnet18(config: ResNet18Config) -> nn.Module:
    # imported here: the network module imports torchvision (~1.8 s of start-up), which validating params (every
    # stage does) and the CNN encoder do not need
    from cnnlab.models.resnet18 import build_resnet18

    return build_resnet18(config)


ENCODERS: dict[str, Encoder] = {
    "cnn": Encoder(MnistCnnConfig, MnistCnn, "MNIST CNN"),
    "resnet18": Encoder(ResNet18Config, _build_resnet18, "ResNet-18"),
}


def encoder(name: str) -> Encoder:
    if name not in ENCODERS:
        raise UserError(f"unknown FCN encoder {name!r}: use one of {', '.join(ENCODERS)}")
    return ENCODERS[name]


def encoder_config(name: str, data: Mapping[str, Any]) -> Any:
    """The config of encoder ``name`` from a params mapping (unknown keys and bad values: :class:`UserError`)."""
    return encoder(name).config.from_dict(data)


def build_classifier(name: str, config: Any) -> nn.Module:
    """A fresh MNIST classifier of family ``name`` (``config`` from :func:`encoder_config`)."""
    return encoder(name).classifier(config)
