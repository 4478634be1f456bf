"""Params are validated once, at load, with messages naming key, value and fix."""

import pytest
import yaml

from cnnlab.errors import UserError
from cnnlab.params import data_params, load_params, segment_params


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
    with pytest.raises(UserError, match=r"data.source=mirror needs a folder: set data.mirror \(or \$CNNLAB_DATA_MIRROR\)"):
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
    with pytest.raises(UserError, match="missing key segment_mnist.canvas.rows"):
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
