"""The pipeline's keys (cnnlab.pipeline): the spelling dvc.yaml's matrices produce, with the seed axis."""

import pytest

from cnnlab.errors import UserError
from cnnlab.pipeline import (
    classifier_key,
    classifier_keys,
    gradcam_key,
    gradcam_keys,
    gradient_names,
    model_name,
    split_gradient_name,
    split_key,
    trained_key,
)

PARAMS = {"classifier": {"archs": ["plain", "residual"], "depths": [8, 20], "variants": ["relu-bn"], "seeds": [0, 3]},
          "gradient_matrix": {"archs": ["plain"], "depths": [8], "variants": ["tanh-nobn"], "inits": ["default"]}}


def test_classifier_key_round_trips_with_a_hyphenated_variant():
    assert classifier_key("residual", 32, "relu-bn", 0) == "residual-32-relu-bn-0"  # DVC's ${key} of the matrix
    for fields in (("residual", 32, "relu-bn", 0), ("plain", 110, "tanh-nobn", 17)):
        assert split_key(classifier_key(*fields)) == fields


def test_the_model_name_is_the_key_without_its_seed():
    # what tables and figures group the seeds of one model by
    assert model_name("residual", 32, "relu-bn") == "residual-32-relu-bn"
    arch, depth, variant, _ = split_key("residual-32-relu-bn-7")
    assert model_name(arch, depth, variant) == "residual-32-relu-bn"


@pytest.mark.parametrize("key", ["residual-32-relu-bn", "residual-32-relu-bn-x", "residual-x-relu-bn-0", "plain"])
def test_a_key_without_seed_is_a_one_line_error(key):
    with pytest.raises(UserError, match="is not a classifier key <arch>-<depth>-<variant>-<seed>"):
        split_key(key)


def test_matrices_take_every_seed():
    assert classifier_keys(PARAMS) == ["plain-8-relu-bn-0", "plain-8-relu-bn-3", "plain-20-relu-bn-0",
                                       "plain-20-relu-bn-3", "residual-8-relu-bn-0", "residual-8-relu-bn-3",
                                       "residual-20-relu-bn-0", "residual-20-relu-bn-3"]
    assert classifier_keys(PARAMS, by_variant=True)[:4] == ["plain-8-relu-bn-0", "plain-8-relu-bn-3",
                                                            "residual-8-relu-bn-0", "residual-8-relu-bn-3"]
    assert gradcam_keys(PARAMS) == [(8, "relu-bn", 0), (8, "relu-bn", 3), (20, "relu-bn", 0), (20, "relu-bn", 3)]
    assert gradcam_key(20, "relu-bn", 3) == "20-relu-bn-3"
    names = gradient_names(PARAMS)
    assert names["trained-residual-20-relu-bn-3"] == "gradient_stats_trained@residual-20-relu-bn-3"
    assert names["plain-8-tanh-nobn-default"] == "gradient_stats@plain-8-tanh-nobn-default"
    assert len(names) == 1 + 8


def test_without_seeds_the_matrix_has_seed_0():
    params = {"classifier": {k: v for k, v in PARAMS["classifier"].items() if k != "seeds"}}
    assert classifier_keys(params)[0] == "plain-8-relu-bn-0" and len(classifier_keys(params)) == 4


def test_trained_gradient_names_carry_the_seed():
    assert split_gradient_name(trained_key("plain-8-relu-bn-3")) == {
        "arch": "plain", "depth": 8, "variant": "relu-bn", "init": "trained", "seed": 3}
    assert "seed" not in split_gradient_name("plain-8-relu-bn-default")
