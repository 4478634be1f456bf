"""FCN surgery on a trained MNIST classifier of either encoder family (:mod:`cnnlab.models.encoders`)."""

from __future__ import annotations

from torch import nn

from cnnlab.models.encoders import encoder
from cnnlab.models.fcn import FcnConfig, build_fcn


def _resnet18_surgery(classifier: nn.Module, config: FcnConfig) -> nn.Module:
    # imported here: cnnlab.models.resnet18_fcn imports torchvision (~1.8 s of start-up on 2 cores), which a
    # train_fcn stage of the CNN encoder does not need
    from cnnlab.models.resnet18_fcn import build_resnet18_fcn

    return build_resnet18_fcn(classifier, config)


#: encoder family -> its surgery: the classifier's encoder (deep copy, trained weights) + a new decoder
SURGERY = {"cnn": build_fcn, "resnet18": _resnet18_surgery}


def build_segmenter(name: str, classifier: nn.Module, config: FcnConfig) -> nn.Module:
    """FCN surgery on ``classifier``, a trained classifier of family ``name`` (``config``: decoder, classes)."""
    encoder(name)  # an unknown name: the same one-line error as everywhere else
    return SURGERY[name](classifier, config)
