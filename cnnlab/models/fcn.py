"""Network surgery: turn a trained :class:`~cnnlab.models.mnist.MnistCnn` into a fully convolutional segmenter.

:func:`build_fcn` deep-copies the CNN's trained ``encoder`` (weights reused, not re-initialised), drops the
classification ``head`` and adds a decoder that predicts one of ``num_classes`` (11: background + digits 0-9)
per pixel. Two decoders (``FcnConfig.variant``):

``upsample``
    One stage per encoder block, coarse to fine: a stride-2 transposed convolution (2x upsampling) then a
    3x3 convolution, each followed by BN + ReLU. No skip connections.

``fcn8s``
    The FCN-8s topology of Long et al. (2015), adapted to this small encoder. In VGG-16, FCN-8s scores
    ``conv7`` (stride 32), ``pool4`` (stride 16) and ``pool3`` (stride 8) and fuses them coarse to fine.
    Here the three encoder blocks play those roles::

        block3 output (stride 8)  ~ conv7   (coarsest prediction)
        block2 output (stride 4)  ~ pool4   (first skip)
        block1 output (stride 2)  ~ pool3   (second skip)

    followed by a final 2x upsampling (instead of VGG's 8x) to the input resolution. As in the paper the
    score layers are linear 1x1 convolutions and the 2x upsamplers are transposed convolutions initialised
    to bilinear interpolation; unlike the paper, the scores live in a ``decoder_channels``-wide feature
    space (BN + ReLU after each fusion) and are projected to the classes only at the end: an earlier version
    of this experiment that scored straight to 11 channels, as the original does, lost pixel detail. With
    more or fewer encoder blocks, every block output is scored and fused the same way.

Any input size works: every block rounds its output size up (ceil-mode pooling), every upsampled map is
cropped to the size of the finer map it is fused with, and the last one to the input size, so the output
is ``[N, num_classes, H, W]`` for an ``[N, C, H, W]`` input with ``H, W >= min_input_size``.

Freezing (``FcnConfig.freeze_encoder``): encoder parameters get ``requires_grad=False`` *and* the encoder
stays in eval mode even when the FCN is put in training mode (:meth:`FullyConvNet.train` is overridden), so
its BatchNorm layers normalise with the CNN's running statistics and never update them. Otherwise the
"frozen" encoder would silently drift towards segmentation-batch statistics.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.classes import SEGMENT_CLASSES
from cnnlab.config import config_from_dict, require_int
from cnnlab.errors import UserError
from cnnlab.models.mnist import MnistCnn, MnistCnnConfig, check_input_size


def _crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Keep the top-left ``size`` (H, W) of ``x``; upsampled maps are at most one cell larger per axis."""
    return x[..., : size[0], : size[1]]


def _upsampling_targets(features: Sequence[torch.Tensor], size: Sequence[int]) -> list[Sequence[int]]:
    """Sizes a decoder passes through, coarse to fine: each finer block output's (H, W), then the input's."""
    return [f.shape[-2:] for f in features[-2::-1]] + [size]


def _bn_relu(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU()]


def _bilinear_upsampler(channels: int) -> nn.ConvTranspose2d:
    """A learnable 2x upsampler (kernel 4, stride 2, padding 1) that starts as per-channel bilinear interpolation."""
    up = nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, bias=False)
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    with torch.no_grad():
        up.weight.zero_()
        diagonal = torch.arange(channels)
        up.weight[diagonal, diagonal] = torch.outer(taps, taps)
    return up


