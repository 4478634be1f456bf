"""The MNIST CNN, the FCN surgery on it and their user-facing errors."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from cnnlab.checkpoints import load_encoder_checkpoint, save_checkpoint
from cnnlab.errors import UserError
from cnnlab.io import save_torch
from cnnlab.models.encoders import build_classifier
from cnnlab.models.fcn import FcnConfig, build_fcn, min_input_size
from cnnlab.models.mnist import MnistCnn, MnistCnnConfig
from cnnlab.models.resnet18 import ResNet18Config
from cnnlab.models.segmenters import build_segmenter
from helpers import torchvision_loaded_after

SMALL_CNN = MnistCnnConfig(channels=(8, 16, 32))
VARIANTS = ("upsample", "fcn8s")


def small_fcn(variant: str, freeze: bool = False, cnn: MnistCnn | None = None):
    return build_fcn(cnn or MnistCnn(SMALL_CNN), FcnConfig(variant=variant, freeze_encoder=freeze, decoder_channels=16))


def randomise_bn_stats(model: torch.nn.Module) -> None:
    """Give BN layers non-default running statistics, as a trained CNN would have."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)


# --- the classifier ------------------------------------------------------------------------------


def test_default_cnn_is_compact_and_halves_resolution_per_block():
    cnn = MnistCnn()
    assert 100_000 <= sum(p.numel() for p in cnn.parameters()) <= 300_000
    assert [name for name, _ in cnn.encoder.named_children()] == ["block1", "block2", "block3"]
    x = torch.randn(2, 1, 28, 28)
    sizes = []
    for block in cnn.encoder:
        x = block(x)
        sizes.append(tuple(x.shape[-2:]))
    assert sizes == [(14, 14), (7, 7), (4, 4)]


@pytest.mark.parametrize("size", [(28, 28), (8, 8), (29, 45)])
def test_cnn_classifies_any_size_at_least_its_stride(size):
    assert MnistCnn(SMALL_CNN)(torch.randn(3, 1, *size)).shape == (3, 10)


def test_config_round_trips_through_dict():
    config = MnistCnnConfig(channels=(4, 8), convs_per_block=1, dropout=0.1)
    assert config.to_dict()["channels"] == [4, 8]
    assert MnistCnnConfig.from_dict(config.to_dict()) == config
    fcn = FcnConfig(variant="fcn8s", freeze_encoder=True, decoder_channels=32)
    assert FcnConfig.from_dict(fcn.to_dict()) == fcn


def test_unknown_config_keys_are_named():
    with pytest.raises(UserError, match=r"unknown MNIST CNN config key\(s\) chanels: allowed keys are channels, "):
        MnistCnnConfig.from_dict({"chanels": [8, 16]})
    with pytest.raises(UserError, match=r"unknown FCN config key\(s\) freeze, varient: allowed keys are variant, "):
        FcnConfig.from_dict({"varient": "fcn8s", "freeze": True})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": []}, "channels must be a non-empty list of integers, got []"),
        ({"channels": [8, 0]}, "every MNIST CNN channels entry must be an integer >= 1, got 0"),
        ({"dropout": 1.5}, "dropout must be a number in [0, 1), got 1.5"),
        ({"num_classes": 1}, "num_classes must be an integer >= 2, got 1"),
    ],
)
def test_bad_cnn_config_values(kwargs, message):
    with pytest.raises(UserError, match=re.escape(message)):
        MnistCnnConfig.from_dict(kwargs)


def test_bad_fcn_config_values():
    with pytest.raises(UserError, match=re.escape("unknown FCN variant 'fcn32s': use one of upsample, fcn8s")):
        FcnConfig(variant="fcn32s")
    with pytest.raises(UserError, match=re.escape("freeze_encoder must be true or false, got 'yes'")):
        FcnConfig(freeze_encoder="yes")
    with pytest.raises(UserError, match=re.escape("decoder_channels must be an integer >= 1, got 0")):
        FcnConfig(decoder_channels=0)


# --- surgery ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(28, 28), (56, 84), (29, 31), (33, 50), (8, 8), (9, 17)])
def test_fcn_output_has_the_input_size(variant, size):
    fcn = small_fcn(variant)
    assert fcn(torch.randn(2, 1, *size)).shape == (2, 11, *size)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fcn_works_for_other_encoder_depths(variant):
    cnn = MnistCnn(MnistCnnConfig(channels=(8, 16), convs_per_block=1))
    fcn = build_fcn(cnn, FcnConfig(variant=variant, decoder_channels=8))
    assert fcn(torch.randn(1, 1, 13, 10)).shape == (1, 11, 13, 10)
    with pytest.raises(UserError, match="total stride 4"):
        fcn(torch.randn(1, 1, 3, 10))


