"""The ``gradcam`` stage on tiny synthetic data with two untrained depth-8 checkpoints.

The stage runs as DVC runs it (a subprocess in the project folder); the library it calls
(cnnlab/gradcam_eval.py: chunked evaluation, image selection) and its params are also checked in process.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import helpers
from cnnlab.checkpoints import load_trained_classifier, save_checkpoint
from cnnlab.data.canonical import load_manifest, load_split, save_dataset
from cnnlab.data.sources import CIFAR10_CLASSES, load_source
from cnnlab.errors import UserError
from cnnlab.gradcam_eval import Classifier, evaluate, showcase_indices
from cnnlab.models.cifar import ARCHS, CifarNetConfig, build_cifar_net
from cnnlab.params.classifiers import model_config, trained_model_config
from cnnlab.params.datasets import data_params
from cnnlab.params.sections import gradcam_params
from cnnlab.pipeline import classifier_key
from helpers import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "stages" / "gradcam.py"
DEPTH, VARIANT, SEED = 8, "relu-bn", 1  # a seed other than 0: the key and paths must carry it
KEY = f"{DEPTH}-{VARIANT}-{SEED}"
#: 12 images in chunks of 5 exercise a partial last chunk; 30 test images = 3 per class.
GRADCAM = {"class_name": None, "k": 3, "layer": "layer3", "n_eval": 12, "deletion_steps": 4, "batch_size": 5}
METRIC_KEYS = {"accuracy", "pointing_game", "energy_in_box", "deletion_auc", "deletion_auc_random"}


def run_stage(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return helpers.run_stage(cwd, "gradcam.py", *args)


def write_params(root: Path, name: str = "params.yaml", **gradcam: object) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="synthetic", cifar10={"train_size": 20, "test_size": 30})
    params["gradcam"] = GRADCAM | gradcam
    (root / name).write_text(yaml.safe_dump(params))
    return root / name


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with data/cifar10 (synthetic, with boxes) and both depth-8 checkpoints."""
    root = tmp_path_factory.mktemp("gradcam")
    params = yaml.safe_load(write_params(root).read_text())
    manifest = save_dataset(load_source(data_params(params, "cifar10"), root / "downloads"), root / "data" / "cifar10")
    extra = {"classes": manifest["classes"], "train_mean": manifest["train_mean"],
             "train_std": manifest["train_std"], "metrics": {}}
    for seed, arch in enumerate(ARCHS):
        config = CifarNetConfig.from_dict({**model_config(arch, DEPTH, VARIANT, params=params),
                                           "num_classes": len(manifest["classes"])})
        torch.manual_seed(seed)
        model = build_cifar_net(config)
        save_checkpoint(root / "models" / "classifier" / f"{classifier_key(arch, DEPTH, VARIANT, SEED)}.pt", model,
                        config.to_dict(), extra)
    return root


@pytest.fixture(scope="module")
def outputs(project: Path) -> Path:
    proc = run_stage(project, "--depth", str(DEPTH), "--variant", VARIANT, "--seed", str(SEED))
    assert proc.returncode == 0, proc.stderr
    return project


# --------------------------------------------------------------------------- the stage end to end


def test_writes_the_three_figures(outputs: Path) -> None:
    sizes = {}
    for name in ("heatmaps.png", "class.png", "deletion.png"):
        image = cv2.imread(str(outputs / "plots" / "gradcam" / KEY / name))
        assert image is not None, name
        sizes[name] = image.shape[:2]
    height, width = sizes["heatmaps.png"]
    assert width > 2 * height  # ten image columns, three rows
    height, width = sizes["class.png"]
    assert height > width / 2  # k = 3 image rows of five panels


def test_metrics_have_every_key_in_range(outputs: Path) -> None:
    metrics = json.loads((outputs / "metrics" / "gradcam" / f"{KEY}.json").read_text())
    assert set(metrics) == {"images", "box_area_fraction", *ARCHS}
    assert metrics["images"] == GRADCAM["n_eval"]
    assert 0.0 < metrics["box_area_fraction"] < 1.0
    for arch in ARCHS:
        assert set(metrics[arch]) == METRIC_KEYS
        for name, value in metrics[arch].items():
            assert 0.0 <= value <= 1.0, (arch, name, value)
        assert metrics[arch]["pointing_game"] * GRADCAM["n_eval"] == pytest.approx(
            round(metrics[arch]["pointing_game"] * GRADCAM["n_eval"]), abs=1e-4)  # a hit rate over 12 images


def test_deletion_table_matches_the_metrics(outputs: Path) -> None:
    long = pd.read_csv(outputs / "plots" / "gradcam" / KEY / "deletion.csv")
    assert list(long.columns) == ["model", "panel", "curve", "fraction_removed", "probability"]
    assert long["model"].nunique() == 2 * len(ARCHS) and long["panel"].nunique() == 1
    table = long.pivot(index="fraction_removed", columns="curve", values="probability").reset_index()
    table = table[["fraction_removed"] + sorted(c for c in table.columns if c != "fraction_removed")]
    metrics = json.loads((outputs / "metrics" / "gradcam" / f"{KEY}.json").read_text())
    assert set(table.columns) == {"fraction_removed"} | {f"{a}_{o}" for a in ARCHS for o in ("heatmap", "random")}
    np.testing.assert_allclose(table["fraction_removed"], np.linspace(0, 1, GRADCAM["deletion_steps"] + 1))
    for arch in ARCHS:
        heatmap, random = table[f"{arch}_heatmap"], table[f"{arch}_random"]
        assert heatmap[0] == pytest.approx(random[0], abs=1e-6)  # both orders start from the intact images
        assert heatmap.iloc[-1] == pytest.approx(random.iloc[-1], abs=1e-6)  # and end at the blank image
        # the AUC of the mean curve is the mean of the per-image AUCs (the trapezoid rule is linear)
        dx = 1.0 / GRADCAM["deletion_steps"]
        assert np.trapezoid(heatmap, dx=dx) == pytest.approx(metrics[arch]["deletion_auc"], abs=1e-4)
        assert np.trapezoid(random, dx=dx) == pytest.approx(metrics[arch]["deletion_auc_random"], abs=1e-4)


