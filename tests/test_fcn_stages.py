"""The ``train_encoder`` and ``train_fcn`` stages on tiny synthetic data, their helpers and their user errors.

The stages run as subprocesses (as DVC runs them) in a temporary folder holding a 200/50-image synthetic
MNIST and its ``segment_mnist`` output; every run uses one CPU thread. Both encoder families are trained
(the CNN and a ResNet-18 at width 1/16) and every FCN variant kind: the CNN with both decoders, the ResNet-18
with the 11-class and the binary target.
"""

from __future__ import annotations

import copy
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import torch
import yaml

from cnnlab.checkpoints import load_checkpoint, load_encoder_checkpoint
from cnnlab.classes import BINARY_CLASSES
from cnnlab.data.canonical import load_manifest, save_dataset
from cnnlab.data.segmentation import SEGMENT_CLASSES, target_masks
from cnnlab.data.sources import DataParams, load_source
from cnnlab.errors import UserError
from cnnlab.metrics.segmentation import class_weights, stratified_pixels
from cnnlab.models.encoders import build_classifier, encoder_config
from cnnlab.models.fcn import FcnConfig
from cnnlab.models.mnist import MnistCnnConfig
from cnnlab.models.resnet18 import ResNet18Config
from cnnlab.models.segmenters import build_segmenter
from cnnlab.params.check import validate_params
from cnnlab.params.segmentation import fcn_params
from helpers import STAGES, assert_one_line_error, finish, run_stage, start_stage

# ~75 s on 2 cores (two encoder and four FCN stages in subprocesses): slow, so that .ci/run's `make test` plus
# `make quick` (which runs every encoder and FCN stage on real data) stay within CI's 15 minutes; `make test-all`
# runs them.
pytestmark = pytest.mark.slow

N_TRAIN, N_TEST, N_CANVASES, CONFUSION_PIXELS = 200, 50, 4, 110
TRAINING = {"batch_size": 50, "lr": 0.01, "optimizer": "adam", "eval_batch_size": 25, "show_progress": False}
PARAMS = {
    "seed": 0,
    "segment_mnist": {
        "threshold": 0.5,
        "canvas": {"count": N_CANVASES, "rows": 2, "cols": 3, "empty_prob": 0.25, "max_offset": 4},
        "preview": 4,
    },
    "fcn": {
        "encoders": ["cnn", "resnet18"],
        "variants": {
            "upsample": {"encoder": "cnn", "decoder": "upsample", "target": "digits"},
            "fcn8s": {"encoder": "cnn", "decoder": "fcn8s", "target": "digits"},
            "resnet18-fcn8s": {"encoder": "resnet18", "decoder": "fcn8s", "target": "digits"},
            "resnet18-binary": {"encoder": "resnet18", "decoder": "fcn8s", "target": "binary"},
        },
    },
    "train_encoder": {
        "training": {"epochs": 1, **TRAINING},
        "augment": False,
        "cnn": {"model": {"channels": [4, 8], "convs_per_block": 1, "dropout": 0.0}},
        # width 1/16: 4/8/16/32 channels; its own epochs check that an encoder's training updates the shared one
        "resnet18": {"model": {"skip": True, "width": 0.0625, "in_channels": 1}, "training": {"epochs": 2}},
    },
    "train_fcn": {
        "train_size": None,
        "class_weighting": "inverse_sqrt_frequency",
        "confusion_pixels": CONFUSION_PIXELS,
        "preview": {"digits": 3, "canvases": 2},
        "training": {"epochs": 1, **TRAINING},
        "upsample": {"freeze_encoder": True, "decoder_channels": 8},
        "fcn8s": {"freeze_encoder": False, "decoder_channels": 8, "training": {"epochs": 2}},
        "resnet18-fcn8s": {"freeze_encoder": False, "decoder_channels": 8},
        "resnet18-binary": {"freeze_encoder": True, "decoder_channels": 8},
    },
}
EPOCHS = {"upsample": 1, "fcn8s": 2, "resnet18-fcn8s": 1, "resnet18-binary": 1}
ENCODER_EPOCHS = {"cnn": 1, "resnet18": 2}
CLASSES = {"upsample": SEGMENT_CLASSES, "fcn8s": SEGMENT_CLASSES, "resnet18-fcn8s": SEGMENT_CLASSES,
           "resnet18-binary": BINARY_CLASSES}


