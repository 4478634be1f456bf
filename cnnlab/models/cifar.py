"""The CIFAR plain/residual network family of He et al. (2016), "Deep Residual Learning", section 4.2.

Layout for ``depth = 6n + 2`` (``w`` = width multiplier)::

    stem    3x3 conv, 16w channels [+ BN] + activation                      32x32
    layer1  n blocks, 16w channels                                            32x32
    layer2  n blocks, 32w channels (first block: stride 2)                    16x16
    layer3  n blocks, 64w channels (first block: stride 2)                     8x8
    pool    global average pooling;  fc  linear layer to ``num_classes``

Each block is ``conv3x3 [+BN] -> act1 -> conv3x3 [+BN] (-> + shortcut(x)) -> act2``. The *plain* and
the *residual* network are the same module tree; ``arch`` only decides whether the shortcut is added.
So the two share every parameter name and, with shortcut option A, every parameter count:
the comparison in the paper changes exactly one thing.

Shortcuts where the shape changes (the first block of ``layer2`` and ``layer3``):

- ``"A"``: parameter-free identity: subsample with stride 2 and append zero channels;
- ``"B"``: 1x1 convolution with stride 2 [+ BN] (a projection). Shape-preserving shortcuts are
  identities in both options. The plain network ignores ``shortcut`` (it has none).

Convolutions have no bias when followed by BN and a bias otherwise. ``init="default"`` keeps
PyTorch's initialisation; ``init="scaled"`` is variance preserving: Kaiming-normal (fan_out) for
ReLU nets as in the paper, Xavier-normal with gain 5/3 (``calculate_gain("tanh")``) for tanh nets,
LeCun-normal (fan_in, gain 1) for the final linear layer, zero biases, BN weight 1 and bias 0.

Every activation is its own module (``stem.act``, ``layerK[i].act1``, ``layerK[i].act2``) that runs
exactly once per forward pass, so hooks (Grad-CAM, gradient statistics) can attach to any of them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.config import config_from_dict, require_int
from cnnlab.errors import UserError

ARCHS = ("plain", "residual")
ACTIVATIONS = ("relu", "tanh")
SHORTCUTS = ("A", "B")
INITS = ("default", "scaled")
STAGE_CHANNELS = (16, 32, 64)


def valid_depths(near: int, count: int = 2) -> list[int]:
    """The ``count`` depths of the form ``6n + 2`` (``n >= 1``) closest to ``near``, ascending.

    Ties go to the smaller depth: ``valid_depths(35) == [32, 38]``, ``valid_depths(20) == [14, 20]``.
    """
    if count < 1:
        return []
    n_near = max(1, round((near - 2) / 6))
    candidates = [6 * n + 2 for n in range(max(1, n_near - count), n_near + count + 1)]
    return sorted(sorted(candidates, key=lambda d: (abs(d - near), d))[:count])


def _check_choice(value: Any, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise UserError(f"CIFAR net {key} {value!r} is not supported: use one of {', '.join(allowed)}")


def _check_int(value: Any, key: str, minimum: int) -> None:
    require_int(value, f"CIFAR net {key}", minimum)


@dataclass(frozen=True)
class CifarNetConfig:
    """Architecture of a :class:`CifarNet`; validated on construction (bad values raise :class:`UserError`)."""

    arch: str
    depth: int
    activation: str = "relu"
    batchnorm: bool = True
    shortcut: str = "A"
    width: int = 1
    init: str = "default"
    num_classes: int = 10
    in_channels: int = 3

    def __post_init__(self) -> None:
        _check_choice(self.arch, ARCHS, "arch")
        _check_int(self.depth, "depth", 1)
        if self.depth < 8 or (self.depth - 2) % 6:
            nearest = ", ".join(str(d) for d in valid_depths(self.depth))
            raise UserError(f"depth {self.depth} is not 6n+2; nearest valid depths: {nearest}")
        _check_choice(self.activation, ACTIVATIONS, "activation")
        if not isinstance(self.batchnorm, bool):
            raise UserError(f"CIFAR net batchnorm must be true or false, got {self.batchnorm!r}")
        _check_choice(self.shortcut, SHORTCUTS, "shortcut")
        _check_int(self.width, "width", 1)
        _check_choice(self.init, INITS, "init")
        _check_int(self.num_classes, "num_classes", 2)
        _check_int(self.in_channels, "in_channels", 1)

    @property
    def blocks_per_stage(self) -> int:
        """``n`` in ``depth = 6n + 2``."""
        return (self.depth - 2) // 6

    @property
    def name(self) -> str:
        """Short label, e.g. ``"residual-56"``, ``"plain-20-tanh-nobn"``, ``"residual-32-B-w2-scaled"``.

        Suffixes appear only for non-default values; ``-B`` only for residual nets (plain nets have no shortcut).
        """
        parts = [self.arch, str(self.depth)]
        if self.activation != "relu":
            parts.append(self.activation)
        if not self.batchnorm:
            parts.append("nobn")
        if self.arch == "residual" and self.shortcut != "A":
            parts.append(self.shortcut)
        if self.width != 1:
            parts.append(f"w{self.width}")
        if self.init != "default":
            parts.append(self.init)
        return "-".join(parts)

    def to_dict(self) -> dict:
        """Plain dict of every field (what checkpoints store and :meth:`from_dict` inverts)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CifarNetConfig:
        """Build from a params dict; unknown keys and missing ``arch``/``depth`` raise :class:`UserError`."""
        return config_from_dict(cls, data, "CIFAR net config")


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else nn.Tanh()


