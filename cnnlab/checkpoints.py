"""Checkpoint files: the one format every stage writes and reads, and the checks that they fit the params.

A checkpoint is ``{"state_dict", "config", "extra"}`` saved with :func:`cnnlab.io.save_torch` (atomic,
loadable with ``weights_only=True``). ``config`` is the model config the weights were trained with (what
:func:`load_checkpoint` compares against the params); ``extra`` holds the rest: ``classes`` (the class names,
in label order), ``train_mean``/``train_std`` (the normalisation), ``metrics``, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import UserError
from cnnlab.io import load_torch, save_torch
from cnnlab.pipeline import classifier_checkpoint

#: the key of the class names in a checkpoint's ``extra``
CLASSES = "classes"
#: the key of the encoder family (``cnn``, ``resnet18``) in the ``extra`` of an encoder checkpoint
ENCODER = "encoder"


def encoder_hint(encoder: str) -> str:
    """How to remake the MNIST classifier checkpoint of ``encoder`` (whose encoder the FCNs reuse)."""
    return f"rerun `dvc repro train_encoder@{encoder}`"


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so configs from YAML, dataclasses and checkpoints compare equal."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_checkpoint(
    path: str | Path, model: nn.Module, config_dict: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> None:
    """Atomically save ``{"state_dict", "config", "extra"}``; tensors are stored contiguous on the CPU.

    ``config_dict`` is what :func:`load_checkpoint` compares against the params later (e.g. the model
    config's ``to_dict()``); ``extra`` holds anything else loadable with ``weights_only=True`` (metrics,
    class names under :data:`CLASSES`, normalisation).
    """
    state_dict = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_torch(path, {"state_dict": state_dict, "config": _plain(dict(config_dict)), "extra": dict(extra or {})})


def _describe(config: Mapping[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{key}={config[key]!r}" if key in config else f"{key} unset" for key in keys)


def load_checkpoint(
    path: str | Path,
    expected_config_dict: Mapping[str, Any],
    model: nn.Module | None = None,
    hint: str = "rerun `dvc repro`",
) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` and check it is the one the params describe.

    A config that differs from ``expected_config_dict`` raises :class:`UserError` naming the differing
    keys; with ``model`` the weights are loaded into it, and weights that do not fit raise
    :class:`UserError`. ``hint`` ends every message (e.g. ``"rerun `dvc repro train_classifier`"``).
    Returns the checkpoint dict (``state_dict``, ``config``, ``extra``).
    """
    state = load_torch(path, what="checkpoint", hint=hint)
    if not isinstance(state, dict) or not {"state_dict", "config"} <= state.keys():
        raise UserError(f"checkpoint {path} is not a cnnlab checkpoint (no state_dict/config): {hint}")
    saved, expected = _plain(dict(state["config"])), _plain(dict(expected_config_dict))
    keys = saved.keys() | expected.keys()
    differing = sorted(key for key in keys if saved.get(key, MISSING) != expected.get(key, MISSING))
    if differing:
        raise UserError(
            f"checkpoint {path} was trained with {_describe(saved, differing)}, "
            f"but params ask for {_describe(expected, differing)}: {hint}"
        )
    if model is not None:
        load_weights(model, state["state_dict"], f"checkpoint {path}", hint)
    return state


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str, hint: str) -> None:
    """``model.load_state_dict(state_dict)`` with a one-line :class:`UserError` when the weights do not fit."""
    own = model.state_dict()
    problems = []
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    mismatched = [key for key in own if key in state_dict and own[key].shape != state_dict[key].shape]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            shown = ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise UserError(f"{what} does not fit the model ({'; '.join(problems)}): {hint}")
    model.load_state_dict(state_dict)


def load_trained_classifier(key: str, model: nn.Module, classes: list[str] | None = None) -> dict:
    """Load the checkpoint of ``train_classifier@<key>`` into ``model``; returns its ``extra`` (classes, mean/std,
    metrics).

    ``model`` is a fresh CIFAR net built from the config the params describe for ``key`` (with ``num_classes``
    from the data); the checkpoint must have been trained with that config and, when ``classes`` is given, on
    those classes; otherwise a :class:`UserError` says which stage to rerun.
    """
    path = classifier_checkpoint(key)
    hint = f"run `dvc repro train_classifier@{key}`"
    if not path.exists():
        raise UserError(f"no trained checkpoint {path}: {hint} first")
    extra = load_checkpoint(path, model.config.to_dict(), model, hint)["extra"]
    if classes is not None and list(extra.get(CLASSES, [])) != list(classes):
        raise UserError(f"{path} was trained on classes {extra.get(CLASSES)}, but the data has {classes}: {hint}")
    return extra


def load_encoder_checkpoint(path: str | Path, encoder: str, model: nn.Module) -> nn.Module:
    """Load the MNIST classifier saved by ``train_encoder@<encoder>`` (whose encoder the FCN surgery reuses) into
    ``model``, a fresh classifier of that family built from the params; returns ``model``.

    Raises a :class:`UserError` ending in "rerun `dvc repro train_encoder@<encoder>`" when the file is missing or
    unreadable, when it holds another encoder family (``extra["encoder"]``, e.g. the CNN where a ResNet-18 is
    expected), when its config differs from ``model.config`` (the message names the differing keys), or when its
    weights do not fit that architecture.
    """
    hint = encoder_hint(encoder)
    state = load_torch(path, what="checkpoint", hint=hint)
    saved = (state.get("extra") or {}).get(ENCODER) if isinstance(state, dict) else None
    if saved is not None and saved != encoder:
        # checked before the configs: "channels unset, skip=True, ..." would not say what is wrong
        raise UserError(f"checkpoint {path} holds a {saved} encoder, but a {encoder} encoder is expected: {hint}")
    load_checkpoint(path, model.config.to_dict(), model=model, hint=hint)
    return model
