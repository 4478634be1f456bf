"""ResNet-18 for 32x32 images (the usual CIFAR adaptation), built on torchvision's ``ResNet``/``BasicBlock``,
with a switch for the skip connections.

Layout (``w`` = width multiplier; sizes for a 32x32 input, and for 28x28 MNIST in brackets)::

    conv1    3x3 conv, stride 1, 64w channels + bn1 + relu (no max-pool: ``maxpool`` is an Identity)  32 [28]
    layer1   2 BasicBlocks,  64w channels                                                               32 [28]
    layer2   2 BasicBlocks, 128w channels (first block: stride 2, 1x1 projection shortcut)               16 [14]
    layer3   2 BasicBlocks, 256w channels (first block: stride 2, 1x1 projection shortcut)                8  [7]
    layer4   2 BasicBlocks, 512w channels (first block: stride 2, 1x1 projection shortcut)                4  [4]
    avgpool  global average pooling;  fc  linear layer to ``num_classes``

:class:`ResNet18` *is* a torchvision :class:`~torchvision.models.resnet.ResNet`: it keeps torchvision's
forward pass, module names (``conv1``, ``bn1``, ``layer1``..``layer4``, ``avgpool``, ``fc``), block
construction (``ResNet._make_layer``) and initialisation (Kaiming-normal fan-out convolutions, BN weight 1
and bias 0, PyTorch's default linear layer); only the stem (3x3 stride-1 conv instead of 7x7 stride 2, no
max-pool), the channel widths and the input channels differ from torchvision's ImageNet ``resnet18``. Every
block is a :class:`SkipSwitchBlock`, a torchvision ``BasicBlock`` subclass that adds nothing but the switch.
At width 1 with 3 input channels and 10 classes the network has 11,173,962 parameters.

Skip connections (``ResNet18Config.skip``)
    ``skip=True`` runs torchvision's ``BasicBlock.forward`` unchanged: ``relu(bn2(conv2(relu(bn1(conv1(x)))))
    + shortcut(x))`` with ``shortcut`` the identity or, where the shape changes, ``downsample`` (1x1 conv
    with stride 2 + BN). ``skip=False`` computes ``relu(bn2(conv2(relu(bn1(conv1(x))))))``: the same
    modules without the addition. Both settings build the *same module tree*: identical parameter and
    buffer names and counts, so checkpoints load into either and the comparison changes exactly the
    additions.

    What happens to the projection shortcuts without skips: the three ``downsample`` modules
    (``layer2.0``, ``layer3.0``, ``layer4.0``; at width 1 ``64*128 + 128*256 + 256*512`` conv weights
    plus ``2*(128 + 256 + 512)`` BN weights and biases = 173,824 parameters, 1.6 %) still exist, are
    counted and are saved, but they are never called: they receive no gradient (``.grad`` stays ``None``),
    their BN running statistics never update, and optimisers that skip parameters without gradients
    (PyTorch's SGD and Adam do, weight decay included) leave them at their initial values. So the no-skip
    net *uses* 11,000,138 of its 11,173,962 parameters (:meth:`ResNet18.count_parameters` with
    ``used_only=True``). Tools that insist every parameter gets a gradient (e.g. DistributedDataParallel
    without ``find_unused_parameters``) must be told.

Variant and initialisation (the switches of the 6n+2 family, so that the classifier matrix treats both alike)
    ``activation="tanh"`` puts a ``Tanh`` in every ``relu`` slot (the names stay), ``batchnorm=False`` makes
    torchvision's ``norm_layer`` an ``Identity`` (the convolutions stay bias-free, as torchvision's): the
    tanh / no-BN variant of the vanishing-gradient experiment. ``init="scaled"`` (default) is torchvision's
    initialisation (Xavier-normal with gain 5/3 instead of Kaiming for tanh); ``init="default"`` keeps PyTorch's
    per-layer defaults, as the 6n+2 family's ``default``.

Hooks: each block's ``relu`` module is called twice per forward pass (torchvision reuses it after bn1
and after the addition), the network-level ``relu`` once; hook the stages ``layer1``..``layer4`` or the
blocks (``layer4.1``) for one output per pass. Grad-CAM uses ``layer4`` (:data:`GRADCAM_LAYER`).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from cnnlab.models.resnet18_config import (  # noqa: F401  (re-exported: the config lives apart, see there)
    ACTIVATIONS,
    BLOCKS_PER_STAGE,
    FAMILY,
    GRADCAM_LAYER,
    INITS,
    STAGE_CHANNELS,
    STAGE_STRIDES,
    STAGES,
    ResNet18Config,
)


class SkipSwitchBlock(BasicBlock):
    """torchvision's ``BasicBlock`` whose residual addition can be switched off (``skip = False``).

    With ``skip`` on, :meth:`forward` is ``BasicBlock.forward`` itself; with it off, the same convolutions,
    BN layers and ReLU run without the addition, and ``downsample`` (if any) is not called.
    """

    skip: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.skip:
            return super().forward(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))

    def extra_repr(self) -> str:
        return f"skip={self.skip}"


class ResNet18(ResNet):
    """CIFAR-style ResNet-18 (see the module docstring). Input float ``[N, in_channels, H, W]``, output logits."""

    def __init__(self, config: ResNet18Config | None = None) -> None:
        config = config or ResNet18Config()
        # Without BN, torchvision's norm_layer is an Identity (it accepts and ignores the channel count).
        norm_layer = nn.BatchNorm2d if config.batchnorm else nn.Identity
        super().__init__(SkipSwitchBlock, list(BLOCKS_PER_STAGE), num_classes=config.num_classes,
                         norm_layer=norm_layer)
        self.config = config
        # Replace torchvision's ImageNet stem and rebuild the stages at the configured width with its own builder.
        channels = config.channels
        self.inplanes = channels[0]
        self.conv1 = nn.Conv2d(config.in_channels, channels[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = norm_layer(channels[0])
        self.maxpool = nn.Identity()
        for index, (name, planes, blocks) in enumerate(zip(STAGES, channels, BLOCKS_PER_STAGE, strict=True)):
            setattr(self, name, self._make_layer(SkipSwitchBlock, planes, blocks, stride=1 if index == 0 else 2))
        self.fc = nn.Linear(channels[-1], config.num_classes)
        if config.activation == "tanh":  # the same module names ("relu"), holding a tanh
            for module in [self, *self.blocks()]:
                module.relu = nn.Tanh()
        if config.init == "scaled":  # torchvision's initialisation, for the rebuilt modules; Xavier for tanh
            for module in self.modules():
                if isinstance(module, nn.Conv2d) and config.activation == "relu":
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(module, nn.Conv2d):
                    nn.init.xavier_normal_(module.weight, gain=nn.init.calculate_gain("tanh"))
                elif isinstance(module, nn.BatchNorm2d):
                    nn.init.ones_(module.weight)
                    nn.init.zeros_(module.bias)
        for block in self.blocks():
            block.skip = config.skip

    def blocks(self) -> list[SkipSwitchBlock]:
        """The eight residual blocks, ``layer1.0`` to ``layer4.1``."""
        return [block for name in STAGES for block in getattr(self, name)]

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(bn1(conv1(x)))`` (the max-pool is an identity)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def stage_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs of ``layer1``..``layer4`` (strides 1, 2, 4, 8 relative to ``x``)."""
        outputs = {}
        h = self.stem(x)
        for name in STAGES:
            h = getattr(self, name)(h)
            outputs[name] = h
        return outputs

    def unused_parameter_names(self) -> list[str]:
        """Parameters the forward pass never touches: the projection shortcuts when skips are off, else none."""
        if self.config.skip:
            return []
        return [
            f"{stage}.{i}.downsample.{name}"
            for stage in STAGES
            for i, block in enumerate(getattr(self, stage))
            if block.downsample is not None
            for name, _ in block.downsample.named_parameters()
        ]

    def count_parameters(self, used_only: bool = False) -> int:
        """Number of parameters; with ``used_only``, without :meth:`unused_parameter_names`."""
        unused = set(self.unused_parameter_names()) if used_only else set()
        return sum(p.numel() for name, p in self.named_parameters() if name not in unused)


def build_resnet18(config: ResNet18Config) -> ResNet18:
    """Build the network described by ``config`` (stored as ``model.config``)."""
    if not isinstance(config, ResNet18Config):
        raise TypeError(f"build_resnet18 needs a ResNet18Config, got {type(config).__name__}")
    return ResNet18(config)