def test_missing_checkpoint_names_the_stage_to_run(project: Path) -> None:
    proc = run_stage(project, "--depth", "14", "--variant", VARIANT, "--seed", str(SEED))
    assert_one_line_error(proc, "models/classifier/plain-14-relu-bn-1.pt",
                          "dvc repro train_classifier@plain-14-relu-bn-1")
    assert not (project / "plots" / "gradcam" / f"14-{VARIANT}-{SEED}").exists()
    assert not (project / "metrics" / "gradcam" / f"14-{VARIANT}-{SEED}.json").exists()


def test_bad_layer_lists_the_layers(project: Path) -> None:
    params = write_params(project, "bad_layer.yaml", layer="layer9")
    proc = run_stage(project, "--depth", str(DEPTH), "--variant", VARIANT, "--seed", str(SEED), "--params", str(params))
    assert_one_line_error(proc, "gradcam.layer", "'layer9'", "did you mean layer3", "stem.conv, stem.bn")


# --------------------------------------------------------------------------- the library, in process


def test_evaluation_does_not_depend_on_the_chunk_size(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    classes = load_manifest("data/cifar10")["classes"]
    test = load_split("data/cifar10", "test")
    key = classifier_key("residual", DEPTH, VARIANT, SEED)
    config = {**trained_model_config(params, key), "num_classes": len(classes)}
    model = build_cifar_net(CifarNetConfig.from_dict(config))
    extra = load_trained_classifier(key, model, classes)
    net = Classifier.frozen("residual", f"residual-{DEPTH}", model, extra["train_mean"], extra["train_std"],
                            torch.device("cpu"))
    assert not any(t.requires_grad for t in net.model.parameters()) and not net.model.training
    chunked = gradcam_params(params)
    whole = gradcam_params(params | {"gradcam": GRADCAM | {"batch_size": 100}})
    (metrics_a, curves_a), (metrics_b, curves_b) = (evaluate(net, "layer3", test, p, torch.device("cpu"))
                                                    for p in (chunked, whole))
    assert metrics_a == pytest.approx(metrics_b, abs=1e-5)
    for order in curves_a:
        np.testing.assert_allclose(curves_a[order], curves_b[order], atol=1e-5)


def test_checkpoint_of_other_classes_is_rejected(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    with pytest.raises(UserError, match=r"trained on classes .*disc.* but the data has .*airplane.*dvc repro"):
        key = classifier_key("plain", DEPTH, VARIANT, SEED)
        config = {**trained_model_config(params, key), "num_classes": len(CIFAR10_CLASSES)}
        load_trained_classifier(key, build_cifar_net(CifarNetConfig.from_dict(config)), CIFAR10_CLASSES)


def test_showcase_picks_the_first_images() -> None:
    labels = torch.tensor([2, 0, 2, 1, 2, 2, 0])
    classes = ["a", "b", "c", "d"]
    of_class, first = showcase_indices(labels, 2, 3, classes)
    assert of_class == [0, 2, 4]
    assert first == [1, 3, 0]  # classes 0, 1, 2; class 3 has no test image
    assert showcase_indices(labels, 1, 5, classes)[0] == [3]  # fewer than k: all of them
    with pytest.raises(UserError, match=r"no image of class 'd'.*test_size.*gradcam.class_name"):
        showcase_indices(labels, 3, 2, classes)


# --------------------------------------------------------------------------- params


def gradcam_section(**changes: object) -> dict:
    return {"seed": 0, "gradcam": GRADCAM | changes}


def test_class_name_null_is_class_3_and_names_must_exist() -> None:
    shapes = ["disc", "square", "triangle", "cross", "ring"]
    assert gradcam_params(gradcam_section()).class_index(CIFAR10_CLASSES) == 3  # "cat"
    assert gradcam_params(gradcam_section()).class_index(shapes) == 3
    assert gradcam_params(gradcam_section(class_name="cat")).class_index(CIFAR10_CLASSES) == 3
    assert gradcam_params(gradcam_section(class_name="ring")).class_index(shapes) == 4
    with pytest.raises(UserError, match=r"gradcam.class_name='cat' is not a class.*disc, square.*or null"):
        gradcam_params(gradcam_section(class_name="cat")).class_index(shapes)
    with pytest.raises(UserError, match=r"gradcam.class_name=null means class 3.*has 2 classes.*yes, no"):
        gradcam_params(gradcam_section()).class_index(["yes", "no"])


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"k": 0}, r"gradcam.k=0 must be >= 1"),
        ({"n_eval": 2.5}, r"gradcam.n_eval=2.5 must be an integer"),
        ({"deletion_steps": 0}, r"gradcam.deletion_steps=0 must be >= 1"),
        ({"batch_size": True}, r"gradcam.batch_size=True must be an integer"),
        ({"layer": ""}, r"gradcam.layer='' must be a module name .*layer3"),
        ({"class_name": 3}, r"gradcam.class_name=3 must be a class name"),
    ],
)
def test_bad_params_name_key_value_and_fix(changes: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        gradcam_params(gradcam_section(**changes))


def test_missing_key_is_reported() -> None:
    section = gradcam_section()
    del section["gradcam"]["n_eval"]
    with pytest.raises(UserError, match=r"missing key gradcam.n_eval"):
        gradcam_params(section)
