"""The configuration of :class:`cnnlab.models.resnet18.ResNet18` and the constants of its layout, apart from the
network: this module does not import torchvision, whose import costs ~1.8 s of start-up on a 2-core CPU
(``torchvision.ops`` pulls in ``torch._dynamo``), so that validating params or building a 6n+2 net does not pay
for it. :mod:`cnnlab.models.resnet18` re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from cnnlab.config import config_from_dict, require_int
from cnnlab.errors import UserError
from cnnlab.families import RESNET18

STAGE_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = (2, 2, 2, 2)
STAGES = ("layer1", "layer2", "layer3", "layer4")
STAGE_STRIDES = (1, 2, 4, 8)  # output stride of each stage relative to the input (stride-1 stem, no max-pool)
GRADCAM_LAYER = "layer4"
FAMILY = RESNET18  # the ``family`` entry of a config dict (checkpoints, params)
ACTIVATIONS = ("relu", "tanh")
INITS = ("scaled", "default")


@dataclass(frozen=True)
class ResNet18Config:
    """Architecture of a :class:`ResNet18`; validated on construction (bad values raise :class:`UserError`).

    ``width`` multiplies every channel count; ``64 * width`` must be a whole number (e.g. 0.25, 0.5, 1, 2).
    """

    skip: bool = True
    width: float = 1
    num_classes: int = 10
    in_channels: int = 3
    activation: str = "relu"
    batchnorm: bool = True
    init: str = "scaled"

    def __post_init__(self) -> None:
        for name in ("skip", "batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"ResNet-18 {name} must be true or false, got {getattr(self, name)!r}")
        for name, allowed in (("activation", ACTIVATIONS), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise UserError(f"ResNet-18 {name} {getattr(self, name)!r} is not supported: use one of "
                                f"{', '.join(allowed)}")
        width = self.width
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise UserError(f"ResNet-18 width must be a positive number (e.g. 0.25, 0.5, 1), got {width!r}")
        if (64 * width) % 1:
            raise UserError(
                f"ResNet-18 width {width!r} gives {64 * width:g} stem channels: "
                "use a multiple of 1/64, e.g. 0.25 or 0.5"
            )
        require_int(self.num_classes, "ResNet-18 num_classes", 2)
        require_int(self.in_channels, "ResNet-18 in_channels", 1)

    @property
    def channels(self) -> tuple[int, ...]:
        """Output channels of ``layer1``..``layer4``."""
        return tuple(int(c * self.width) for c in STAGE_CHANNELS)

    @property
    def name(self) -> str:
        """Short label: ``"resnet18"``, ``"resnet18-noskip"``, ``"resnet18-noskip-w0.25"``."""
        parts = ["resnet18"]
        if not self.skip:
            parts.append("noskip")
        if self.activation != "relu":
            parts.append(self.activation)
        if not self.batchnorm:
            parts.append("nobn")
        if self.width != 1:
            parts.append(f"w{self.width:g}")
        if self.init != "scaled":
            parts.append(f"{self.init}-init")
        return "-".join(parts)

    def to_dict(self) -> dict:
        """Plain dict of every field plus ``family: "resnet18"`` (what checkpoints store and :meth:`from_dict`
        inverts; the family tells a ResNet-18 config from a 6n+2 one, see :mod:`cnnlab.models.classifiers`)."""
        return {"family": FAMILY, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResNet18Config:
        """Build from a params dict (a ``family`` entry, if any, must be ``"resnet18"``); unknown keys raise
        :class:`UserError`."""
        data = dict(data)
        family = data.pop("family", FAMILY)
        if family != FAMILY:
            raise UserError(f"ResNet-18 config with family {family!r}: expected {FAMILY!r}")
        return config_from_dict(cls, data, "ResNet-18 config")
