"""ResNet-18 (CIFAR stem) with a skip switch, and its FCN: parameter counts from the layer shapes, skip on/off
changes exactly the additions, gradients of the unused projections, Grad-CAM's closed form, FCN surgery."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from cnnlab.errors import UserError
from cnnlab.gradcam import grad_cam, normalize_maps
from cnnlab.models.fcn import FcnConfig
from cnnlab.models.resnet18 import GRADCAM_LAYER, ResNet18, ResNet18Config, build_resnet18
from cnnlab.models.resnet18_fcn import MIN_INPUT_SIZE, build_resnet18_fcn, grid_upsampler


def expected_parameters(width: float, in_channels: int, num_classes: int) -> tuple[int, int]:
    """(all parameters, those of the three projection shortcuts) of a CIFAR ResNet-18, from the layer shapes."""
    c = [int(64 * width * 2**i) for i in range(4)]
    bn = 2  # weight + bias per channel
    total = in_channels * c[0] * 9 + bn * c[0]  # stem 3x3 conv (no bias) + BN
    projections = 0
    c_in = c[0]
    for c_out in c:
        total += c_in * c_out * 9 + bn * c_out + c_out * c_out * 9 + bn * c_out  # first block
        if c_in != c_out:  # stride-2 stage: 1x1 projection + BN
            projections += c_in * c_out + bn * c_out
        total += 2 * (c_out * c_out * 9 + bn * c_out)  # second block
        c_in = c_out
    total += c[-1] * num_classes + num_classes  # fc
    return total + projections, projections


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def randomize_batchnorm(model: nn.Module, seed: int = 1) -> None:
    """Non-trivial BN affine parameters and running statistics, so eval-mode BN is not an identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))


def twins(width: float = 0.25, in_channels: int = 3) -> tuple[ResNet18, ResNet18]:
    """A skip and a no-skip ResNet-18 with identical weights and buffers."""
    with_skip = build_resnet18(ResNet18Config(skip=True, width=width, in_channels=in_channels))
    randomize_batchnorm(with_skip)
    without = build_resnet18(ResNet18Config(skip=False, width=width, in_channels=in_channels))
    without.load_state_dict(with_skip.state_dict())
    return with_skip.eval(), without.eval()


# ------------------------------------------------------------------------------------------------ parameters


@pytest.mark.parametrize("width, in_channels, num_classes", [(1, 3, 10), (0.25, 3, 10), (0.5, 1, 11)])
def test_parameter_counts_match_the_layer_shapes_with_and_without_skips(
    width: float, in_channels: int, num_classes: int
) -> None:
    total, projections = expected_parameters(width, in_channels, num_classes)
    for skip in (True, False):
        model = build_resnet18(ResNet18Config(skip=skip, width=width, num_classes=num_classes, in_channels=in_channels))
        assert n_params(model) == model.count_parameters() == total
        assert model.count_parameters(used_only=True) == (total if skip else total - projections)
    if (width, in_channels, num_classes) == (1, 3, 10):
        assert (total, projections) == (11_173_962, 173_824)  # the usual "11.17M" of the CIFAR ResNet-18


def test_skip_switch_keeps_the_module_tree_and_only_the_projections_go_unused() -> None:
    with_skip, without = twins()
    shapes = {k: v.shape for k, v in with_skip.state_dict().items()}
    assert shapes == {k: v.shape for k, v in without.state_dict().items()}
    assert [n for n, _ in with_skip.named_modules()] == [n for n, _ in without.named_modules()]
    assert with_skip.unused_parameter_names() == []
    unused = without.unused_parameter_names()
    assert sorted({name.split(".downsample.")[0] for name in unused}) == ["layer2.0", "layer3.0", "layer4.0"]
    assert len(unused) == 9  # conv weight, BN weight and BN bias of three projections


def test_blocks_are_torchvision_basic_blocks_and_the_stem_is_the_cifar_one() -> None:
    model = build_resnet18(ResNet18Config(width=0.25))
    assert isinstance(model, ResNet)
    blocks = model.blocks()
    assert len(blocks) == 8 and all(isinstance(b, BasicBlock) for b in blocks)
    assert [m for m in model.modules() if isinstance(m, BasicBlock)] == blocks
    assert (model.conv1.kernel_size, model.conv1.stride) == ((3, 3), (1, 1))
    assert isinstance(model.maxpool, nn.Identity)
    assert [b.stride for b in blocks] == [1, 1, 2, 1, 2, 1, 2, 1]
    assert [b.downsample is not None for b in blocks] == [False, False, True, False, True, False, True, False]


@pytest.mark.parametrize(
    "width, expected", [(0.25, [16, 32, 64, 128]), (0.5, [32, 64, 128, 256]), (1, [64, 128, 256, 512])]
)
def test_width_multiplier_scales_every_stage(width: float, expected: list[int]) -> None:
    model = build_resnet18(ResNet18Config(width=width, num_classes=7))
    assert model.conv1.out_channels == expected[0]
    assert [getattr(model, f"layer{i}")[1].conv2.out_channels for i in range(1, 5)] == expected
    assert (model.fc.in_features, model.fc.out_features) == (expected[-1], 7)
    assert model.config.channels == tuple(expected)