@pytest.mark.parametrize("variant", VARIANTS)
def test_too_small_input_names_the_minimum(variant):
    fcn = small_fcn(variant)
    assert min_input_size(SMALL_CNN) == 8
    message = "input 5x5 is smaller than the FCN's total stride 8: use images of at least 8x8"
    with pytest.raises(UserError, match=re.escape(message)):
        fcn(torch.randn(1, 1, 5, 5))
    with pytest.raises(UserError, match=re.escape("input 7x40 is smaller than the CNN's total stride 8")):
        MnistCnn(SMALL_CNN)(torch.randn(1, 1, 7, 40))


@pytest.mark.parametrize("variant", VARIANTS)
def test_surgery_copies_the_trained_encoder_exactly(variant):
    cnn = MnistCnn(SMALL_CNN)
    randomise_bn_stats(cnn)
    fcn = small_fcn(variant, cnn=cnn)
    original = cnn.encoder.state_dict()
    copied = fcn.encoder.state_dict()
    assert original.keys() == copied.keys()
    assert all(torch.equal(original[k], copied[k]) for k in original)
    # A copy, not shared storage: training the FCN leaves the CNN untouched.
    with torch.no_grad():
        fcn.encoder.block1.conv1.weight.add_(1.0)
    assert not torch.equal(cnn.encoder.block1.conv1.weight, fcn.encoder.block1.conv1.weight)
    assert not any(name.startswith("head") for name in fcn.state_dict())


