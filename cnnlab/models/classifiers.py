"""The CIFAR classifiers of the plain-vs-residual matrix: two model families behind one config and builder.

======================  =========================================  ==========================================
family                  depths                                     plain / residual
======================  =========================================  ==========================================
``"6n+2"``              6n + 2 (8, 14, 20, 32, 56, ...):           ``CifarNet`` (:mod:`cnnlab.models.cifar`),
                        He et al. (2016), section 4.2              shortcuts off / on
``"resnet18"``          18                                         ``ResNet18`` (:mod:`cnnlab.models.resnet18`,
                                                                   torchvision's blocks), skips off / on
======================  =========================================  ==========================================

The family follows from the depth (:mod:`cnnlab.families`): a matrix entry ``(arch, depth)`` names exactly one
network, and params.yaml adds ResNet-18 to the matrix by listing depth 18. Both families take the same switches:
``arch`` (plain = no additions), activation and BatchNorm (the variant), ``init`` (scaled | default) and a
width; ``shortcut`` is the 6n+2 family's (ResNet-18 always projects with a 1x1 convolution, as torchvision's).

A config dict (what checkpoints store) of the ResNet-18 family carries ``family: "resnet18"``; one without a
``family`` entry is a 6n+2 config (as every checkpoint before ResNet-18 joined the matrix).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from cnnlab.errors import UserError
from cnnlab.families import FAMILIES, RESNET18, RESNET18_DEPTH, SIX_N_PLUS_2, family_of
from cnnlab.models.cifar import ARCHS, CifarNetConfig, build_cifar_net, valid_depths
from cnnlab.models.resnet18_config import GRADCAM_LAYER, ResNet18Config

# cnnlab.models.resnet18 (the network) imports torchvision, which costs ~1.8 s of start-up on a 2-core CPU; it is
# imported where a ResNet-18 is built, so that a 6n+2 stage starts without it.

#: the module Grad-CAM explains by default: the last stage's output (8x8 for 6n+2, 4x4 for ResNet-18 at 32x32)
GRADCAM_LAYERS = {SIX_N_PLUS_2: "layer3", RESNET18: GRADCAM_LAYER}

ClassifierConfig = CifarNetConfig | ResNet18Config


def classifier_config(arch: str, depth: int, *, activation: str = "relu", batchnorm: bool = True,
                      init: str = "default", shortcut: str = "A", width: int = 1, resnet18_width: float = 1,
                      num_classes: int = 10, in_channels: int = 3) -> ClassifierConfig:
    """The network of matrix entry ``(arch, depth)`` with the given switches (validated: :class:`UserError`)."""
    if arch not in ARCHS:
        raise UserError(f"classifier arch {arch!r} is not supported: use one of {', '.join(ARCHS)}")
    if family_of(depth) == RESNET18:
        return ResNet18Config(skip=arch == "residual", width=resnet18_width, num_classes=num_classes,
                              in_channels=in_channels, activation=activation, batchnorm=batchnorm, init=init)
    if isinstance(depth, int) and not isinstance(depth, bool) and (depth < 8 or (depth - 2) % 6):
        nearest = ", ".join(str(d) for d in valid_depths(depth))
        raise UserError(f"depth {depth} is neither 6n+2 (nearest: {nearest}) nor {RESNET18_DEPTH} (ResNet-18)")
    return CifarNetConfig(arch, depth, activation=activation, batchnorm=batchnorm, shortcut=shortcut, width=width,
                          init=init, num_classes=num_classes, in_channels=in_channels)


def config_from_dict(data: Mapping[str, Any]) -> ClassifierConfig:
    """The config of a ``to_dict()`` (e.g. a checkpoint's); its ``family`` entry picks the class."""
    family = data.get("family", SIX_N_PLUS_2)
    if family == RESNET18:
        return ResNet18Config.from_dict(data)
    if family != SIX_N_PLUS_2:
        raise UserError(f"classifier family {family!r} is not supported: use one of {', '.join(FAMILIES)}")
    return CifarNetConfig.from_dict({k: v for k, v in data.items() if k != "family"})


def build_classifier(config: ClassifierConfig | Mapping[str, Any]) -> nn.Module:
    """The network of ``config`` (a config, or its dict); ``model.config`` holds the config."""
    if isinstance(config, Mapping):
        config = config_from_dict(config)
    if isinstance(config, CifarNetConfig):
        return build_cifar_net(config)
    from cnnlab.models.resnet18 import build_resnet18

    return build_resnet18(config)


def default_gradcam_layer(config: ClassifierConfig | Mapping[str, Any]) -> str:
    """The last stage of the network's family (``layer3`` or ``layer4``)."""
    if isinstance(config, Mapping):
        config = config_from_dict(config)
    return GRADCAM_LAYERS[SIX_N_PLUS_2 if isinstance(config, CifarNetConfig) else RESNET18]