@pytest.mark.parametrize(
    "in_channels, size, stage_sizes", [(3, 32, [32, 16, 8, 4]), (1, 28, [28, 14, 7, 4]), (1, 29, [29, 15, 8, 4])]
)
def test_output_and_stage_shapes(in_channels: int, size: int, stage_sizes: list[int]) -> None:
    model = build_resnet18(ResNet18Config(width=0.25, in_channels=in_channels, num_classes=10)).eval()
    x = torch.randn(2, in_channels, size, size)
    with torch.no_grad():
        assert model(x).shape == (2, 10)
        stages = model.stage_outputs(x)
    assert [tuple(t.shape[1:]) for t in stages.values()] == [
        (c, s, s) for c, s in zip(model.config.channels, stage_sizes, strict=True)
    ]


# ------------------------------------------------------------------------------------------------ skip switch


@pytest.mark.parametrize("block_name", ["layer1.0", "layer2.0", "layer3.1", "layer4.0"])
def test_skip_on_and_off_differ_by_exactly_the_shortcut_term(block_name: str) -> None:
    with_skip, without = twins()
    block_skip = with_skip.get_submodule(block_name)
    block_plain = without.get_submodule(block_name)
    x = torch.randn(2, block_skip.conv1.in_channels, 8, 8)
    with torch.no_grad():
        b = block_skip
        pre = b.bn2(b.conv2(F.relu(b.bn1(b.conv1(x)))))
        shortcut = b.downsample(x) if b.downsample is not None else x
        assert shortcut.abs().sum() > 0 and (F.relu(pre + shortcut) != F.relu(pre)).any()
        torch.testing.assert_close(block_skip(x), F.relu(pre + shortcut), rtol=0, atol=1e-6)
        torch.testing.assert_close(block_plain(x), F.relu(pre), rtol=0, atol=1e-6)


def test_whole_networks_differ_and_the_switch_is_the_only_difference() -> None:
    with_skip, without = twins()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(with_skip(x), without(x))
        for block in without.blocks():
            block.skip = True
        torch.testing.assert_close(without(x), with_skip(x), rtol=0, atol=0)


def test_projection_shortcuts_get_no_gradient_and_stay_put_without_skips() -> None:
    with_skip, without = twins()
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    for model in (with_skip, without):
        model.train()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        for _ in range(2):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        grads = {name: p.grad for name, p in model.named_parameters()}
        projection = {name for name in grads if ".downsample." in name}
        assert len(projection) == 9
        after = model.state_dict()
        if model.config.skip:
            assert all(grads[n] is not None and grads[n].abs().sum() > 0 for n in projection)
            moved = [not torch.equal(after[k], before[k]) for k in after if ".downsample." in k]
            assert all(moved)  # weights, running statistics and batch counters of the projections
        else:
            assert all(grads[n] is None for n in projection)
            assert all(g is not None for n, g in grads.items() if n not in projection)
            # weights, BN running statistics and the batch counter of the projections: untouched
            assert all(torch.equal(after[k], before[k]) for k in after if ".downsample." in k)
            assert not torch.equal(after["layer2.0.conv1.weight"], before["layer2.0.conv1.weight"])


# ------------------------------------------------------------------------------------------------ config


def test_config_round_trip_names_and_errors() -> None:
    config = ResNet18Config(skip=False, width=0.25, num_classes=11, in_channels=1)
    assert ResNet18Config.from_dict(config.to_dict()) == config
    assert config.name == "resnet18-noskip-w0.25" and ResNet18Config().name == "resnet18"
    assert build_resnet18(config).config is config
    bad = [
        ({"width": 0.3}, "multiple of 1/64"),
        ({"width": 0}, "positive number"),
        ({"width": True}, "positive number"),
        ({"skip": "yes"}, "true or false"),
        ({"num_classes": 1}, "num_classes"),
        ({"in_channels": 0}, "in_channels"),
        ({"depth": 18}, "unknown ResNet-18 config key"),
    ]
    for data, message in bad:
        with pytest.raises(UserError, match=message):
            ResNet18Config.from_dict(data)
    with pytest.raises(TypeError):
        build_resnet18({"skip": True})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ Grad-CAM


