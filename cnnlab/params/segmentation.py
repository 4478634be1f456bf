"""Sections ``fcn``, ``train_encoder`` and ``train_fcn``: the MNIST encoders, the FCN variants and their training.

- ``fcn.encoders``: the encoder families trained on MNIST, one ``train_encoder@<encoder>`` stage each
  (:data:`cnnlab.models.encoders.ENCODERS`: ``cnn``, ``resnet18``);
- ``fcn.variants``: a mapping ``<variant>: {encoder, decoder, target}``, one ``train_fcn@<variant>`` stage each.
  A mapping, not a list, so that dvc.yaml's ``foreach`` can give every variant the exact encoder checkpoint it
  depends on (``${item.encoder}``);
- ``train_encoder``: ``nproc``, ``augment``, ``training`` (shared) and per encoder ``model`` (its config) and an
  optional ``training`` that updates the shared one;
- ``train_fcn``: shared keys, ``training``, and per variant ``freeze_encoder``, ``decoder_channels``, ``training``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnnlab.classes import SEGMENT_TARGETS as TARGETS
from cnnlab.config import boolean, choice, get, integer
from cnnlab.errors import UserError
from cnnlab.models.encoders import ENCODERS, encoder_config
from cnnlab.models.fcn import VARIANTS as DECODERS
from cnnlab.models.fcn import FcnConfig
from cnnlab.params.sections import _located, _section
from cnnlab.params.training import train_config
from cnnlab.training import TrainConfig

FCN_VARIANT_KEYS = ("freeze_encoder", "decoder_channels", "training")
VARIANT_KEYS = ("encoder", "decoder", "target")  # fcn.variants.<variant>: what the variant is
ENCODER_KEYS = ("model", "training")  # train_encoder.<encoder>
CLASS_WEIGHTINGS = ("none", "inverse_sqrt_frequency")


def fcn_encoders(params: dict) -> list[str]:
    """``fcn.encoders``: a non-empty list of distinct encoder names."""
    key = "fcn.encoders"
    value = get(params, key)
    if not isinstance(value, list) or not value or len(set(map(str, value))) != len(value):
        raise UserError(f"params.yaml: {key}={value!r} must be a non-empty list of distinct encoder names "
                        f"({', '.join(ENCODERS)})")
    for name in value:
        choice(key, name, ENCODERS)
    return value


@dataclass(frozen=True)
class Variant:
    """``fcn.variants.<name>``: the encoder family it reuses, its decoder and its target."""

    name: str
    encoder: str
    decoder: str
    target: str

    @property
    def classes(self) -> list[str]:
        return TARGETS[self.target]


def _variants_section(params: dict) -> dict:
    key = "fcn.variants"
    value = get(params, key)
    if not isinstance(value, dict) or not value:
        raise UserError(f"params.yaml: {key}={value!r} must be a mapping <variant>: {{encoder, decoder, target}}, "
                        "e.g. {fcn8s: {encoder: cnn, decoder: fcn8s, target: digits}}")
    return value


def fcn_variant(params: dict, name: str) -> Variant:
    """``fcn.variants.<name>``, validated; reads no other variant (what ``train_fcn@<name>`` declares)."""
    variants = _variants_section(params)
    if name not in variants:
        raise UserError(f"unknown FCN variant {name!r}: use one of {', '.join(map(str, variants))} (fcn.variants)")
    where = f"fcn.variants.{name}"
    section = _section(params, where, allowed=VARIANT_KEYS)
    missing = [k for k in VARIANT_KEYS if k not in section]
    if missing:
        raise UserError(f"params.yaml: {where} lacks {', '.join(missing)}: give encoder, decoder and target")
    return Variant(str(name), choice(f"{where}.encoder", section["encoder"], ENCODERS),
                   choice(f"{where}.decoder", section["decoder"], DECODERS),
                   choice(f"{where}.target", section["target"], TARGETS))


def fcn_variants(params: dict) -> dict[str, Variant]:
    """Every entry of ``fcn.variants``, validated, and each one's encoder is in ``fcn.encoders`` (otherwise no
    stage would write the checkpoint it depends on; :mod:`cnnlab.params.check` runs this at load)."""
    variants = {str(name): fcn_variant(params, name) for name in _variants_section(params)}
    encoders = fcn_encoders(params)
    for v in variants.values():
        if v.encoder not in encoders:
            raise UserError(f"params.yaml: fcn.variants.{v.name}.encoder={v.encoder!r} is not trained: add it to "
                            f"fcn.encoders={encoders!r}")
    return variants


def encoder_model_config(params: dict, name: str) -> Any:
    """The architecture in ``train_encoder.<name>.model``: what ``train_encoder@<name>`` builds and ``train_fcn``
    expects to find in the checkpoint."""
    key = f"train_encoder.{name}.model"
    try:
        return encoder_config(name, _section(params, key))
    except UserError as err:
        raise _located(key, err) from None


def _overrides(section: Mapping, key: str) -> dict:
    overrides = section.get("training") or {}
    if not isinstance(overrides, dict):
        raise UserError(f"params.yaml: {key}.training={overrides!r} must be a mapping of training keys to values")
    return overrides


@dataclass(frozen=True)
class EncoderParams:
    """Section ``train_encoder`` for one encoder: ``model`` (its config), ``train`` (``train_encoder.training``
    updated by ``train_encoder.<encoder>.training``), ``augment``."""

    encoder: str
    model: Any
    train: TrainConfig
    augment: bool
    seed: int
    nproc: int = 1  # processes training together, via torchrun when > 1


def encoder_params(params: dict, name: str, device: str | None = None) -> EncoderParams:
    if name not in ENCODERS:
        raise UserError(f"unknown FCN encoder {name!r}: use one of {', '.join(ENCODERS)}")
    s = "train_encoder"
    section = _section(params, s, allowed=("nproc", "augment", "training", *ENCODERS))
    own = _section(params, f"{s}.{name}", allowed=ENCODER_KEYS)
    return EncoderParams(
        encoder=name,
        model=encoder_model_config(params, name),
        train=train_config(params, f"{s}.training", _overrides(own, f"{s}.{name}"), f"{s}.{name}.training", device),
        augment=boolean(f"{s}.augment", get(section, "augment", False)),
        seed=integer("seed", get(params, "seed"), 0),
        nproc=integer(f"{s}.nproc", get(section, "nproc", 1), 1),
    )


@dataclass(frozen=True)
class FcnParams:
    """Section ``train_fcn`` for one variant, plus what the variant is and the encoder its checkpoint must have.

    ``train`` is ``train_fcn.training`` updated by ``train_fcn.<variant>.training``; ``model`` holds the decoder
    (``fcn.variants.<variant>.decoder``), ``train_fcn.<variant>``'s ``freeze_encoder``/``decoder_channels`` and
    the target's number of classes.
    """

    variant: Variant
    encoder: Any  # the encoder family's config (train_encoder.<encoder>.model)
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
    v = fcn_variant(params, variant)
    s = "train_fcn"
    variant_key = f"{s}.{variant}"
    section = _section(params, variant_key, allowed=FCN_VARIANT_KEYS)
    try:
        model = FcnConfig(variant=v.decoder, num_classes=len(v.classes),
                          **{k: val for k, val in section.items() if k != "training"})
    except UserError as err:
        raise _located(variant_key, err) from None
    return FcnParams(
        variant=v,
        encoder=encoder_model_config(params, v.encoder),
        model=model,
        train=train_config(params, f"{s}.training", _overrides(section, variant_key), f"{variant_key}.training",
                           device),
        train_size=integer(f"{s}.train_size", get(params, f"{s}.train_size"), 1, allow_none=True),
        class_weighting=choice(f"{s}.class_weighting", get(params, f"{s}.class_weighting"), CLASS_WEIGHTINGS),
        confusion_pixels=integer(f"{s}.confusion_pixels", get(params, f"{s}.confusion_pixels"), 1),
        preview_digits=integer(f"{s}.preview.digits", get(params, f"{s}.preview.digits"), 1),
        preview_canvases=integer(f"{s}.preview.canvases", get(params, f"{s}.preview.canvases"), 1),
        seed=integer("seed", get(params, "seed"), 0),
        nproc=integer(f"{s}.nproc", get(params, f"{s}.nproc", 1), 1),
    )
