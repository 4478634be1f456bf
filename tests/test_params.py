"""Params are validated once, at load, with messages naming key, value and fix."""

import pytest
import yaml

from cnnlab.errors import UserError
from cnnlab.params import load_params
from cnnlab.params.datasets import data_params
from cnnlab.params.sections import segment_params


@pytest.fixture
def base():
    return load_params("params.yaml")


def test_project_params_are_valid(base):
    for dataset in ("mnist", "cifar10"):
        assert data_params(base, dataset).source == "torchvision"
    assert 0 < segment_params(base).threshold < 1


def test_unknown_source(base):
    base["data"]["source"] = "ftp"
    with pytest.raises(UserError, match="data.source='ftp' is not allowed; use one of: torchvision, mirror, synthetic"):
        data_params(base, "mnist")


def test_mirror_without_path(base, monkeypatch):
    monkeypatch.delenv("CNNLAB_DATA_MIRROR", raising=False)
    base["data"]["source"] = "mirror"
    message = r"data.source=mirror needs a folder: set data.mirror \(or \$CNNLAB_DATA_MIRROR\)"
    with pytest.raises(UserError, match=message):
        data_params(base, "mnist")
    monkeypatch.setenv("CNNLAB_DATA_MIRROR", "/somewhere")
    assert str(data_params(base, "mnist").mirror) == "/somewhere"


@pytest.mark.parametrize("value", [0, -5, 1.5, "many", True])
def test_bad_subset_size(base, value):
    base["data"]["cifar10"]["train_size"] = value
    with pytest.raises(UserError, match="data.cifar10.train_size="):
        data_params(base, "cifar10")


@pytest.mark.parametrize("value", [0, 1, -0.1, 1.2, "half"])
def test_threshold_outside_open_interval(base, value):
    base["segment_mnist"]["threshold"] = value
    with pytest.raises(UserError, match="segment_mnist.threshold="):
        segment_params(base)


def test_missing_key_names_it(base):
    del base["segment_mnist"]["canvas"]["rows"]
    message = r"missing key segment_mnist.canvas.rows \(see README, section \"Parameters\"\)"
    with pytest.raises(UserError, match=message):
        segment_params(base)


def test_bad_yaml_and_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found: run from the project root"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("seed: [1,\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(UserError, match="must be a mapping"):
        load_params(tmp_path / "params.yaml")


def test_classifier_params_build_model_and_training_config(base):
    from cnnlab.params.classifiers import classifier_params

    p = classifier_params(base, "residual", 32, "tanh-nobn", 7, device="cpu")
    assert p.key == "residual-32-tanh-nobn-7"
    assert p.seed == p.train.seed == 7 != base["seed"]  # the matrix's training seed, not the top-level one
    assert p.model["activation"] == "tanh" and p.model["batchnorm"] is False and p.model["shortcut"] == "A"
    assert p.train.epochs == base["train_classifier"]["epochs"] and p.train.device == "cpu"
    assert p.augment and p.padding == base["train_classifier"]["augment_padding"] == 4  # He et al.'s crops


@pytest.mark.parametrize(
    "change,message",
    [
        (("depth", 35), "depth 35 is neither 6n\\+2 \\(nearest: 32, 38\\) nor 18 \\(ResNet-18\\)"),
        (("arch", "dense"), "arch 'dense' is not supported: use one of plain, residual"),
        (("variant", "gelu"), "variant='gelu' is not allowed; use one of: relu-bn, tanh-nobn"),
        (("seed", -1), "classifier.seeds entry=-1 must be >= 0"),
        (("lr", 0), "training lr=0 is invalid: use a number in \\(0, inf\\)"),
        (("epochs", 0), "training epochs=0 is invalid: use an integer >= 1"),
        (("optimizer", "lbfgs"), "training optimizer='lbfgs' is not supported"),
        (("shortcut", "C"), "shortcut 'C' is not supported: use one of A, B"),
        (("colour", 1), "unknown training config key\\(s\\) colour"),
        (("augment_padding", -1), "train_classifier.augment_padding=-1 must be >= 0"),
        (("augment_padding", 2.5), "train_classifier.augment_padding=2.5 must be an integer"),
    ],
)
def test_classifier_bad_params(base, change, message):
    from cnnlab.params.classifiers import classifier_params

    args = {"arch": "plain", "depth": 20, "variant": "relu-bn", "seed": 0}
    key, value = change
    if key in args:
        args[key] = value
    else:
        base["train_classifier"][key] = value
    with pytest.raises(UserError, match=message):
        classifier_params(base, **args)


def test_gradient_params(base):
    from cnnlab.params.sections import gradient_params

    assert gradient_params(base).iterations == 50
    base["gradient_stats"]["iterations"] = 0
    with pytest.raises(UserError, match="gradient_stats.iterations=0 must be >= 1"):
        gradient_params(base)


def test_project_trains_one_seed_per_model(base):
    assert base["classifier"]["seeds"] == [0]  # the default: `dvc repro` costs what it did before seeds


@pytest.mark.parametrize("seeds,message", [
    ([0, 1, 0], r"classifier.seeds=\[0, 1, 0\] repeats 0: list each seed once"),
    ([0, -2], r"classifier.seeds\[1\]=-2 must be >= 0"),
    (3, r"classifier.seeds=3 must be a non-empty list of integers, e.g. \[0, 1, 2\]"),
    ([], r"classifier.seeds=\[\] must be a non-empty list of integers"),
    ([0, 1.5], r"classifier.seeds\[1\]=1.5 must be an integer"),
])
def test_bad_seeds_are_a_one_line_error(base, tmp_path, seeds, message):
    base["classifier"]["seeds"] = seeds
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(base))
    with pytest.raises(UserError, match=message) as err:
        load_params(tmp_path / "params.yaml")
    assert "\n" not in str(err.value)
