"""Sections ``train_mnist_cnn`` and ``train_fcn``: the MNIST CNN, the FCN surgery and their training configs."""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.config import boolean, choice, get, integer
from cnnlab.errors import UserError
from cnnlab.models.fcn import VARIANTS, FcnConfig
from cnnlab.models.mnist import MnistCnnConfig
from cnnlab.params.sections import _located, _section
from cnnlab.params.training import train_config
from cnnlab.training import TrainConfig

FCN_VARIANT_KEYS = ("freeze_encoder", "decoder_channels", "training")
CLASS_WEIGHTINGS = ("none", "inverse_sqrt_frequency")


def mnist_cnn_config(params: dict) -> MnistCnnConfig:
    """The architecture in ``train_mnist_cnn.model``: what ``train_mnist_cnn`` builds and ``train_fcn`` expects."""
    key = "train_mnist_cnn.model"
    section = _section(params, key)
    try:
        return MnistCnnConfig.from_dict(section)
    except UserError as err:
        raise _located(key, err) from None


@dataclass(frozen=True)
class MnistCnnParams:
    """Section ``train_mnist_cnn``: ``model`` (MnistCnnConfig fields), ``training`` (TrainConfig fields),
    ``augment``."""

    model: MnistCnnConfig
    train: TrainConfig
    augment: bool
    seed: int
    nproc: int = 1  # processes training together, via torchrun when > 1


def mnist_cnn_params(params: dict, device: str | None = None) -> MnistCnnParams:
    s = "train_mnist_cnn"
    section = _section(params, s, allowed=("model", "training", "augment", "nproc"))
    return MnistCnnParams(
        model=mnist_cnn_config(params),
        train=train_config(params, f"{s}.training", device=device),
        augment=boolean(f"{s}.augment", get(section, "augment", False)),
        seed=integer("seed", get(params, "seed"), 0),
        nproc=integer(f"{s}.nproc", get(section, "nproc", 1), 1),
    )


@dataclass(frozen=True)
class FcnParams:
    """Section ``train_fcn`` for one variant, plus the encoder architecture the CNN checkpoint must have.

    ``train`` is ``train_fcn.training`` updated by ``train_fcn.<variant>.training``; ``model`` holds
    ``train_fcn.<variant>``'s FcnConfig fields (``freeze_encoder``, ``decoder_channels``).
    """

    variant: str
    encoder: MnistCnnConfig
    model: FcnConfig
    train: TrainConfig
    train_size: int | None
    class_weighting: str
    confusion_pixels: int
    preview_digits: int
    preview_canvases: int
    seed: int
    nproc: int = 1  # processes training together (train_fcn.nproc), via torchrun when > 1


def fcn_params(params: dict, variant: str, device: str | None = None) -> FcnParams:
    if variant not in VARIANTS:
        raise UserError(f"unknown FCN variant {variant!r}: use one of {', '.join(VARIANTS)}")
    s = "train_fcn"
    variant_key = f"{s}.{variant}"
    section = _section(params, variant_key, allowed=FCN_VARIANT_KEYS)
    overrides = section.get("training") or {}
    if not isinstance(overrides, dict):
        raise UserError(
            f"params.yaml: {variant_key}.training={overrides!r} must be a mapping of training keys to values")
    try:
        model = FcnConfig(variant=variant, **{k: v for k, v in section.items() if k != "training"})
    except UserError as err:
        raise _located(variant_key, err) from None
    return FcnParams(
        variant=variant,
        encoder=mnist_cnn_config(params),
        model=model,
        train=train_config(params, f"{s}.training", overrides, f"{variant_key}.training", device),
        train_size=integer(f"{s}.train_size", get(params, f"{s}.train_size"), 1, allow_none=True),
        class_weighting=choice(f"{s}.class_weighting", get(params, f"{s}.class_weighting"), CLASS_WEIGHTINGS),
        confusion_pixels=integer(f"{s}.confusion_pixels", get(params, f"{s}.confusion_pixels"), 1),
        preview_digits=integer(f"{s}.preview.digits", get(params, f"{s}.preview.digits"), 1),
        preview_canvases=integer(f"{s}.preview.canvases", get(params, f"{s}.preview.canvases"), 1),
        seed=integer("seed", get(params, "seed"), 0),
        nproc=integer(f"{s}.nproc", get(params, f"{s}.nproc", 1), 1),
    )