def one_training_step(fcn: torch.nn.Module) -> None:
    """What the shared training loop does: optimise the parameters that require gradients."""
    trainable = [p for p in fcn.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.1, momentum=0.9, weight_decay=0.1)
    fcn.train()
    x = torch.randn(4, 1, 28, 28) * 3 + 1  # far from the BN statistics, so un-frozen stats would move
    loss = F.cross_entropy(fcn(x), torch.randint(0, 11, (4, 28, 28)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize("variant", VARIANTS)
def test_frozen_encoder_stays_frozen_in_training(variant):
    cnn = MnistCnn(SMALL_CNN)
    randomise_bn_stats(cnn)
    fcn = small_fcn(variant, freeze=True, cnn=cnn)
    assert not any(p.requires_grad for p in fcn.encoder.parameters())
    assert all(p.requires_grad for p in fcn.decoder.parameters())
    encoder_before = {k: v.clone() for k, v in fcn.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in fcn.decoder.state_dict().items()}

    one_training_step(fcn)

    assert fcn.training and fcn.decoder.training
    assert not any(m.training for m in fcn.encoder.modules())
    encoder_after = fcn.encoder.state_dict()
    assert all(torch.equal(encoder_before[k], encoder_after[k]) for k in encoder_before)  # weights and BN stats
    assert not all(torch.equal(decoder_before[k], v) for k, v in fcn.decoder.state_dict().items())


@pytest.mark.parametrize("variant", VARIANTS)
def test_fine_tuned_encoder_trains(variant):
    fcn = small_fcn(variant, freeze=False)
    assert all(p.requires_grad for p in fcn.parameters())
    weight_before = fcn.encoder.block1.conv1.weight.detach().clone()
    mean_before = fcn.encoder.block1.bn1.running_mean.clone()
    one_training_step(fcn)
    assert fcn.encoder.training
    assert not torch.equal(weight_before, fcn.encoder.block1.conv1.weight)
    assert not torch.equal(mean_before, fcn.encoder.block1.bn1.running_mean)


def blob_batch(n: int = 8, size: int = 28, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Digit-like synthetic images: one bright shape per image whose form sets its class (1..4)."""
    gen = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.zeros(n, 1, size, size)
    masks = torch.zeros(n, size, size, dtype=torch.int64)
    for i in range(n):
        cls = i % 4 + 1
        cy, cx = (int(v) for v in torch.randint(9, size - 9, (2,), generator=gen))
        dy, dx = (ys - cy).abs(), (xs - cx).abs()
        shape = {
            1: (dy <= 5) & (dx <= 5),  # square
            2: (dy <= 1) & (dx <= 7),  # horizontal bar
            3: (dy <= 7) & (dx <= 1),  # vertical bar
            4: ((dy**2 + dx**2) <= 36) & ((dy**2 + dx**2) >= 9),  # ring
        }[cls]
        images[i, 0][shape] = 1.0
        masks[i][shape] = cls
    return images + 0.1 * torch.randn(images.shape, generator=gen), masks


@pytest.mark.parametrize("variant", VARIANTS)
def test_fcn_overfits_one_small_batch(variant):
    images, masks = blob_batch()
    fcn = small_fcn(variant)
    optimizer = torch.optim.Adam(fcn.parameters(), lr=1e-2)
    fcn.train()
    losses = []
    for _ in range(120):
        loss = F.cross_entropy(fcn(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.02 * losses[0]
    fcn.eval()
    with torch.no_grad():
        correct = fcn(images).argmax(dim=1) == masks
    # The shapes (10% of the pixels) get their own class, not just "background".
    assert correct[masks > 0].float().mean() > 0.95
    assert correct.float().mean() > 0.99


# --- encoder checkpoints ---------------------------------------------------------------------------


def test_encoder_checkpoint_round_trip(tmp_path):
    cnn = MnistCnn(SMALL_CNN)
    randomise_bn_stats(cnn)
    path = tmp_path / "mnist_cnn.pt"
    save_checkpoint(path, cnn, SMALL_CNN.to_dict(), extra={"test_acc": 0.99})
    loaded = load_encoder_checkpoint(path, "cnn", MnistCnn(SMALL_CNN))
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in cnn.state_dict().items())


def test_encoder_checkpoint_with_another_config_names_the_keys(tmp_path):
    path = tmp_path / "mnist_cnn.pt"
    other = MnistCnnConfig(channels=(8, 16), dropout=0.5)
    save_checkpoint(path, MnistCnn(other), other.to_dict())
    with pytest.raises(UserError) as err:
        load_encoder_checkpoint(path, "cnn", MnistCnn(SMALL_CNN))
    message = str(err.value)
    assert "was trained with channels=[8, 16], dropout=0.5, " in message
    assert "but params ask for channels=[8, 16, 32], dropout=0.25" in message
    assert message.endswith(": rerun `dvc repro train_encoder@cnn`")


def test_encoder_checkpoint_whose_weights_do_not_fit(tmp_path):
    path = tmp_path / "mnist_cnn.pt"
    save_checkpoint(path, MnistCnn(MnistCnnConfig(channels=(8, 16, 64))), SMALL_CNN.to_dict())
    message = r"does not fit the model \(wrong shape: encoder.block3.conv1.weight, .*: rerun `dvc repro train_encoder@"
    with pytest.raises(UserError, match=message):
        load_encoder_checkpoint(path, "cnn", MnistCnn(SMALL_CNN))


def test_missing_or_foreign_encoder_checkpoint(tmp_path):
    with pytest.raises(UserError, match=r"does not exist: rerun `dvc repro train_encoder@cnn`"):
        load_encoder_checkpoint(tmp_path / "absent.pt", "cnn", MnistCnn(SMALL_CNN))
    path = tmp_path / "weights_only.pt"
    save_torch(path, MnistCnn(SMALL_CNN).state_dict())
    with pytest.raises(UserError, match=r"is not a cnnlab checkpoint \(no state_dict/config\): rerun `dvc repro train"):
        load_encoder_checkpoint(path, "cnn", MnistCnn(SMALL_CNN))


def test_a_checkpoint_of_the_other_encoder_family_is_a_one_line_error(tmp_path):
    """The family is checked before the configs: a CNN checkpoint where a ResNet-18 is expected says just that."""
    path = tmp_path / "cnn.pt"
    save_checkpoint(path, MnistCnn(SMALL_CNN), SMALL_CNN.to_dict(), extra={"encoder": "cnn"})
    resnet = build_classifier("resnet18", ResNet18Config(width=0.125, in_channels=1))
    with pytest.raises(UserError) as err:
        load_encoder_checkpoint(path, "resnet18", resnet)
    assert str(err.value) == (f"checkpoint {path} holds a cnn encoder, but a resnet18 encoder is expected: "
                              "rerun `dvc repro train_encoder@resnet18`")
    assert "\n" not in str(err.value)
    # a checkpoint without the family (written before it was recorded): the config comparison still refuses it
    save_checkpoint(path, MnistCnn(SMALL_CNN), SMALL_CNN.to_dict())
    with pytest.raises(UserError,
                       match=r"was trained with .*channels=\[8, 16, 32\].* but params ask for .*channels unset"):
        load_encoder_checkpoint(path, "resnet18", resnet)


@pytest.mark.parametrize("decoder", VARIANTS)
@pytest.mark.parametrize("num_classes", [11, 2])
def test_segmenter_of_either_family_labels_every_pixel_of_a_digit(decoder, num_classes):
    """One code path: build_segmenter does the surgery of the family it is told, for both targets' class counts."""
    config = FcnConfig(variant=decoder, decoder_channels=8, num_classes=num_classes)
    for name, model_config in (("cnn", SMALL_CNN), ("resnet18", ResNet18Config(width=0.125, in_channels=1))):
        model = build_segmenter(name, build_classifier(name, model_config), config).eval()
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, num_classes, 28, 28), name
    with pytest.raises(UserError, match="unknown FCN encoder 'vgg': use one of cnn, resnet18"):
        build_segmenter("vgg", MnistCnn(SMALL_CNN), config)


def test_cnn_surgery_never_loads_torchvision():
    """torchvision costs ~1.8 s of start-up: the CNN encoder's FCN (module import, surgery) does without it, the
    ResNet-18 one loads it when built."""
    assert torchvision_loaded_after(
        "from cnnlab.models.encoders import build_classifier, encoder_config; from cnnlab.models.fcn import FcnConfig; "
        "from cnnlab.models.segmenters import build_segmenter; config = FcnConfig(variant='fcn8s', num_classes=11); "
        "build_segmenter('cnn', build_classifier('cnn', encoder_config('cnn', {})), config)",
        "net = build_classifier('resnet18', encoder_config('resnet18', {'width': 0.125, 'in_channels': 1})); "
        "build_segmenter('resnet18', net, config)",
    ) == [False, True]
