"""The pipeline's names: stage keys, the model matrices of params.yaml, and where each stage writes.

One place for each: dvc.yaml spells the same keys and paths with ``${...}`` templates (``${key}`` of a
matrix stage is its items joined by ``-``), the stages write and the report reads them through these
functions. Only the stdlib, :mod:`cnnlab.config`, :mod:`cnnlab.errors` and :mod:`cnnlab.families` are imported here.

Keys:

- classifier (``train_classifier``, ``gradient_stats_trained``): ``plain-20-relu-bn-0`` =
  arch-depth-variant-seed (the seed is the classifier's training seed, an entry of ``classifier.seeds``; depth 18
  is ResNet-18, plain = without skips: :mod:`cnnlab.families`);
- a model over all its seeds (tables and figures group by it, no stage has it): ``plain-20-relu-bn`` =
  arch-depth-variant (:func:`model_name`);
- gradient statistics at initialisation (``gradient_stats``): ``plain-20-tanh-nobn-default`` (+ init);
- gradient statistics of a trained classifier: ``trained-plain-20-relu-bn-0``;
- Grad-CAM (``gradcam``): ``20-relu-bn-0`` = depth-variant-seed (both archs of that seed in one stage);
- MNIST encoders (``train_encoder``): ``cnn``, ``resnet18``; FCNs (``train_fcn``): the names of ``fcn.variants``.

A variant may itself hold ``-`` (``relu-bn``), so the keys are parsed from both ends: arch and depth from
the left, the seed (or init) from the right.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import product
from pathlib import Path

from cnnlab.config import get
from cnnlab.errors import UserError
from cnnlab.families import model_label

TRAINED_PREFIX = "trained-"

# --------------------------------------------------------------------------- keys


def model_name(arch: str, depth: int, variant: str) -> str:
    """``"residual-56-relu-bn"``: one model of the matrix over all its training seeds (what the comparisons
    group by); no stage has this key."""
    return f"{arch}-{depth}-{variant}"


def display_name(arch: str, depth: int, variant: str) -> str:
    """How tables and figures name a model over its seeds: :func:`model_name`, with ResNet-18 (depth 18) named by
    its skips: ``"residual-56-relu-bn"``, ``"resnet18-noskip-relu-bn"`` (the plain ResNet-18)."""
    return f"{model_label(arch, depth)}-{variant}"


def classifier_key(arch: str, depth: int, variant: str, seed: int) -> str:
    return f"{model_name(arch, depth, variant)}-{seed}"


def split_key(key: str) -> tuple[str, int, str, int]:
    """The inverse of :func:`classifier_key`: ``"residual-56-relu-bn-0"`` -> ``("residual", 56, "relu-bn", 0)``."""
    try:
        arch, depth, rest = key.split("-", 2)
        variant, seed = rest.rsplit("-", 1)
        if not variant or not seed.isdigit():  # "residual-56-relu-bn" (a key of before seeds) is no key
            raise ValueError
        return arch, int(depth), variant, int(seed)
    except ValueError:
        raise UserError(f"{key!r} is not a classifier key <arch>-<depth>-<variant>-<seed>, "
                        "e.g. residual-56-relu-bn-0") from None


def gradient_key(arch: str, depth: int, variant: str, init: str) -> str:
    return f"{arch}-{depth}-{variant}-{init}"


def trained_key(key: str) -> str:
    """The gradient-statistics name of the trained classifier ``key``: ``trained-<key>``."""
    return TRAINED_PREFIX + key


def split_gradient_name(name: str) -> dict:
    """``"plain-56-tanh-nobn-default"`` or ``"trained-plain-56-relu-bn-0"`` -> its matrix fields
    (``init`` is ``"trained"`` for a trained classifier, which also has its ``seed``)."""
    if name.startswith(TRAINED_PREFIX):
        arch, depth, variant, seed = split_key(name[len(TRAINED_PREFIX):])
        return {"arch": arch, "depth": depth, "variant": variant, "init": "trained", "seed": seed}
    try:
        arch, depth, rest = name.split("-", 2)
        variant, init = rest.rsplit("-", 1)
        return {"arch": arch, "depth": int(depth), "variant": variant, "init": init}
    except ValueError:
        raise UserError(f"{name!r} is not a gradient-statistics name <arch>-<depth>-<variant>-<init> or "
                        f"{TRAINED_PREFIX}<arch>-<depth>-<variant>-<seed>") from None


def gradcam_key(depth: int, variant: str, seed: int) -> str:
    return f"{depth}-{variant}-{seed}"


# --------------------------------------------------------------------------- the matrices of params.yaml


def classifier_seeds(params: Mapping) -> list[int]:
    """``classifier.seeds``: the training seeds of every classifier (``[0]``, one run per model, when the key
    is absent; :mod:`cnnlab.params.check` validates the value)."""
    return get(params, "classifier.seeds", [0])


def classifier_keys(params: Mapping, by_variant: bool = False) -> list[str]:
    """The keys of every ``train_classifier`` model of the ``classifier`` matrix, in dvc.yaml's order (arch,
    depth, variant, seed) or, with ``by_variant``, variant, depth, arch, seed: the order of the accuracy table."""
    archs, depths, variants = (get(params, f"classifier.{axis}") for axis in ("archs", "depths", "variants"))
    seeds = classifier_seeds(params)
    if by_variant:
        return [classifier_key(a, d, v, s) for v in variants for d in depths for a in archs for s in seeds]
    return [classifier_key(a, d, v, s) for a in archs for d in depths for v in variants for s in seeds]


def gradient_matrix(params: Mapping) -> list[tuple[str, int, str, str]]:
    """(arch, depth, variant, init) of every ``gradient_stats`` model, in dvc.yaml's order."""
    m = "gradient_matrix"
    return list(product(get(params, f"{m}.archs"), get(params, f"{m}.depths"), get(params, f"{m}.variants"),
                        get(params, f"{m}.inits")))


