"""The ``train_mnist_cnn`` and ``train_fcn`` stages on tiny synthetic data, their helpers and their user errors.

The stages run as subprocesses (as DVC runs them) in a temporary folder holding a 200/50-image synthetic
MNIST and its ``segment_mnist`` output; every run uses one CPU thread.
"""

from __future__ import annotations

import copy
import json
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
from cnnlab.data.canonical import load_manifest, save_dataset
from cnnlab.data.segmentation import SEGMENT_CLASSES
from cnnlab.data.sources import DataParams, load_source
from cnnlab.errors import UserError
from cnnlab.metrics.segmentation import class_weights, stratified_pixels
from cnnlab.models.fcn import FcnConfig, build_fcn
from cnnlab.models.mnist import MnistCnn, MnistCnnConfig
from cnnlab.params.segmentation import fcn_params
from helpers import STAGES, assert_one_line_error, finish, run_stage, start_stage

N_TRAIN, N_TEST, N_CANVASES, CONFUSION_PIXELS = 200, 50, 4, 110
TRAINING = {"batch_size": 50, "lr": 0.01, "optimizer": "adam", "eval_batch_size": 25, "show_progress": False}
PARAMS = {
    "seed": 0,
    "segment_mnist": {
        "threshold": 0.5,
        "canvas": {"count": N_CANVASES, "rows": 2, "cols": 3, "empty_prob": 0.25, "max_offset": 4},
        "preview": 4,
    },
    "train_mnist_cnn": {
        "model": {"channels": [4, 8], "convs_per_block": 1, "dropout": 0.0},
        "training": {"epochs": 1, **TRAINING},
        "augment": False,
    },
    "train_fcn": {
        "train_size": None,
        "class_weighting": "inverse_sqrt_frequency",
        "confusion_pixels": CONFUSION_PIXELS,
        "preview": {"digits": 3, "canvases": 2},
        "training": {"epochs": 1, **TRAINING},
        "upsample": {"freeze_encoder": True, "decoder_channels": 8},
        "fcn8s": {"freeze_encoder": False, "decoder_channels": 8, "training": {"epochs": 2}},
    },
}
EPOCHS = {"upsample": 1, "fcn8s": 2}


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with tiny data/mnist, data/segmented_mnist, params.yaml, and both stages run in it."""
    root = tmp_path_factory.mktemp("fcn_stages")
    mnist = load_source(DataParams("mnist", "synthetic", None, N_TRAIN, N_TEST, seed=0), root / "downloads")
    save_dataset(mnist, root / "data/mnist")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    with pytest.MonkeyPatch.context() as mp:  # segment_mnist is only set-up here: run it in this process
        mp.chdir(root)
        mp.syspath_prepend(str(STAGES))
        mp.setattr(sys, "argv", ["segment_mnist.py"])
        runpy.run_path(str(STAGES / "segment_mnist.py"), run_name="__main__")
    check_ok(run_stage(root, "train_mnist_cnn.py"))
    runs = [start_stage(root, "train_fcn.py", variant) for variant in EPOCHS]  # independent: run side by side
    for proc in runs:
        check_ok(finish(proc))
    return root


def curve(work: Path, live_dir: str, name: str) -> pd.DataFrame:
    return pd.read_csv(work / "dvclive" / live_dir / "plots/metrics" / f"{name}.tsv", sep="\t")


# --- train_mnist_cnn -----------------------------------------------------------------------------


def test_cnn_stage_writes_metrics_curves_and_a_checkpoint_the_fcn_can_load(work):
    metrics = json.loads((work / "metrics/train_mnist_cnn.json").read_text())
    assert {"test_acc", "test_loss", "params", "diverged", "best_epoch"} <= set(metrics)
    timing = json.loads((work / "metrics/timing/train_mnist_cnn.json").read_text())  # wall-clock kept apart
    assert not {"train_seconds", "images_per_sec"} & set(metrics) and timing["train_seconds"] > 0
    assert not (work / ".cnnlab-resume").exists()
    assert metrics["diverged"] is False and 0 <= metrics["test_acc"] <= 1
    config = MnistCnnConfig.from_dict(PARAMS["train_mnist_cnn"]["model"])
    cnn = load_encoder_checkpoint(work / "models/mnist_cnn.pt", MnistCnn(config))
    assert metrics["params"] == sum(p.numel() for p in cnn.parameters())
    extra = torch.load(work / "models/mnist_cnn.pt", weights_only=True)["extra"]
    manifest = load_manifest(work / "data/mnist")
    assert (extra["train_mean"], extra["train_std"]) == (manifest["train_mean"], manifest["train_std"])
    for name in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "lr"):
        assert len(curve(work, "train_mnist_cnn", name)) == PARAMS["train_mnist_cnn"]["training"]["epochs"]
    assert not (work / "dvclive/train_mnist_cnn/metrics.json").exists()


# --- train_fcn -----------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", EPOCHS)
def test_fcn_stage_writes_metrics_for_digits_and_canvases(work, variant):
    metrics = json.loads((work / f"metrics/train_fcn/{variant}.json").read_text())
    assert metrics["variant"] == variant and metrics["train_images"] == N_TRAIN and metrics["diverged"] is False
    assert {"test_loss", "best_epoch", "params", "trainable_params"} <= set(metrics)
    timing = json.loads((work / f"metrics/timing/train_fcn/{variant}.json").read_text())  # wall-clock kept apart
    assert not {"train_seconds", "images_per_sec"} & set(metrics) and timing["images_per_sec"] > 0
    instances = torch.load(work / "data/segmented_mnist/canvases.pt", weights_only=True)["instances"]
    canvas_digits = sum(len(torch.unique(ids[ids > 0])) for ids in instances)  # one per digit, not per canvas
    for split, digits in {"digits": N_TEST, "canvases": canvas_digits}.items():
        m = metrics[split]
        for key in ("pixel_accuracy", "mean_iou", "foreground_iou", "digit_accuracy"):
            assert 0 <= m[key] <= 1, (split, key)
        assert m["digits"] == digits, split
    # per-class detail in a CSV, not in the metrics (one column of `dvc exp show` per class and variant)
    assert not any("per_class_iou" in metrics[split] for split in ("digits", "canvases"))
    per_class = pd.read_csv(work / f"plots/train_fcn/{variant}/per_class_iou.csv", dtype={"class": str})
    assert list(per_class.columns) == ["class", "digits", "canvases"]
    assert list(per_class["class"]) == list(SEGMENT_CLASSES)
    for split in ("digits", "canvases"):
        assert per_class[split].mean() == pytest.approx(metrics[split]["mean_iou"], abs=1e-6), split
    assert canvas_digits > N_CANVASES
    for name in ("train_loss", "test_loss", "train_pixel_accuracy", "test_pixel_accuracy", "lr"):
        assert len(curve(work, f"train_fcn/{variant}", name)) == EPOCHS[variant]  # fcn8s overrides epochs


@pytest.mark.parametrize("variant", EPOCHS)
def test_fcn_stage_writes_a_class_stratified_confusion_csv_and_figures(work, variant):
    plots = work / "plots/train_fcn" / variant
    table = pd.read_csv(plots / "confusion.csv", dtype=str)
    assert list(table.columns) == ["actual", "predicted"]
    assert len(table) == CONFUSION_PIXELS
    assert table["actual"].value_counts().to_dict() == {name: CONFUSION_PIXELS // 11 for name in SEGMENT_CLASSES}
    assert set(table["predicted"]) <= set(SEGMENT_CLASSES)
    for name in ("confusion.png", "digits.png", "canvases.png"):
        image = matplotlib.image.imread(plots / name)
        assert image.ndim == 3 and min(image.shape[:2]) > 100, name


def test_fcn_checkpoint_rebuilds_and_a_frozen_encoder_keeps_the_cnn_weights(work):
    encoder = MnistCnnConfig.from_dict(PARAMS["train_mnist_cnn"]["model"])
    cnn = load_encoder_checkpoint(work / "models/mnist_cnn.pt", MnistCnn(encoder))
    for variant, section in PARAMS["train_fcn"].items():
        if variant not in EPOCHS:
            continue
        config = FcnConfig(variant=variant, freeze_encoder=section["freeze_encoder"],
                           decoder_channels=section["decoder_channels"])
        model = build_fcn(MnistCnn(encoder), config)
        expected = {"fcn": config.to_dict(), "encoder": encoder.to_dict()}
        state = load_checkpoint(work / f"models/fcn/{variant}.pt", expected, model=model)
        assert state["extra"]["classes"] == SEGMENT_CLASSES  # the one key for class names in every checkpoint
        weights = state["extra"]["class_weights"]
        assert len(weights) == 11 and weights[0] == min(weights)  # background is the most frequent class
        assert model.eval()(torch.zeros(2, 1, 28, 28)).shape == (2, 11, 28, 28)
        pairs = zip(model.encoder.state_dict().values(), cnn.encoder.state_dict().values())
        same = all(torch.equal(a, b) for a, b in pairs)
        assert same == config.freeze_encoder
        metrics = json.loads((work / f"metrics/train_fcn/{variant}.json").read_text())
        assert (metrics["trainable_params"] < metrics["params"]) == config.freeze_encoder


# --- user errors ---------------------------------------------------------------------------------


def test_unknown_variant_is_a_one_line_error(work):
    line = assert_one_line_error(run_stage(work, "train_fcn.py", "unet"))
    assert line == "error: unknown FCN variant 'unet': use one of upsample, fcn8s"


def test_encoder_that_does_not_match_the_params_is_a_one_line_error_and_writes_nothing(work):
    params = copy.deepcopy(PARAMS)
    params["train_mnist_cnn"]["model"]["channels"] = [4, 16]
    (work / "changed.yaml").write_text(yaml.safe_dump(params))
    before = (work / "metrics/train_fcn/fcn8s.json").stat().st_mtime_ns
    line = assert_one_line_error(run_stage(work, "train_fcn.py", "fcn8s", "--params", "changed.yaml"))
    assert "channels=[4, 8]" in line and "channels=[4, 16]" in line and "dvc repro train_mnist_cnn" in line
    assert (work / "metrics/train_fcn/fcn8s.json").stat().st_mtime_ns == before


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
