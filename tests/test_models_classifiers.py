"""The classifier matrix's two families behind one config: depth 18 is ResNet-18 (plain = skips off), the rest
6n+2 nets; the variant and init switches mean the same in both; checkpoints of one family never load as the
other; Grad-CAM's default layer is each family's last stage."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlab.checkpoints import load_checkpoint, save_checkpoint
from cnnlab.errors import UserError
from cnnlab.families import family_of, model_label
from cnnlab.gradcam import grad_cam, resolve_layer
from cnnlab.models.cifar import CifarNet, CifarNetConfig
from cnnlab.models.classifiers import build_classifier, classifier_config, config_from_dict, default_gradcam_layer
from cnnlab.models.resnet18 import ResNet18, ResNet18Config
from cnnlab.params.classifiers import model_config
from helpers import torchvision_loaded_after


def test_the_depth_picks_the_family_and_arch_the_skips():
    assert family_of(18) == "resnet18" and family_of(20) == "6n+2" and family_of(8) == "6n+2"
    plain, residual = (classifier_config(arch, 18, resnet18_width=0.25) for arch in ("plain", "residual"))
    assert isinstance(plain, ResNet18Config) and not plain.skip and residual.skip
    assert isinstance(classifier_config("plain", 20), CifarNetConfig)
    assert isinstance(build_classifier(plain), ResNet18) and isinstance(build_classifier(classifier_config("plain", 8)),
                                                                         CifarNet)
    assert [model_label(a, 18) for a in ("plain", "residual")] == ["resnet18-noskip", "resnet18"]
    assert model_label("plain", 56) == "plain-56"


@pytest.mark.parametrize("arch, depth", [("plain", 18), ("residual", 18), ("residual", 20)])
def test_config_dicts_round_trip_and_build_the_same_network(arch, depth):
    config = classifier_config(arch, depth, activation="tanh", batchnorm=False, init="scaled", resnet18_width=0.25,
                               num_classes=7, in_channels=1)
    data = config.to_dict()
    assert ("family" in data) == (depth == 18)  # a 6n+2 dict reads as before ResNet-18 joined the matrix
    assert config_from_dict(data) == config
    torch.manual_seed(0)
    a = build_classifier(data)
    torch.manual_seed(0)
    b = build_classifier(config)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert a(torch.randn(2, 1, 32, 32)).shape == (2, 7)


def test_bad_depth_and_family_give_one_line_errors():
    with pytest.raises(UserError, match=r"depth 35 is neither 6n\+2 \(nearest: 32, 38\) nor 18 \(ResNet-18\)"):
        classifier_config("plain", 35)
    with pytest.raises(UserError, match="family 'vgg' is not supported: use one of 6n\\+2, resnet18"):
        config_from_dict({"family": "vgg"})
    with pytest.raises(UserError, match="arch 'dense' is not supported"):
        classifier_config("dense", 18)
    with pytest.raises(UserError, match="classifier plain-18-relu-bn: ResNet-18 width 0.3 gives 19.2 stem channels"):
        model_config("plain", 18, "relu-bn", params={"train_classifier": {"resnet18_width": 0.3}})


def test_params_give_resnet18_its_own_width_and_the_6n2_nets_theirs():
    params = {"train_classifier": {"width": 2, "resnet18_width": 0.5, "shortcut": "B", "init": "scaled"}}
    resnet = model_config("residual", 18, "relu-bn", params=params)
    assert resnet["family"] == "resnet18" and resnet["width"] == 0.5 and "shortcut" not in resnet
    six = model_config("residual", 20, "relu-bn", params=params)
    assert six["width"] == 2 and six["shortcut"] == "B" and "family" not in six


def test_resnet18_tanh_nobn_variant_has_no_batchnorm_and_tanh_where_the_relus_were():
    net = build_classifier(classifier_config("residual", 18, activation="tanh", batchnorm=False,
                                             resnet18_width=0.25))
    kinds = {type(m) for m in net.modules()}
    assert nn.BatchNorm2d not in kinds and nn.ReLU not in kinds
    assert sum(isinstance(m, nn.Tanh) for m in net.modules()) == 1 + 8  # the stem's and one per block (reused)
    # no BN: every convolution is bias-free (torchvision's), so the net is odd in its input up to the fc bias
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(net(x) + net(-x), 2 * net.fc.bias.expand(3, -1), atol=1e-5)


def test_scaled_init_is_kaiming_fan_out_and_default_is_pytorchs():
    """std of a 3x3 conv weight: scaled = sqrt(2 / fan_out) (torchvision's); default = PyTorch's kaiming_uniform
    with a = sqrt(5): bound 1 / sqrt(fan_in), std = 1 / sqrt(3 fan_in)."""
    torch.manual_seed(0)
    for init, expected in (("scaled", lambda fi, fo: math.sqrt(2 / fo)),
                           ("default", lambda fi, fo: 1 / math.sqrt(3 * fi))):
        net = build_classifier(classifier_config("residual", 18, init=init, resnet18_width=1))
        weight = net.layer3[1].conv1.weight  # 256 -> 256 channels, 3x3: ~590k samples
        fan_in = fan_out = 256 * 9
        assert weight.std().item() == pytest.approx(expected(fan_in, fan_out), rel=0.02), init


def test_a_checkpoint_of_the_other_family_or_skip_setting_is_refused_in_one_line(tmp_path):
    resnet = build_classifier(classifier_config("residual", 18, resnet18_width=0.25))
    path = tmp_path / "c.pt"
    save_checkpoint(path, resnet, resnet.config.to_dict())
    noskip = classifier_config("plain", 18, resnet18_width=0.25)
    with pytest.raises(UserError, match=r"trained with skip=True, but params ask for skip=False: rerun"):
        load_checkpoint(path, noskip.to_dict(), build_classifier(noskip), hint="rerun")
    six = classifier_config("residual", 20)
    with pytest.raises(UserError, match=r"trained with .*family='resnet18'.*but params ask for .*family unset"):
        load_checkpoint(path, six.to_dict(), build_classifier(six), hint="rerun")


@pytest.mark.parametrize("depth, layer, size", [(20, "layer3", 8), (18, "layer4", 4)])
def test_gradcam_defaults_to_the_last_stage_of_each_family(depth, layer, size):
    config = classifier_config("residual", depth, resnet18_width=0.25, init="scaled")
    assert default_gradcam_layer(config) == default_gradcam_layer(config.to_dict()) == layer
    net = build_classifier(config).eval()
    name, module = resolve_layer(net, layer)
    seen = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[-2:]))
    maps = grad_cam(net, name, torch.randn(2, 3, 32, 32), torch.tensor([1, 2]))
    handle.remove()
    assert seen[0] == (size, size)  # the map Grad-CAM weights, upsampled to the image
    assert maps.shape == (2, 32, 32) and maps.min() >= 0 and maps.max() <= 1


def test_a_6n2_classifier_starts_without_torchvision_and_resnet18_brings_it():
    """torchvision's import costs seconds of start-up: a 6n+2 stage (params with ResNet-18 in them validated, config,
    build, checkpoint dict) never loads it;
    the default Grad-CAM layers agree with the ResNet-18 module's own constant."""
    from cnnlab.models import resnet18
    from cnnlab.models.classifiers import GRADCAM_LAYERS

    assert GRADCAM_LAYERS["resnet18"] == resnet18.GRADCAM_LAYER
    assert torchvision_loaded_after(
        "from cnnlab.params import load_params; params = load_params(); "
        "assert 18 in params['classifier']['depths'] and 'resnet18' in params['fcn']['encoders']; "
        "from cnnlab.models.classifiers import build_classifier, classifier_config, config_from_dict, "
        "default_gradcam_layer; c = classifier_config('residual', 20); "
        "build_classifier(config_from_dict(c.to_dict())); default_gradcam_layer(c)",
        "build_classifier(classifier_config('plain', 18, resnet18_width=0.125))",
    ) == [False, True]