@pytest.mark.parametrize("skip", [True, False])
def test_grad_cam_at_layer4_is_cam_from_the_linear_weights(skip: bool) -> None:
    """layer4 -> global average pooling -> fc: d y_c / d A_k = w_ck / (h w), so Grad-CAM = ReLU(sum_k w_ck A_k)."""
    model = build_resnet18(ResNet18Config(skip=skip, width=0.25))
    randomize_batchnorm(model)
    model.eval()
    images = torch.randn(4, 3, 32, 32)
    classes = torch.tensor([0, 3, 7, 9])
    captured = []
    handle = model.layer4.register_forward_hook(lambda module, inputs, output: captured.append(output.detach().clone()))
    with torch.no_grad():
        model(images)
    handle.remove()
    (activation,) = captured
    assert activation.shape[-2:] == (4, 4)
    weights = model.fc.weight.detach()[classes]  # [N, K]
    cam = F.relu(torch.einsum("nk,nkhw->nhw", weights, activation))
    cam = F.interpolate(cam[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]
    expected = normalize_maps(cam)
    maps = grad_cam(model, GRADCAM_LAYER, images, classes)
    assert (expected.flatten(1).amax(1) == 1).all()  # not all-zero maps: the comparison means something
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------ FCN


def mnist_classifier(skip: bool = True) -> ResNet18:
    model = build_resnet18(ResNet18Config(skip=skip, width=0.25, in_channels=1, num_classes=10))
    randomize_batchnorm(model)
    return model


@pytest.mark.parametrize("variant", ["fcn8s", "upsample"])
@pytest.mark.parametrize("num_classes", [11, 2])
def test_fcn_output_has_the_input_size(variant: str, num_classes: int) -> None:
    config = FcnConfig(variant=variant, num_classes=num_classes, decoder_channels=8)
    fcn = build_resnet18_fcn(mnist_classifier(), config)
    fcn.eval()
    with torch.no_grad():
        for size in [(28, 28), (56, 84), (29, 37), (MIN_INPUT_SIZE, MIN_INPUT_SIZE)]:
            assert fcn(torch.randn(2, 1, *size)).shape == (2, num_classes, *size)
    with pytest.raises(UserError, match="smaller than the ResNet-18 FCN's total stride 8"):
        fcn(torch.randn(1, 1, 7, 28))


@pytest.mark.parametrize("skip", [True, False])
def test_fcn_reuses_the_encoder_weights_and_the_skip_setting(skip: bool) -> None:
    classifier = mnist_classifier(skip)
    fcn = build_resnet18_fcn(classifier, FcnConfig(variant="fcn8s", num_classes=2))
    source = classifier.state_dict()
    encoder = fcn.encoder.state_dict()
    assert set(encoder) == {k for k in source if not k.startswith("fc.")}
    assert all(torch.equal(encoder[k], source[k]) for k in encoder)
    assert all(b.skip is skip for b in fcn.modules() if isinstance(b, BasicBlock))
    # a deep copy: training the FCN leaves the classifier alone
    assert not {p.data_ptr() for p in fcn.encoder.parameters()} & {p.data_ptr() for p in classifier.parameters()}


def train_step(fcn: nn.Module) -> None:
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 2, (4, 28, 28))
    optimizer = torch.optim.SGD([p for p in fcn.parameters() if p.requires_grad], lr=0.1)
    fcn.train()
    optimizer.zero_grad()
    F.cross_entropy(fcn(x), y).backward()
    optimizer.step()


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_keeps_the_encoder_fixed_after_a_training_step(freeze: bool) -> None:
    classifier = mnist_classifier()
    fcn = build_resnet18_fcn(classifier, FcnConfig(variant="fcn8s", num_classes=2, freeze_encoder=freeze))
    encoder_before = {k: v.clone() for k, v in fcn.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in fcn.decoder.state_dict().items()}
    train_step(fcn)
    assert fcn.encoder.training is not freeze and fcn.decoder.training
    encoder_after = fcn.encoder.state_dict()
    unchanged = [torch.equal(encoder_after[k], v) for k, v in encoder_before.items()]
    assert all(unchanged) if freeze else not any(unchanged[:3])  # conv1, bn1 weight and bias move when trained
    assert any(not torch.equal(fcn.decoder.state_dict()[k], v) for k, v in decoder_before.items())
    assert all(torch.equal(classifier.state_dict()[k], v) for k, v in encoder_before.items())


def test_grid_upsampler_interpolates_on_the_grid_of_centred_strided_convolutions() -> None:
    """A stride-2 centred conv samples fine pixels 0, 2, 4, ...; upsampling those samples of a linear ramp
    gives the ramp back (except the last pixel, beyond the last sample), with no half-pixel shift."""
    fine = torch.arange(12.0)[None, :] + 10 * torch.arange(10.0)[:, None]  # linear in both axes
    coarse = fine[::2, ::2]
    up = grid_upsampler(1)
    with torch.no_grad():
        out = up(coarse[None, None])[0, 0]
    assert out.shape == (10, 12)
    torch.testing.assert_close(out[:-1, :-1], fine[:-1, :-1], rtol=0, atol=1e-5)
    # the centred sampling really is what ResNet's stride-2 1x1 projection does
    conv = nn.Conv2d(1, 1, 1, stride=2, bias=False)
    nn.init.ones_(conv.weight)
    with torch.no_grad():
        torch.testing.assert_close(conv(fine[None, None])[0, 0], coarse)
