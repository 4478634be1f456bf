"""A compact MNIST CNN whose convolutional encoder is later reused by the FCN surgery.

The encoder is an ``nn.Sequential`` of named blocks ``block1, block2, ...``; each block is
``conv-bn-relu`` (repeated ``convs_per_block`` times, 3x3, padding 1) followed by a 2x2 max-pool with
``ceil_mode=True``, so every block halves the resolution rounding *up* (28 -> 14 -> 7 -> 4). Rounding up
keeps every input pixel inside some pooling window, and pooling window ``i`` covers pixels ``2i, 2i+1``
exactly, so a 2x upsampling of a block's output aligns with the block's input at the top-left corner
(what :mod:`cnnlab.models.fcn` relies on when it crops decoder outputs).

The head is global average pooling + dropout + linear, so the classifier accepts any image at least as
large as the total stride ``2 ** len(channels)``. With the default ``channels=(32, 64, 128)`` and two
convolutions per block the model has about 288k parameters.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.config import config_from_dict, is_number, require_int
from cnnlab.errors import UserError


@dataclass(frozen=True)
class MnistCnnConfig:
    """Architecture of :class:`MnistCnn`: one encoder block per entry of ``channels``."""

    channels: tuple[int, ...] = (32, 64, 128)
    convs_per_block: int = 2
    dropout: float = 0.25
    num_classes: int = 10
    in_channels: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.channels, (str, bytes)) or not isinstance(self.channels, (list, tuple)) or not self.channels:
            raise UserError(f"MNIST CNN channels must be a non-empty list of integers, got {self.channels!r}")
        object.__setattr__(self, "channels", tuple(self.channels))
        for width in self.channels:
            require_int(width, "every MNIST CNN channels entry", 1)
        require_int(self.convs_per_block, "MNIST CNN convs_per_block", 1)
        require_int(self.num_classes, "MNIST CNN num_classes", 2)
        require_int(self.in_channels, "MNIST CNN in_channels", 1)
        if not is_number(self.dropout) or not 0 <= self.dropout < 1:
            raise UserError(f"MNIST CNN dropout must be a number in [0, 1), got {self.dropout!r}")

    @property
    def total_stride(self) -> int:
        """Downsampling factor of the encoder: each block halves the resolution."""
        return 2 ** len(self.channels)

    def to_dict(self) -> dict:
        """Plain, JSON/YAML-ready dict (``channels`` as a list) that :meth:`from_dict` inverts."""
        out = asdict(self)
        out["channels"] = list(self.channels)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MnistCnnConfig:
        return config_from_dict(cls, data, "MNIST CNN config")


def check_input_size(x: torch.Tensor, total_stride: int, network: str) -> None:
    """Raise a :class:`UserError` when ``x`` ([N, C, H, W]) is smaller than the network's total stride.

    Smaller inputs would pool down to a single cell that mostly sees padding; ``network`` names the model
    in the message (e.g. ``"FCN"``).
    """
    height, width = x.shape[-2:]
    if height < total_stride or width < total_stride:
        raise UserError(
            f"input {height}x{width} is smaller than the {network}'s total stride {total_stride}: "
            f"use images of at least {total_stride}x{total_stride}"
        )


def _conv_block(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    """``convs`` x (3x3 conv, BN, ReLU) then a ceil-mode 2x2 max-pool: halves H and W, rounding up."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(1, convs + 1):
        layers[f"conv{i}"] = nn.Conv2d(in_channels if i == 1 else out_channels, out_channels, 3, padding=1, bias=False)
        layers[f"bn{i}"] = nn.BatchNorm2d(out_channels)
        layers[f"relu{i}"] = nn.ReLU()
    layers["pool"] = nn.MaxPool2d(2, stride=2, ceil_mode=True)
    return nn.Sequential(layers)


class MnistCnn(nn.Module):
    """Digit classifier: ``encoder`` (named conv blocks) then ``head`` (global average pool, dropout, linear).

    Input: float images ``[N, in_channels, H, W]`` with ``H, W >= config.total_stride``; output: logits
    ``[N, num_classes]``.
    """

    def __init__(self, config: MnistCnnConfig | None = None) -> None:
        super().__init__()
        self.config = config or MnistCnnConfig()
        widths = (self.config.in_channels, *self.config.channels)
        self.encoder = nn.Sequential(
            OrderedDict(
                (f"block{i + 1}", _conv_block(widths[i], widths[i + 1], self.config.convs_per_block))
                for i in range(len(self.config.channels))
            )
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(self.config.dropout),
            nn.Linear(self.config.channels[-1], self.config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x, self.config.total_stride, "CNN")
        return self.head(self.encoder(x))