class UpsampleDecoder(nn.Module):
    """Transposed-conv 2x upsampling + 3x3 conv per encoder block, from the coarsest features only."""

    def __init__(self, encoder_channels: Sequence[int], width: int) -> None:
        super().__init__()
        stages = []
        in_channels = encoder_channels[-1]
        for _ in encoder_channels:
            stages.append(
                nn.Sequential(
                    nn.ConvTranspose2d(in_channels, width, kernel_size=2, stride=2, bias=False),
                    *_bn_relu(width),
                    nn.Conv2d(width, width, 3, padding=1, bias=False),
                    *_bn_relu(width),
                )
            )
            in_channels = width
        self.stages = nn.ModuleList(stages)

    def forward(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        x = features[-1]
        for stage, target in zip(self.stages, _upsampling_targets(features, size)):
            # Crop between the transposed conv and the 3x3 conv so the conv sees the same border as the encoder did.
            x = stage[1:](_crop(stage[0](x), target))
        return x


class Fcn8sDecoder(nn.Module):
    """FCN-8s-style fusion: score every block output, upsample coarse to fine adding the finer scores."""

    def __init__(self, encoder_channels: Sequence[int], width: int) -> None:
        super().__init__()
        self.scores = nn.ModuleList(nn.Conv2d(c, width, kernel_size=1) for c in encoder_channels)
        self.upsamplers = nn.ModuleList(_bilinear_upsampler(width) for _ in encoder_channels)
        self.norms = nn.ModuleList(nn.Sequential(*_bn_relu(width)) for _ in encoder_channels)

    def forward(self, features: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        x = self.scores[-1](features[-1])
        for step, target in enumerate(_upsampling_targets(features, size)):
            x = _crop(self.upsamplers[step](x), target)
            finer = len(features) - 2 - step  # the block whose resolution this step reaches; -1 = the input image
            if finer >= 0:
                x = x + self.scores[finer](features[finer])
            x = self.norms[step](x)
        return x


VARIANTS: dict[str, type[nn.Module]] = {"upsample": UpsampleDecoder, "fcn8s": Fcn8sDecoder}


@dataclass(frozen=True)
class FcnConfig:
    """The decoder added by :func:`build_fcn` and whether the reused encoder is frozen."""

    variant: str = "upsample"
    freeze_encoder: bool = False
    decoder_channels: int = 64
    num_classes: int = len(SEGMENT_CLASSES)

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise UserError(f"unknown FCN variant {self.variant!r}: use one of {', '.join(VARIANTS)}")
        if not isinstance(self.freeze_encoder, bool):
            raise UserError(f"FCN freeze_encoder must be true or false, got {self.freeze_encoder!r}")
        require_int(self.decoder_channels, "FCN decoder_channels", 1)
        require_int(self.num_classes, "FCN num_classes", 2)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FcnConfig:
        return config_from_dict(cls, data, "FCN config")


def min_input_size(encoder_config: MnistCnnConfig) -> int:
    """Smallest height and width the FCN built on this encoder accepts: the encoder's total stride."""
    return encoder_config.total_stride


class FullyConvNet(nn.Module):
    """Reused encoder + decoder + 1x1 classifier: float ``[N, C, H, W]`` -> logits ``[N, num_classes, H, W]``."""

    def __init__(self, encoder: nn.Sequential, encoder_config: MnistCnnConfig, config: FcnConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder_config = encoder_config
        self.encoder = encoder
        self.decoder = VARIANTS[config.variant](encoder_config.channels, config.decoder_channels)
        self.classifier = nn.Conv2d(config.decoder_channels, config.num_classes, kernel_size=1)
        if config.freeze_encoder:
            self.encoder.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> FullyConvNet:
        """Set training mode, keeping a frozen encoder in eval mode (BN running stats fixed, see module doc)."""
        super().train(mode)
        if self.config.freeze_encoder:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, min_input_size(self.encoder_config), "FCN")
        features = []
        h = x
        for block in self.encoder:
            h = block(h)
            features.append(h)
        return self.classifier(self.decoder(features, x.shape[-2:]))


def build_fcn(cnn: MnistCnn, config: FcnConfig) -> FullyConvNet:
    """Surgery: a deep copy of ``cnn.encoder`` (trained weights kept) + a new ``config.variant`` decoder.

    ``cnn`` itself is not modified. With ``config.freeze_encoder`` the copied encoder is frozen as described
    in the module docstring; otherwise it is fine-tuned together with the decoder.
    """
    return FullyConvNet(copy.deepcopy(cnn.encoder), cnn.config, config)
