"""Network surgery on a trained :class:`~cnnlab.models.resnet18.ResNet18`: a fully convolutional segmenter.

:func:`build_resnet18_fcn` deep-copies the classifier's encoder (``conv1``, ``bn1``, ``relu``,
``layer1``..``layer4``; trained weights and the skip setting kept), drops ``avgpool`` and ``fc``, and adds a
decoder and a 1x1 classifier that predicts one of ``num_classes`` per pixel (11: background + digits 0-9, or
2: digit vs background). The decoder and the freezing rules come from :mod:`cnnlab.models.fcn`
(:class:`~cnnlab.models.fcn.FcnConfig`), so the ResNet-18 FCN is configured exactly like the MNIST CNN's.

Strides: with the CIFAR stem (3x3, stride 1, no max-pool) the stage outputs have strides 1, 2, 4, 8; on a
28x28 MNIST image ``layer1`` is 28x28, ``layer2`` 14x14, ``layer3`` 7x7 and ``layer4`` 4x4 (every stride-2
convolution rounds up). ``layer1`` has the input's resolution and is not fused.

``fcn8s``
    The FCN-8s fusion of Long et al. (2015) on the three strided stages, coarse to fine::

        layer4 output (stride 8)  ~ conv7   (coarsest prediction)
        layer3 output (stride 4)  ~ pool4   (first skip)
        layer2 output (stride 2)  ~ pool3   (second skip)

    then a final 2x upsampling to the input resolution: score each stage with a 1x1 convolution, upsample
    2x, add the finer stage's score, BN + ReLU, repeat (:class:`~cnnlab.models.fcn.Fcn8sDecoder`). One
    difference to the MNIST CNN's decoder: its upsamplers start as bilinear interpolation for *max-pooled*
    maps, whose cell ``i`` covers fine pixels ``2i`` and ``2i + 1``. A ResNet's stride-2 convolutions are
    centred: cell ``i`` sits *on* fine pixel ``2i``. Bilinear weights for pooled maps would shift every
    upsampled map by a quarter of its stride (2 + 1 + 0.5 = 3.5 input pixels for the ``layer4`` path on
    MNIST), so :class:`GridFcn8sDecoder` starts its (learnable) upsamplers as linear interpolation on that
    grid: fine pixel ``2i`` copies cell ``i``, fine pixel ``2i + 1`` averages cells ``i`` and ``i + 1``.
``upsample``
    :class:`~cnnlab.models.fcn.UpsampleDecoder` on the same three stages (no skip connections).

Any input of at least 8x8 (the total stride) works and the output has the input's size: upsampled maps
are cropped to the size of the finer map they are fused with, and the last one to the input size.
With ``freeze_encoder`` the encoder's parameters get ``requires_grad=False`` and the encoder stays in eval
mode (BN running statistics of the classifier, never updated) even when the FCN is in training mode.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.models.fcn import Fcn8sDecoder, FcnConfig, UpsampleDecoder
from cnnlab.models.mnist import check_input_size
from cnnlab.models.resnet18 import STAGE_STRIDES, STAGES, ResNet18, ResNet18Config

FUSED_STAGES = ("layer2", "layer3", "layer4")  # strides 2, 4, 8
MIN_INPUT_SIZE = STAGE_STRIDES[-1]


def grid_upsampler(channels: int) -> nn.ConvTranspose2d:
    """A learnable 2x upsampler starting as per-channel linear interpolation between cells at fine pixels ``2i``.

    Kernel 3, stride 2, padding 1, output padding 1: ``n`` cells -> ``2n`` pixels; pixel ``2i`` = cell ``i``,
    pixel ``2i + 1`` = (cell ``i`` + cell ``i + 1``) / 2 (the last pixel, past the last cell, gets half of it).
    """
    up = nn.ConvTranspose2d(channels, channels, kernel_size=3, stride=2, padding=1, output_padding=1, bias=False)
    taps = torch.tensor([0.5, 1.0, 0.5])
    with torch.no_grad():
        up.weight.zero_()
        diagonal = torch.arange(channels)
        up.weight[diagonal, diagonal] = torch.outer(taps, taps)
    return up


class GridFcn8sDecoder(Fcn8sDecoder):
    """:class:`~cnnlab.models.fcn.Fcn8sDecoder` whose upsamplers start aligned to centred strided convolutions."""

    def __init__(self, encoder_channels: Sequence[int], width: int) -> None:
        super().__init__(encoder_channels, width)
        self.upsamplers = nn.ModuleList(grid_upsampler(width) for _ in encoder_channels)


DECODERS: dict[str, type[nn.Module]] = {"upsample": UpsampleDecoder, "fcn8s": GridFcn8sDecoder}


class ResNet18Fcn(nn.Module):
    """Reused ResNet-18 encoder + decoder + 1x1 classifier: ``[N, C, H, W]`` -> logits ``[N, num_classes, H, W]``."""

    def __init__(self, encoder: nn.Sequential, encoder_config: ResNet18Config, config: FcnConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder_config = encoder_config
        self.encoder = encoder
        channels = [encoder_config.channels[STAGES.index(name)] for name in FUSED_STAGES]
        self.decoder = DECODERS[config.variant](channels, config.decoder_channels)
        self.classifier = nn.Conv2d(config.decoder_channels, config.num_classes, kernel_size=1)
        if config.freeze_encoder:
            self.encoder.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> ResNet18Fcn:
        """Set training mode, keeping a frozen encoder in eval mode (BN running statistics fixed)."""
        super().train(mode)
        if self.config.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, MIN_INPUT_SIZE, "ResNet-18 FCN")
        features = []
        h = x
        for name, module in self.encoder.named_children():
            h = module(h)
            if name in FUSED_STAGES:
                features.append(h)
        return self.classifier(self.decoder(features, x.shape[-2:]))


def build_resnet18_fcn(classifier: ResNet18, config: FcnConfig) -> ResNet18Fcn:
    """Surgery: deep copies of ``classifier``'s stem and four stages (weights kept) + a ``config.variant`` decoder.

    ``classifier`` itself is not modified. With ``config.freeze_encoder`` the copied encoder is frozen (see the
    module docstring); otherwise it is fine-tuned together with the decoder.
    """
    if not isinstance(classifier, ResNet18):
        raise TypeError(f"build_resnet18_fcn needs a ResNet18, got {type(classifier).__name__}")
    names = ("conv1", "bn1", "relu", *STAGES)
    encoder = nn.Sequential(OrderedDict((name, copy.deepcopy(getattr(classifier, name))) for name in names))
    return ResNet18Fcn(encoder, classifier.config, config)
