"""Sections ``classifier`` and ``train_classifier``: the network config and training config of each classifier
(either family of :mod:`cnnlab.models.classifiers`: depth 18 is the ResNet-18, the others 6n+2 nets)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from cnnlab.augment import PADDING
from cnnlab.config import boolean, choice, get, integer
from cnnlab.errors import UserError
from cnnlab.models.classifiers import classifier_config
from cnnlab.pipeline import classifier_key, split_key
from cnnlab.training import TrainConfig

#: The variants of the plain/residual comparison: BN+ReLU (the paper's nets) and tanh without BN
#: (where the plain net's gradients vanish).
CLASSIFIER_VARIANTS = {
    "relu-bn": {"activation": "relu", "batchnorm": True},
    "tanh-nobn": {"activation": "tanh", "batchnorm": False},
}
#: model switches set in train_classifier, besides the matrix (shortcut and width: 6n+2 nets; resnet18_width: ResNet-18)
MODEL_KEYS = ("shortcut", "width", "resnet18_width", "init")


@dataclass(frozen=True)
class ClassifierParams:
    key: str  # "residual-56-relu-bn-0": the matrix key that names every output of the model
    model: dict  # the network config's to_dict() (CifarNetConfig or ResNet18Config fields)
    train: TrainConfig
    augment: bool
    padding: int  # the crops' zero padding in pixels (train_classifier.augment_padding)
    seed: int  # the training seed: an entry of classifier.seeds, not the top-level seed
    nproc: int = 1  # processes (devices) training the model together, via torchrun when > 1


def classifier_params(params: dict, arch: str, depth: int, variant: str, seed: int,
                      device: str | None = None) -> ClassifierParams:
    """The model and training config of one classifier of the ``classifier`` matrix.

    ``seed`` (the matrix's seed axis, ``classifier.seeds``) seeds initialisation, data order and augmentation,
    so that several runs of one model differ only by chance; the top-level ``seed`` plays no part here.
    """
    model = model_config(arch, depth, variant, params=params)  # validates arch, depth (6n+2 or 18), variant, ...
    section = {k: v for k, v in get(params, "train_classifier").items() if k not in MODEL_KEYS}
    seed = integer("classifier.seeds entry", seed, 0)
    augment = boolean("train_classifier.augment", section.pop("augment", True))
    padding = integer("train_classifier.augment_padding", section.pop("augment_padding", PADDING), 0)
    nproc = integer("train_classifier.nproc", section.pop("nproc", 1), 1)
    try:
        train = TrainConfig.from_dict({**section, "seed": seed, "device": device})
        train.validate(n_train=sys.maxsize)  # all but batch_size vs. data size, which fit() checks on the data
    except UserError as err:
        raise UserError(f"params.yaml: train_classifier: {err}") from None
    return ClassifierParams(classifier_key(arch, depth, variant, seed), model, train, augment, padding, seed, nproc)


def model_config(arch: str, depth: int, variant: str, init: str | None = None, params: dict | None = None) -> dict:
    """The network config (``to_dict()``) of a matrix entry: variant switches, then train_classifier's model keys."""
    choice("variant", variant, CLASSIFIER_VARIANTS)
    switches = dict(CLASSIFIER_VARIANTS[variant])
    if params is not None:
        section = get(params, "train_classifier")
        switches.update({k: section[k] for k in MODEL_KEYS if k in section})
    if init is not None:
        switches["init"] = init
    try:
        return classifier_config(arch, depth, **switches).to_dict()
    except UserError as err:
        raise UserError(f"classifier {arch}-{depth}-{variant}: {err}") from None


def trained_model_config(params: dict, key: str) -> dict:
    """The network config the params describe for ``train_classifier@<key>`` (what its checkpoint must hold)."""
    arch, depth, variant, _seed = split_key(key)  # the seed changes the weights, not the architecture
    return model_config(arch, depth, variant, params=params)