def _norm(channels: int, batchnorm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batchnorm else nn.Identity()


def _conv3x3(in_channels: int, out_channels: int, stride: int, batchnorm: bool) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=not batchnorm)


class PadShortcut(nn.Module):
    """Option A: keep every ``stride``-th pixel and append zero channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def _shortcut(in_channels: int, out_channels: int, stride: int, option: str, batchnorm: bool) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if option == "A":
        return PadShortcut(in_channels, out_channels, stride)
    conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=not batchnorm)
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(out_channels))) if batchnorm else conv


class BasicBlock(nn.Module):
    """Two 3x3 convolutions; with ``residual=True`` the shortcut is added before the second activation."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, config: CifarNetConfig) -> None:
        super().__init__()
        self.residual = config.arch == "residual"
        self.conv1 = _conv3x3(in_channels, out_channels, stride, config.batchnorm)
        self.bn1 = _norm(out_channels, config.batchnorm)
        self.act1 = _activation(config.activation)
        self.conv2 = _conv3x3(out_channels, out_channels, 1, config.batchnorm)
        self.bn2 = _norm(out_channels, config.batchnorm)
        self.act2 = _activation(config.activation)
        self.shortcut = (
            _shortcut(in_channels, out_channels, stride, config.shortcut, config.batchnorm) if self.residual else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act2(out)


class CifarNet(nn.Module):
    """A plain or residual CIFAR network; see the module docstring. Input float ``[N, C, H, W]``, output logits."""

    def __init__(self, config: CifarNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = [c * config.width for c in STAGE_CHANNELS]
        stem: OrderedDict[str, nn.Module] = OrderedDict()
        stem["conv"] = _conv3x3(config.in_channels, widths[0], 1, config.batchnorm)
        if config.batchnorm:
            stem["bn"] = nn.BatchNorm2d(widths[0])
        stem["act"] = _activation(config.activation)
        self.stem = nn.Sequential(stem)
        in_channels = widths[0]
        for index, out_channels in enumerate(widths):
            blocks = []
            for i in range(config.blocks_per_stage):
                stride = 2 if index > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_channels, out_channels, stride, config))
                in_channels = out_channels
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], config.num_classes)
        if config.init == "scaled":
            self.reset_parameters_scaled()

    def reset_parameters_scaled(self) -> None:
        """Variance-preserving initialisation (see the module docstring)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if self.config.activation == "relu":
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.xavier_normal_(module.weight, gain=nn.init.calculate_gain("tanh"))
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="linear")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map ``[N, 64w, H/4, W/4]`` (before pooling)."""
        return self.layer3(self.layer2(self.layer1(self.stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def build_cifar_net(config: CifarNetConfig) -> CifarNet:
    """Build the network described by ``config`` (``config`` is stored as ``model.config``)."""
    if not isinstance(config, CifarNetConfig):
        raise TypeError(f"build_cifar_net needs a CifarNetConfig, got {type(config).__name__}")
    return CifarNet(config)