def gradient_names(params: Mapping) -> dict[str, str]:
    """Every gradient-statistics name -> the stage that writes it: the ``gradient_matrix`` models at
    initialisation (``gradient_stats@<name>``), then the trained classifiers (``gradient_stats_trained@<key>``)."""
    fresh = {name: f"gradient_stats@{name}" for name in (gradient_key(*entry) for entry in gradient_matrix(params))}
    trained = {trained_key(key): f"gradient_stats_trained@{key}" for key in classifier_keys(params)}
    return fresh | trained


def gradcam_keys(params: Mapping) -> list[tuple[int, str, int]]:
    """(depth, variant, seed) of every ``gradcam`` stage, in dvc.yaml's order: depth outermost."""
    return list(product(get(params, "classifier.depths"), get(params, "classifier.variants"), classifier_seeds(params)))


# --------------------------------------------------------------------------- where the stages write
# Relative to the project root (DVC runs every stage there).

DOWNLOAD_CACHE = Path("data/downloads")  # torchvision's downloads (not a DVC output)


def dataset_dir(dataset: str) -> Path:
    return Path("data") / dataset


def classifier_checkpoint(key: str) -> Path:
    return Path("models/classifier") / f"{key}.pt"


def classifier_metrics(key: str) -> Path:
    return Path("metrics/train_classifier") / f"{key}.json"


def classifier_curves(key: str) -> Path:
    """The DVCLive folder of ``train_classifier@<key>``."""
    return Path("dvclive/train_classifier") / key


def classifier_gradients(key: str) -> Path:
    """The per-epoch gradient statistics of ``train_classifier@<key>`` (one row per epoch, layer and statistic)."""
    return Path("plots/train_classifier") / key / "gradients.csv"


def gradient_plots(name: str) -> Path:
    """The folder of ``stats.csv``, ``profile.csv`` and ``first_last.csv`` of gradient-statistics ``name``."""
    return Path("plots/gradient_stats") / name


def gradient_metrics(name: str) -> Path:
    return Path("metrics/gradient_stats") / f"{name}.json"


GRADIENT_REPORT = Path("plots/gradient_report")  # the gradient_report stage's figures and tables


def over_training_figure(depth: int, variant: str, seed: int) -> Path:
    """The gradients-over-training figure of the classifier pair at (depth, variant, seed), in GRADIENT_REPORT."""
    return GRADIENT_REPORT / "over_training" / f"{depth}-{variant}-{seed}.png"


def gradcam_plots(key: str) -> Path:
    return Path("plots/gradcam") / key


def gradcam_metrics(key: str) -> Path:
    return Path("metrics/gradcam") / f"{key}.json"


def encoder_checkpoint(encoder: str) -> Path:
    """The MNIST classifier of ``train_encoder@<encoder>`` (``cnn``, ``resnet18``) whose encoder the FCNs reuse."""
    return Path("models/encoder") / f"{encoder}.pt"


def encoder_metrics(encoder: str) -> Path:
    return Path("metrics/train_encoder") / f"{encoder}.json"


def encoder_curves(encoder: str) -> Path:
    return Path("dvclive/train_encoder") / encoder


def fcn_checkpoint(variant: str) -> Path:
    return Path("models/fcn") / f"{variant}.pt"


def fcn_metrics(variant: str) -> Path:
    return Path("metrics/train_fcn") / f"{variant}.json"


def fcn_plots(variant: str) -> Path:
    return Path("plots/train_fcn") / variant


def fcn_curves(variant: str) -> Path:
    return Path("dvclive/train_fcn") / variant


def timing_metrics_path(stage: str, name: str | None = None) -> Path:
    """Wall-clock figures of a training run: apart from every output a downstream stage reads."""
    return Path("metrics/timing") / (f"{stage}.json" if name is None else f"{stage}/{name}.json")