def variant(name: str) -> dict:
    return PARAMS["fcn"]["variants"][name]


def encoder_model(name: str):
    """The encoder config the params describe for encoder family ``name``."""
    return encoder_config(name, PARAMS["train_encoder"][name]["model"])


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with tiny data/mnist, data/segmented_mnist, params.yaml, and both stages run in it."""
    root = tmp_path_factory.mktemp("fcn_stages")
    mnist = load_source(DataParams("mnist", "synthetic", None, N_TRAIN, N_TEST, seed=0), root / "downloads")
    save_dataset(mnist, root / "data/mnist")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))  # variants in this order
    with pytest.MonkeyPatch.context() as mp:  # segment_mnist is only set-up here: run it in this process
        mp.chdir(root)
        mp.syspath_prepend(str(STAGES))
        mp.setattr(sys, "argv", ["segment_mnist.py"])
        runpy.run_path(str(STAGES / "segment_mnist.py"), run_name="__main__")
    for proc in [start_stage(root, "train_encoder.py", name) for name in ENCODER_EPOCHS]:  # independent
        check_ok(finish(proc))
    runs = [start_stage(root, "train_fcn.py", name) for name in EPOCHS]  # independent: run side by side
    for proc in runs:
        check_ok(finish(proc))
    return root


def curve(work: Path, live_dir: str, name: str) -> pd.DataFrame:
    return pd.read_csv(work / "dvclive" / live_dir / "plots/metrics" / f"{name}.tsv", sep="\t")


# --- train_encoder -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENCODER_EPOCHS)
def test_encoder_stage_writes_metrics_curves_and_a_checkpoint_the_fcn_can_load(work, name):
    metrics = json.loads((work / f"metrics/train_encoder/{name}.json").read_text())
    assert {"test_acc", "test_loss", "params", "diverged", "best_epoch"} <= set(metrics)
    assert (metrics["encoder"], metrics["epochs"]) == (name, ENCODER_EPOCHS[name])
    timing = json.loads((work / f"metrics/timing/train_encoder/{name}.json").read_text())  # wall-clock kept apart
    assert not {"train_seconds", "images_per_sec"} & set(metrics) and timing["train_seconds"] > 0
    assert not (work / ".cnnlab-resume").exists()
    assert metrics["diverged"] is False and 0 <= metrics["test_acc"] <= 1
    model = load_encoder_checkpoint(work / f"models/encoder/{name}.pt", name,
                                    build_classifier(name, encoder_model(name)))
    assert metrics["params"] == sum(p.numel() for p in model.parameters())
    extra = torch.load(work / f"models/encoder/{name}.pt", weights_only=True)["extra"]
    manifest = load_manifest(work / "data/mnist")
    assert (extra["train_mean"], extra["train_std"]) == (manifest["train_mean"], manifest["train_std"])
    assert extra["encoder"] == name
    for curve_name in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "lr"):
        assert len(curve(work, f"train_encoder/{name}", curve_name)) == ENCODER_EPOCHS[name]
    assert not (work / f"dvclive/train_encoder/{name}/metrics.json").exists()


# --- train_fcn -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EPOCHS)
def test_fcn_stage_writes_metrics_for_digits_and_canvases(work, name):
    metrics = json.loads((work / f"metrics/train_fcn/{name}.json").read_text())
    assert metrics["variant"] == name and metrics["train_images"] == N_TRAIN and metrics["diverged"] is False
    assert {k: metrics[k] for k in ("encoder", "decoder", "target")} == variant(name)
    assert {"test_loss", "best_epoch", "params", "trainable_params"} <= set(metrics)
    timing = json.loads((work / f"metrics/timing/train_fcn/{name}.json").read_text())  # wall-clock kept apart
    assert not {"train_seconds", "images_per_sec"} & set(metrics) and timing["images_per_sec"] > 0
    instances = torch.load(work / "data/segmented_mnist/canvases.pt", weights_only=True)["instances"]
    canvas_digits = sum(len(torch.unique(ids[ids > 0])) for ids in instances)  # one per digit, not per canvas
    binary = variant(name)["target"] == "binary"
    for split, digits in {"digits": N_TEST, "canvases": canvas_digits}.items():
        m = metrics[split]
        for key in ("pixel_accuracy", "mean_iou", "foreground_iou"):  # foreground IoU: every variant, comparable
            assert 0 <= m[key] <= 1, (split, key)
        # a binary model does not name digits: no per-digit accuracy (not a detection rate under that name)
        assert m["digit_accuracy"] is None if binary else 0 <= m["digit_accuracy"] <= 1, split
        assert m["digits"] == digits, split
    # per-class detail in a CSV, not in the metrics (one column of `dvc exp show` per class and variant)
    assert not any("per_class_iou" in metrics[split] for split in ("digits", "canvases"))
    per_class = pd.read_csv(work / f"plots/train_fcn/{name}/per_class_iou.csv", dtype={"class": str})
    assert list(per_class.columns) == ["class", "digits", "canvases"]
    assert list(per_class["class"]) == list(CLASSES[name])
    for split in ("digits", "canvases"):
        assert per_class[split].mean() == pytest.approx(metrics[split]["mean_iou"], abs=1e-6), split
        if binary:  # with two classes the digit class's IoU is the foreground IoU
            assert per_class[split][1] == pytest.approx(metrics[split]["foreground_iou"], abs=1e-6), split
    assert canvas_digits > N_CANVASES
    for curve_name in ("train_loss", "test_loss", "train_pixel_accuracy", "test_pixel_accuracy", "lr"):
        assert len(curve(work, f"train_fcn/{name}", curve_name)) == EPOCHS[name]  # fcn8s overrides epochs


@pytest.mark.parametrize("name", EPOCHS)
def test_fcn_stage_writes_a_class_stratified_confusion_csv_and_figures(work, name):
    plots = work / "plots/train_fcn" / name
    classes = CLASSES[name]
    table = pd.read_csv(plots / "confusion.csv", dtype=str)
    assert list(table.columns) == ["actual", "predicted"]
    assert len(table) == CONFUSION_PIXELS
    assert table["actual"].value_counts().to_dict() == {c: CONFUSION_PIXELS // len(classes) for c in classes}
    assert set(table["predicted"]) <= set(classes)
    for file_name in ("confusion.png", "digits.png", "canvases.png"):
        image = matplotlib.image.imread(plots / file_name)
        assert image.ndim == 3 and min(image.shape[:2]) > 100, file_name


def test_fcn_checkpoint_rebuilds_and_a_frozen_encoder_keeps_the_classifier_weights(work):
    for name in EPOCHS:
        v, section = variant(name), PARAMS["train_fcn"][name]
        encoder = encoder_model(v["encoder"])
        trained = load_encoder_checkpoint(work / f"models/encoder/{v['encoder']}.pt", v["encoder"],
                                          build_classifier(v["encoder"], encoder))
        config = FcnConfig(variant=v["decoder"], freeze_encoder=section["freeze_encoder"],
                           decoder_channels=section["decoder_channels"], num_classes=len(CLASSES[name]))
        model = build_segmenter(v["encoder"], build_classifier(v["encoder"], encoder), config)
        expected = {"fcn": config.to_dict(), "encoder": encoder.to_dict(), "encoder_family": v["encoder"],
                    "target": v["target"]}
        state = load_checkpoint(work / f"models/fcn/{name}.pt", expected, model=model)
        assert state["extra"]["classes"] == CLASSES[name]  # the one key for class names in every checkpoint
        weights = state["extra"]["class_weights"]
        assert len(weights) == len(CLASSES[name]) and weights[0] == min(weights)  # background: the most pixels
        assert model.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, len(CLASSES[name]), 28, 28)
        # the ResNet-18 FCN's encoder is a Sequential of the classifier's stem and stages: compare by name
        reference = {k: t for k, t in trained.state_dict().items()}
        pairs = [(t, reference[k.removeprefix("encoder.") if v["encoder"] == "resnet18" else k])
                 for k, t in model.state_dict().items() if k.startswith("encoder.")]
        assert pairs and all(a.shape == b.shape for a, b in pairs)
        assert all(torch.equal(a, b) for a, b in pairs) == config.freeze_encoder, name
        metrics = json.loads((work / f"metrics/train_fcn/{name}.json").read_text())
        assert (metrics["trainable_params"] < metrics["params"]) == config.freeze_encoder


def test_binary_variant_learns_the_collapsed_masks(work):
    """The binary target is the 11-class masks with every digit class -> 1: its ground truth in the figures and
    CSVs has only two labels, and it sees exactly the digit pixels of the 11-class target as foreground."""
    masks = torch.load(work / "data/segmented_mnist/test.pt", weights_only=True)["masks"]
    binary = target_masks(masks, "binary")
    assert set(binary.unique().tolist()) <= {0, 1} and torch.equal(binary.bool(), masks > 0)
    assert target_masks(masks, "digits") is masks


# --- user errors ---------------------------------------------------------------------------------


def test_unknown_variant_is_a_one_line_error(work):
    line = assert_one_line_error(run_stage(work, "train_fcn.py", "unet"))
    assert line == ("error: unknown FCN variant 'unet': use one of upsample, fcn8s, resnet18-fcn8s, resnet18-binary "
                    "(fcn.variants)")


def test_encoder_that_does_not_match_the_params_is_a_one_line_error_and_writes_nothing(work):
    params = copy.deepcopy(PARAMS)
    params["train_encoder"]["cnn"]["model"]["channels"] = [4, 16]
    (work / "changed.yaml").write_text(yaml.safe_dump(params))
    before = (work / "metrics/train_fcn/fcn8s.json").stat().st_mtime_ns
    line = assert_one_line_error(run_stage(work, "train_fcn.py", "fcn8s", "--params", "changed.yaml"))
    assert "channels=[4, 8]" in line and "channels=[4, 16]" in line and "dvc repro train_encoder@cnn" in line
    assert (work / "metrics/train_fcn/fcn8s.json").stat().st_mtime_ns == before


@pytest.mark.parametrize(("name", "other"), [("resnet18-binary", "cnn"), ("fcn8s", "resnet18")])
def test_a_checkpoint_of_the_other_encoder_is_a_one_line_error_and_writes_nothing(work, name, other):
    before = (work / f"metrics/train_fcn/{name}.json").stat().st_mtime_ns
    line = assert_one_line_error(run_stage(work, "train_fcn.py", name, "--encoder", f"models/encoder/{other}.pt"))
    own = variant(name)["encoder"]
    assert line == (f"error: checkpoint models/encoder/{other}.pt holds a {other} encoder, but a {own} encoder is "
                    f"expected: rerun `dvc repro train_encoder@{own}`")
    assert (work / f"metrics/train_fcn/{name}.json").stat().st_mtime_ns == before


def test_missing_segmented_data_is_a_one_line_error_naming_the_stage_to_run(work):
    before = (work / "metrics/train_fcn/upsample.json").stat().st_mtime_ns
    line = assert_one_line_error(run_stage(work, "train_fcn.py", "upsample", "--data", "data/no_such_folder"))
    assert line == ("error: dataset data/no_such_folder is missing (no manifest.json): "
                    "run `dvc repro segment_mnist` first")
    assert (work / "metrics/train_fcn/upsample.json").stat().st_mtime_ns == before


# --- helpers of the stage and its params -----------------------------------------------------------


def test_inverse_sqrt_frequency_weights():
    masks = torch.tensor([0] * 64 + [1] * 16 + [2] * 4, dtype=torch.uint8)  # class 3 absent
    weights = class_weights(masks, 4, "inverse_sqrt_frequency")
    freq = torch.tensor([64, 16, 4, 0]) / 84
    assert torch.allclose(weights[:3] / weights[0], torch.tensor([1.0, 2.0, 4.0]))
    assert weights[3] == 0
    assert torch.isclose((freq * weights).sum(), torch.tensor(1.0))
    assert class_weights(masks, 4, "none") is None


def test_stratified_pixels_draws_an_equal_share_per_true_class():
    truth = torch.tensor([0] * 100 + [1] * 30 + [2] * 2)
    pred = (truth + 1) % 3
    actual, predicted = stratified_pixels(truth, pred, 31, 3, torch.Generator().manual_seed(0))
    assert torch.bincount(actual, minlength=3).tolist() == [11, 10, 2]  # class 2 has only 2 pixels
    assert torch.equal(predicted, (actual + 1) % 3)  # each pair comes from one pixel
    again = stratified_pixels(truth, pred, 31, 3, torch.Generator().manual_seed(0))
    assert torch.equal(actual, again[0]) and torch.equal(predicted, again[1])


def test_fcn_params_merge_variant_overrides_and_name_bad_keys():
    p = fcn_params(copy.deepcopy(PARAMS), "fcn8s", device="cpu")
    assert (p.train.epochs, p.train.lr, p.train.seed, p.train.device) == (2, 0.01, 0, "cpu")
    assert fcn_params(copy.deepcopy(PARAMS), "upsample").train.epochs == 1
    assert p.encoder == MnistCnnConfig(channels=(4, 8), convs_per_block=1, dropout=0.0)
    bad = copy.deepcopy(PARAMS)
    bad["train_fcn"]["fcn8s"]["training"]["seed"] = 3
    with pytest.raises(UserError, match=r"train_fcn.training \(updated by train_fcn.fcn8s.training\) sets seed=3"):
        fcn_params(bad, "fcn8s")
    bad = copy.deepcopy(PARAMS)
    bad["train_fcn"]["upsample"]["decoder"] = 8
    with pytest.raises(UserError, match="unknown key.s. decoder in train_fcn.upsample: allowed keys are"):
        fcn_params(bad, "upsample")


def test_fcn_params_of_a_resnet18_variant_name_encoder_decoder_and_target():
    p = fcn_params(copy.deepcopy(PARAMS), "resnet18-binary")
    assert (p.variant.encoder, p.variant.decoder, p.variant.target) == ("resnet18", "fcn8s", "binary")
    assert p.encoder.to_dict() == ResNet18Config(skip=True, width=0.0625, in_channels=1).to_dict()
    assert (p.model.variant, p.model.num_classes, p.variant.classes) == ("fcn8s", 2, BINARY_CLASSES)
    assert fcn_params(copy.deepcopy(PARAMS), "resnet18-fcn8s").model.num_classes == 11


@pytest.mark.parametrize(("change", "message"), [
    ({"target": "edges"}, "fcn.variants.resnet18-binary.target='edges' is not allowed; use one of: digits, binary"),
    ({"encoder": "vgg"}, "fcn.variants.resnet18-binary.encoder='vgg' is not allowed; use one of: cnn, resnet18"),
    ({"decoder": None}, "fcn.variants.resnet18-binary.decoder=None is not allowed; use one of: upsample, fcn8s"),
])
def test_bad_variant_entries_are_named(change, message):
    bad = copy.deepcopy(PARAMS)
    bad["fcn"]["variants"]["resnet18-binary"].update(change)
    with pytest.raises(UserError, match=re.escape(message)):
        fcn_params(bad, "resnet18-binary")


def test_a_variant_whose_encoder_is_not_trained_fails_at_load():
    bad = copy.deepcopy(PARAMS)
    bad["fcn"]["encoders"] = ["cnn"]
    with pytest.raises(UserError, match=re.escape("fcn.variants.resnet18-fcn8s.encoder='resnet18' is not trained: "
                                                  "add it to fcn.encoders=['cnn']")):
        validate_params(bad)
