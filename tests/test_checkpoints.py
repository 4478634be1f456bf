"""Checkpoint files (cnnlab.checkpoints): round trip, mismatches as one-line user errors, trained classifiers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.checkpoints import (
    CLASSES,
    count_parameters,
    load_checkpoint,
    load_trained_classifier,
    save_checkpoint,
)
from cnnlab.errors import UserError
from cnnlab.models.cifar import CifarNetConfig, build_cifar_net


def small_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return build_cifar_net(CifarNetConfig("residual", 8, num_classes=num_classes))


def test_count_parameters_counts_all_or_only_trainable_parameters() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Conv2d(2, 4, 3))  # (3*2 + 2) + (2*4*9 + 4) = 8 + 76
    assert count_parameters(model) == 84
    model[0].requires_grad_(False)
    assert count_parameters(model) == 84 and count_parameters(model, trainable_only=True) == 76


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    config = CifarNetConfig("residual", 8, num_classes=4)
    model = small_net()
    save_checkpoint(tmp_path / "m.pt", model, config.to_dict(), {"test_acc": 0.5, "classes": ["a", "b"]})
    fresh = build_cifar_net(config)
    state = load_checkpoint(tmp_path / "m.pt", config.to_dict(), model=fresh)
    assert state["extra"] == {"test_acc": 0.5, "classes": ["a", "b"]}
    assert CifarNetConfig.from_dict(state["config"]) == config
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_checkpoint_mismatches_are_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    hint = "rerun `dvc repro train_classifier`"
    saved = CifarNetConfig("residual", 8, num_classes=4)
    save_checkpoint(path, small_net(), saved.to_dict(), {})
    with pytest.raises(UserError) as err:
        load_checkpoint(path, {**saved.to_dict(), "depth": 32}, hint=hint)
    assert str(err.value) == f"checkpoint {path} was trained with depth=8, but params ask for depth=32: {hint}"
    with pytest.raises(UserError) as err:
        load_checkpoint(path, {**saved.to_dict(), "depth": 14, "init": "scaled", "dropout": 0.1})
    trained = "trained with depth=8, dropout unset, init='default'"
    assert f"{trained}, but params ask for depth=14, dropout=0.1, init='scaled'" in str(err.value)
    with pytest.raises(UserError, match=r"does not fit the model \(wrong shape: fc.weight, fc.bias\): rerun"):
        load_checkpoint(path, saved.to_dict(), model=build_cifar_net(CifarNetConfig("residual", 8, num_classes=5)))
    with pytest.raises(UserError, match=r"does not fit the model \(missing: layer1.1.conv1.weight, .*\(\+\d+ more\)"):
        load_checkpoint(path, saved.to_dict(), model=build_cifar_net(CifarNetConfig("residual", 14, num_classes=4)))
    with pytest.raises(UserError, match="does not exist: rerun `dvc repro train_classifier`"):
        load_checkpoint(tmp_path / "missing.pt", saved.to_dict(), hint=hint)


def test_trained_classifier_is_checked_against_params_and_classes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    key, hint = "residual-8-relu-bn-0", "run `dvc repro train_classifier@residual-8-relu-bn-0`"
    config = CifarNetConfig("residual", 8).to_dict()
    with pytest.raises(UserError) as err:
        load_trained_classifier(key, build_cifar_net(CifarNetConfig.from_dict(config)))
    assert str(err.value) == f"no trained checkpoint models/classifier/{key}.pt: {hint} first"
    saved = small_net(num_classes=4)
    save_checkpoint(f"models/classifier/{key}.pt", saved, {**config, "num_classes": 4}, {CLASSES: list("abcd")})
    model = build_cifar_net(CifarNetConfig.from_dict({**config, "num_classes": 4}))
    extra = load_trained_classifier(key, model, classes=list("abcd"))
    assert extra == {CLASSES: list("abcd")}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in saved.state_dict().items())
    with pytest.raises(UserError, match=r"was trained on classes \['a', 'b', 'c', 'd'\], but the data has .*: run"):
        load_trained_classifier(key, model, classes=list("abce"))
    with pytest.raises(UserError, match=r"was trained with depth=8, .*but params ask for depth=14.*: run `dvc repro"):
        load_trained_classifier(key, build_cifar_net(CifarNetConfig("residual", 14, num_classes=4)), list("abcd"))
