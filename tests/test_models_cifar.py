"""The CIFAR plain/residual family: paper parameter counts, structure, configs and trainability."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import UserError
from cnnlab.models.cifar import CifarNetConfig, PadShortcut, build_cifar_net, valid_depths


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth, paper_millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_parameter_counts_match_the_paper(depth: int, paper_millions: float) -> None:
    residual = build_cifar_net(CifarNetConfig("residual", depth))
    plain = build_cifar_net(CifarNetConfig("plain", depth))
    assert n_params(residual) == pytest.approx(paper_millions * 1e6, rel=0.03)
    assert n_params(plain) == n_params(residual)  # option A shortcuts have no parameters


def test_plain_and_residual_share_parameter_names_and_option_b_adds_projections() -> None:
    plain = build_cifar_net(CifarNetConfig("plain", 20))
    residual = build_cifar_net(CifarNetConfig("residual", 20))
    projected = build_cifar_net(CifarNetConfig("residual", 20, shortcut="B"))
    assert plain.state_dict().keys() == residual.state_dict().keys()
    extra = set(projected.state_dict()) - set(residual.state_dict())
    assert extra and all(".shortcut." in key for key in extra)
    # two projections (16->32, 32->64), each a 1x1 conv + BN (weight, bias)
    assert n_params(projected) - n_params(residual) == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


def test_widths_and_bias_follow_the_switches() -> None:
    wide = build_cifar_net(CifarNetConfig("residual", 8, width=2, num_classes=7, in_channels=1))
    assert [layer[0].conv1.out_channels for layer in (wide.layer1, wide.layer2, wide.layer3)] == [32, 64, 128]
    assert wide.fc.in_features == 128 and wide.fc.out_features == 7 and wide.stem.conv.in_channels == 1
    assert wide.stem.conv.bias is None
    no_bn = build_cifar_net(CifarNetConfig("plain", 8, batchnorm=False))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in no_bn.modules())
    assert all(m.bias is not None for m in no_bn.modules() if isinstance(m, nn.Conv2d))


VARIANTS = list(itertools.product(["plain", "residual"], ["relu", "tanh"], [True, False], ["A", "B"]))


@pytest.mark.parametrize("arch, activation, batchnorm, shortcut", VARIANTS)
def test_every_variant_maps_images_to_logits(arch: str, activation: str, batchnorm: bool, shortcut: str) -> None:
    config = CifarNetConfig(arch, 8, activation, batchnorm, shortcut, num_classes=5)
    model = build_cifar_net(config)
    assert model.config is config
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d) and isinstance(model.fc, nn.Linear)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    assert model.features(torch.randn(1, 3, 32, 32)).shape == (1, 64, 8, 8)


def test_every_module_runs_at_most_once_per_forward() -> None:
    """Grad-CAM and gradient hooks need each activation module to fire exactly once."""
    model = build_cifar_net(CifarNetConfig("residual", 14))
    calls: dict[str, int] = {}
    for name, module in model.named_modules():
        module.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    model(torch.randn(1, 3, 32, 32))
    assert max(calls.values()) == 1
    for layer in (model.layer1, model.layer2, model.layer3):
        assert len(layer) == 2
        for block in layer:
            assert block.act1 is not block.act2
            assert calls[_name_of(model, block.act1)] == calls[_name_of(model, block.act2)] == 1
    assert calls["stem.act"] == 1


def _name_of(model: nn.Module, target: nn.Module) -> str:
    return next(name for name, module in model.named_modules() if module is target)


def test_residual_switch_adds_the_shortcut() -> None:
    """A residual net equals the plain net with the same weights plus the block inputs."""
    torch.manual_seed(0)
    plain = build_cifar_net(CifarNetConfig("plain", 8, batchnorm=False)).eval()
    residual = build_cifar_net(CifarNetConfig("residual", 8, batchnorm=False)).eval()
    residual.load_state_dict(plain.state_dict())
    x = torch.randn(2, 16, 8, 8)
    block_p, block_r = plain.layer1[0], residual.layer1[0]
    inner = block_p.conv2(block_p.act1(block_p.conv1(x)))
    torch.testing.assert_close(block_p(x), torch.relu(inner))
    torch.testing.assert_close(block_r(x), torch.relu(inner + x))


def test_option_a_shortcut_subsamples_and_zero_pads() -> None:
    x = torch.randn(2, 16, 8, 8)
    y = PadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0


def test_scaled_init_is_variance_preserving() -> None:
    torch.manual_seed(0)
    relu = build_cifar_net(CifarNetConfig("plain", 20, init="scaled", width=2))
    conv = relu.layer3[1].conv1
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    tanh = build_cifar_net(CifarNetConfig("plain", 20, activation="tanh", init="scaled", width=2))
    conv = tanh.layer3[1].conv1
    xavier = 5 / 3 * math.sqrt(2 / (conv.in_channels * 9 + conv.out_channels * 9))
    assert conv.weight.std().item() == pytest.approx(xavier, rel=0.05)
    assert relu.fc.weight.std().item() == pytest.approx(1 / math.sqrt(relu.fc.in_features), rel=0.1)
    for module in relu.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    assert torch.all(relu.fc.bias == 0)
    default = build_cifar_net(CifarNetConfig("plain", 20, width=2))  # PyTorch's kaiming_uniform(a=sqrt 5)
    assert default.layer3[1].conv1.weight.std().item() < 0.5 * math.sqrt(2 / fan_out)


def test_names_list_only_non_default_variants() -> None:
    assert CifarNetConfig("residual", 56).name == "residual-56"
    assert CifarNetConfig("plain", 20, activation="tanh", batchnorm=False).name == "plain-20-tanh-nobn"
    assert CifarNetConfig("residual", 32, shortcut="B", width=2, init="scaled").name == "residual-32-B-w2-scaled"
    assert CifarNetConfig("plain", 32, shortcut="B").name == "plain-32"  # plain nets have no shortcut


def test_config_round_trips_through_a_dict() -> None:
    config = CifarNetConfig("plain", 44, "tanh", False, "B", 3, "scaled", 100, 1)
    assert CifarNetConfig.from_dict(config.to_dict()) == config
    assert CifarNetConfig.from_dict({"arch": "residual", "depth": 20}) == CifarNetConfig("residual", 20)


def test_valid_depths() -> None:
    assert valid_depths(35) == [32, 38]
    assert valid_depths(20) == [14, 20]
    assert valid_depths(1) == [8, 14]
    assert valid_depths(110, count=3) == [104, 110, 116]
    assert all((d - 2) % 6 == 0 for d in valid_depths(1000, count=5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "residual", "depth": 35}, "depth 35 is not 6n+2; nearest valid depths: 32, 38"),
        ({"arch": "residual", "depth": 2}, "depth 2 is not 6n+2; nearest valid depths: 8, 14"),
        ({"arch": "residual", "depth": "20"}, "depth must be an integer >= 1, got '20'"),
        ({"arch": "dense", "depth": 20}, "arch 'dense' is not supported: use one of plain, residual"),
        ({"arch": "plain", "depth": 20, "activation": "gelu"}, "activation 'gelu' is not supported: use one of relu,"),
        ({"arch": "plain", "depth": 20, "shortcut": "C"}, "shortcut 'C' is not supported: use one of A, B"),
        ({"arch": "plain", "depth": 20, "init": "ortho"}, "init 'ortho' is not supported: use one of default, scaled"),
        ({"arch": "plain", "depth": 20, "width": 0}, "width must be an integer >= 1, got 0"),
        ({"arch": "plain", "depth": 20, "batchnorm": "yes"}, "batchnorm must be true or false, got 'yes'"),
        ({"arch": "plain", "depth": 20, "num_classes": 1}, "num_classes must be an integer >= 2, got 1"),
    ],
)
def test_bad_configs_raise_user_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        CifarNetConfig(**kwargs)


def test_bad_dicts_raise_user_errors() -> None:
    with pytest.raises(UserError, match="unknown CIFAR net config key"):
        CifarNetConfig.from_dict({"arch": "plain", "depth": 20, "dropout": 0.1})
    with pytest.raises(UserError, match="missing key.* depth"):
        CifarNetConfig.from_dict({"arch": "plain"})
    with pytest.raises(TypeError):
        build_cifar_net({"arch": "plain", "depth": 20})  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", ["plain", "residual"])
def test_overfits_a_single_batch(arch: str) -> None:
    """64 random 8x8 images with random labels are memorised: the model can learn and gradients flow."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, 8, 8, generator=gen)
    y = torch.randint(0, 10, (64,), generator=gen)
    torch.manual_seed(0)
    model = build_cifar_net(CifarNetConfig(arch, 8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        optimizer.step()
    accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.98
