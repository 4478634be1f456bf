"""Loading ``params.yaml`` and validating it once, with messages that name the key, the value and the fix.

Each stage reads exactly its own section (plus the shared ``seed`` and ``data``), through a typed
accessor defined here, so a bad value fails at start-up before any output is touched.
"""

from __future__ import annotations

import os
import sys
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

from cnnlab.errors import UserError

PARAMS_FILE = "params.yaml"
ConfigT = TypeVar("ConfigT")
_MISSING = object()


def load_params(path: str | os.PathLike = PARAMS_FILE) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: run from the project root (where dvc.yaml is)")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise UserError(f"{path} must be a mapping of sections, got {type(params).__name__}")
    return params


def get(params: dict, key: str, default: Any = _MISSING) -> Any:
    """``get(params, "data.mnist.train_size")``; a missing key without default is a UserError."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not _MISSING:
                return default
            raise UserError(f"params.yaml: missing key {key} (see the README's parameter table)")
        node = node[part]
    return node


def choice(key: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = list(allowed)
    if value not in allowed:
        raise UserError(f"params.yaml: {key}={value!r} is not allowed; use one of: {', '.join(map(str, allowed))}")
    return value


def integer(key: str, value: Any, minimum: int | None = None, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        what = "an integer or null" if allow_none else "an integer"
        raise UserError(f"params.yaml: {key}={value!r} must be {what}")
    if minimum is not None and value < minimum:
        raise UserError(f"params.yaml: {key}={value} must be >= {minimum}")
    return value


def number(key: str, value: Any, low: float | None = None, high: float | None = None, open_interval: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"params.yaml: {key}={value!r} must be a number")
    value = float(value)
    if open_interval:
        ok = (low is None or value > low) and (high is None or value < high)
        interval = f"({low}, {high})"
    else:
        ok = (low is None or value >= low) and (high is None or value <= high)
        interval = f"[{low}, {high}]"
    if not ok:
        raise UserError(f"params.yaml: {key}={value} must lie in {interval.replace('None', 'inf')}")
    return value


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"params.yaml: {key}={value!r} must be true or false")
    return value


def integer_list(key: str, value: Any, minimum: int | None = None) -> list[int]:
    if not isinstance(value, list) or not value:
        raise UserError(f"params.yaml: {key}={value!r} must be a non-empty list of integers, e.g. [20, 56]")
    return [integer(f"{key}[{i}]", v, minimum) for i, v in enumerate(value)]


def config_from_dict(cls: type[ConfigT], data: Any, what: str) -> ConfigT:
    """Build the dataclass ``cls`` from ``data``; unknown or missing required keys are a :class:`UserError`.

    ``what`` names the config in messages (e.g. ``"MNIST CNN config"``). Value checks are the
    dataclass's own ``__post_init__``.
    """
    if not isinstance(data, Mapping):
        raise UserError(f"{what} must be a mapping of keys to values, got {type(data).__name__} {data!r}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(str(key) for key in data if key not in allowed)
    if unknown:
        raise UserError(f"unknown {what} key(s) {', '.join(unknown)}: allowed keys are {', '.join(allowed)}")
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING and f.name not in data]
    if missing:
        raise UserError(f"{what} is missing key(s) {', '.join(missing)}: add them to params")
    return cls(**data)


def require_int(value: Any, name: str, minimum: int) -> None:
    """Raise a :class:`UserError` unless ``value`` is an integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


# --------------------------------------------------------------------------- shared sections

DATASETS = ("mnist", "cifar10")
SOURCES = ("torchvision", "mirror", "synthetic")
MIRROR_ENV = "CNNLAB_DATA_MIRROR"


@dataclass(frozen=True)
class DataParams:
    dataset: str
    source: str
    mirror: Path | None
    train_size: int | None
    test_size: int | None
    seed: int


def data_params(params: dict, dataset: str) -> DataParams:
    """The ``data`` section for one dataset; ``data.mirror`` falls back to ``$CNNLAB_DATA_MIRROR``."""
    choice("dataset", dataset, DATASETS)
    source = choice("data.source", get(params, "data.source"), SOURCES)
    mirror_value = get(params, "data.mirror", "") or os.environ.get(MIRROR_ENV, "")
    mirror = Path(mirror_value) if mirror_value else None
    if source == "mirror" and mirror is None:
        raise UserError(
            f"params.yaml: data.source=mirror needs a folder: set data.mirror (or ${MIRROR_ENV}) to a folder "
            f"holding mnist/ and cifar10/"
        )
    return DataParams(
        dataset=dataset,
        source=source,
        mirror=mirror,
        train_size=integer(f"data.{dataset}.train_size", get(params, f"data.{dataset}.train_size", None), 1, True),
        test_size=integer(f"data.{dataset}.test_size", get(params, f"data.{dataset}.test_size", None), 1, True),
        seed=integer("seed", get(params, "seed"), 0),
    )


@dataclass(frozen=True)
class SegmentParams:
    threshold: float
    canvas_count: int
    canvas_rows: int
    canvas_cols: int
    empty_prob: float
    max_offset: int
    preview: int
    seed: int


def segment_params(params: dict) -> SegmentParams:
    s = "segment_mnist"
    return SegmentParams(
        threshold=number(f"{s}.threshold", get(params, f"{s}.threshold"), 0.0, 1.0, open_interval=True),
        canvas_count=integer(f"{s}.canvas.count", get(params, f"{s}.canvas.count"), 1),
        canvas_rows=integer(f"{s}.canvas.rows", get(params, f"{s}.canvas.rows"), 1),
        canvas_cols=integer(f"{s}.canvas.cols", get(params, f"{s}.canvas.cols"), 1),
        empty_prob=number(f"{s}.canvas.empty_prob", get(params, f"{s}.canvas.empty_prob"), 0.0, 1.0),
        max_offset=integer(f"{s}.canvas.max_offset", get(params, f"{s}.canvas.max_offset"), 0),
        preview=integer(f"{s}.preview", get(params, f"{s}.preview"), 1),
        seed=integer("seed", get(params, "seed"), 0),
    )


# --------------------------------------------------------------------------- classifiers (CIFAR-10)

#: The variants of the plain/residual comparison: BN+ReLU (the paper's nets) and tanh without BN
#: (where the plain net's gradients vanish).
CLASSIFIER_VARIANTS = {
    "relu-bn": {"activation": "relu", "batchnorm": True},
    "tanh-nobn": {"activation": "tanh", "batchnorm": False},
}
MODEL_KEYS = ("shortcut", "width", "init")  # model switches set in train_classifier, besides the matrix


@dataclass(frozen=True)
class ClassifierParams:
    key: str  # "residual-56-relu-bn": the matrix key that names every output of the model
    model: dict  # CifarNetConfig fields
    train: "TrainConfig"  # noqa: F821 - cnnlab.training.TrainConfig
    augment: bool
    seed: int
    nproc: int = 1  # processes (devices) training the model together, via torchrun when > 1


def classifier_key(arch: str, depth: int, variant: str) -> str:
    return f"{arch}-{depth}-{variant}"


def split_key(key: str) -> tuple[str, int, str]:
    """The inverse of :func:`classifier_key`: ``"residual-56-relu-bn"`` -> ``("residual", 56, "relu-bn")``."""
    try:
        arch, depth, variant = key.split("-", 2)
        return arch, int(depth), variant
    except ValueError:
        raise UserError(f"{key!r} is not a classifier key <arch>-<depth>-<variant>, e.g. residual-56-relu-bn") from None


def classifier_params(params: dict, arch: str, depth: int, variant: str, device: str | None = None) -> ClassifierParams:
    """The model and training config of one classifier of the ``classifier`` matrix."""
    from cnnlab.training import TrainConfig

    model = model_config(arch, depth, variant, params=params)  # validates arch, depth (6n+2), variant, ...
    section = {k: v for k, v in get(params, "train_classifier").items() if k not in MODEL_KEYS}
    seed = integer("seed", get(params, "seed"), 0)
    augment = boolean("train_classifier.augment", section.pop("augment", True))
    nproc = integer("train_classifier.nproc", section.pop("nproc", 1), 1)
    try:
        train = TrainConfig.from_dict({**section, "seed": seed, "device": device})
        train.validate(n_train=sys.maxsize)  # all but batch_size vs. data size, which fit() checks on the data
    except UserError as err:
        raise UserError(f"params.yaml: train_classifier: {err}") from None
    return ClassifierParams(classifier_key(arch, depth, variant), model, train, augment, seed, nproc)


# --------------------------------------------------------------------------- gradient statistics


@dataclass(frozen=True)
class GradientParams:
    iterations: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    trained_steps: bool
    seed: int


def gradient_params(params: dict) -> GradientParams:
    s = "gradient_stats"
    return GradientParams(
        iterations=integer(f"{s}.iterations", get(params, f"{s}.iterations"), 1),
        batch_size=integer(f"{s}.batch_size", get(params, f"{s}.batch_size"), 1),
        lr=number(f"{s}.lr", get(params, f"{s}.lr"), 0.0, None, open_interval=True),
        momentum=number(f"{s}.momentum", get(params, f"{s}.momentum"), 0.0, 1.0),
        weight_decay=number(f"{s}.weight_decay", get(params, f"{s}.weight_decay"), 0.0),
        trained_steps=boolean(f"{s}.trained_steps", get(params, f"{s}.trained_steps")),
        seed=integer("seed", get(params, "seed"), 0),
    )


def gradient_key(arch: str, depth: int, variant: str, init: str) -> str:
    return f"{arch}-{depth}-{variant}-{init}"


def model_config(arch: str, depth: int, variant: str, init: str | None = None, params: dict | None = None) -> dict:
    """The CIFAR net config of a matrix entry: variant switches, then train_classifier's model keys."""
    from cnnlab.models.cifar import CifarNetConfig

    choice("variant", variant, CLASSIFIER_VARIANTS)
    config = {"arch": arch, "depth": depth, **CLASSIFIER_VARIANTS[variant]}
    if params is not None:
        section = get(params, "train_classifier")
        config.update({k: section[k] for k in MODEL_KEYS if k in section})
    if init is not None:
        config["init"] = init
    return CifarNetConfig.from_dict(config).to_dict()


# --------------------------------------------------------------------------- Grad-CAM

#: ``gradcam.class_name: null`` shows the dataset's class with this index: "cat" in CIFAR-10's order
#: (airplane, automobile, bird, cat, ...), "cross" in the synthetic shapes.
GRADCAM_DEFAULT_CLASS_INDEX = 3


@dataclass(frozen=True)
class GradCamParams:
    class_name: str | None  # the class of the close-up figure; None = class GRADCAM_DEFAULT_CLASS_INDEX
    k: int  # how many test images of that class (the first k)
    layer: str  # dotted module name of the explained layer, e.g. "layer3" (the last stage's output)
    n_eval: int  # localisation/deletion metrics over the first n_eval test images
    deletion_steps: int  # points of the deletion curve besides the intact image
    batch_size: int  # images per forward pass (memory and speed only)
    seed: int  # random deletion order

    def class_index(self, classes: list[str]) -> int:
        """The index of ``class_name`` in the dataset's ``classes`` (a :class:`UserError` if it is not one)."""
        if self.class_name is None:
            if len(classes) <= GRADCAM_DEFAULT_CLASS_INDEX:
                raise UserError(
                    f"params.yaml: gradcam.class_name=null means class {GRADCAM_DEFAULT_CLASS_INDEX}, but the dataset "
                    f"has {len(classes)} classes: set gradcam.class_name to one of {', '.join(classes)}"
                )
            return GRADCAM_DEFAULT_CLASS_INDEX
        if self.class_name not in classes:
            raise UserError(
                f"params.yaml: gradcam.class_name={self.class_name!r} is not a class of the dataset; use one of "
                f"{', '.join(classes)} (or null for class {GRADCAM_DEFAULT_CLASS_INDEX})"
            )
        return classes.index(self.class_name)


def gradcam_params(params: dict) -> GradCamParams:
    s = "gradcam"
    class_name = get(params, f"{s}.class_name")
    if class_name is not None and (not isinstance(class_name, str) or not class_name):
        raise UserError(f"params.yaml: {s}.class_name={class_name!r} must be a class name, e.g. cat, or null")
    layer = get(params, f"{s}.layer")
    if not isinstance(layer, str) or not layer:
        raise UserError(f"params.yaml: {s}.layer={layer!r} must be a module name of the CIFAR net, e.g. layer3")
    return GradCamParams(
        class_name=class_name,
        k=integer(f"{s}.k", get(params, f"{s}.k"), 1),
        layer=layer,
        n_eval=integer(f"{s}.n_eval", get(params, f"{s}.n_eval"), 1),
        deletion_steps=integer(f"{s}.deletion_steps", get(params, f"{s}.deletion_steps"), 1),
        batch_size=integer(f"{s}.batch_size", get(params, f"{s}.batch_size"), 1),
        seed=integer("seed", get(params, "seed"), 0),
    )


# --------------------------------------------------------------------------- MNIST CNN and FCN surgery

#: TrainConfig fields a stage sets itself: they must not appear in a ``training`` section.
RESERVED_TRAIN_KEYS = {"seed": "the top-level seed", "device": "the stage's --device option (or $CNNLAB_DEVICE)"}
FCN_VARIANT_KEYS = ("freeze_encoder", "decoder_channels", "training")
CLASS_WEIGHTINGS = ("none", "inverse_sqrt_frequency")


def _section(params: dict, key: str, allowed: Iterable[str] | None = None) -> dict:
    """The mapping at ``key``; with ``allowed``, unknown keys in it are a :class:`UserError`."""
    value = get(params, key)
    if not isinstance(value, dict):
        raise UserError(f"params.yaml: {key}={value!r} must be a mapping of keys to values")
    if allowed is not None:
        allowed = list(allowed)
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise UserError(f"params.yaml: unknown key(s) {', '.join(unknown)} in {key}: allowed keys are {', '.join(allowed)}")
    return value


def _located(where: str, err: UserError) -> UserError:
    """Prefix a config class's own message with the params.yaml section it came from."""
    return UserError(f"params.yaml: {where}: {err}")


def train_config(
    params: dict, key: str, overrides: Mapping[str, Any] | None = None, overrides_key: str = "", device: str | None = None
) -> "TrainConfig":  # noqa: F821 - cnnlab.training.TrainConfig
    """A validated :class:`~cnnlab.training.TrainConfig` from the mapping at ``key`` updated with ``overrides``.

    ``seed`` comes from the top-level ``seed`` and ``device`` from the caller, never from the section.
    Everything but the batch size (which needs the data) is checked here, so a bad value fails at start-up.
    """
    import sys

    from cnnlab.training import TrainConfig

    where = f"{key} (updated by {overrides_key})" if overrides else key
    section = {**_section(params, key), **(overrides or {})}
    for name, source in RESERVED_TRAIN_KEYS.items():
        if name in section:
            raise UserError(f"params.yaml: {where} sets {name}={section[name]!r}: remove it, {name} comes from {source}")
    seed = integer("seed", get(params, "seed"), 0)
    try:
        config = TrainConfig.from_dict({**section, "seed": seed, "device": device})
        config.validate(n_train=sys.maxsize)  # fit() checks batch_size against the real number of examples
    except UserError as err:
        raise _located(where, err) from None
    return config


def mnist_cnn_config(params: dict) -> "MnistCnnConfig":  # noqa: F821 - cnnlab.models.mnist.MnistCnnConfig
    """The architecture in ``train_mnist_cnn.model``: what ``train_mnist_cnn`` builds and ``train_fcn`` expects."""
    from cnnlab.models.mnist import MnistCnnConfig

    key = "train_mnist_cnn.model"
    section = _section(params, key)
    try:
        return MnistCnnConfig.from_dict(section)
    except UserError as err:
        raise _located(key, err) from None


@dataclass(frozen=True)
class MnistCnnParams:
    """Section ``train_mnist_cnn``: ``model`` (MnistCnnConfig fields), ``training`` (TrainConfig fields), ``augment``,
    ``nproc`` (processes training together, via torchrun when > 1)."""

    model: "MnistCnnConfig"  # noqa: F821
    train: "TrainConfig"  # noqa: F821
    augment: bool
    seed: int
    nproc: int = 1


def mnist_cnn_params(params: dict, device: str | None = None) -> MnistCnnParams:
    s = "train_mnist_cnn"
    section = _section(params, s, allowed=("model", "training", "augment", "nproc"))
    return MnistCnnParams(
        model=mnist_cnn_config(params),
        train=train_config(params, f"{s}.training", device=device),
        augment=boolean(f"{s}.augment", get(section, "augment", False)),
        seed=integer("seed", get(params, "seed"), 0),
        nproc=integer(f"{s}.nproc", get(section, "nproc", 1), 1),
    )


@dataclass(frozen=True)
class FcnParams:
    """Section ``train_fcn`` for one variant, plus the encoder architecture the CNN checkpoint must have.

    ``train`` is ``train_fcn.training`` updated by ``train_fcn.<variant>.training``; ``model`` holds
    ``train_fcn.<variant>``'s FcnConfig fields (``freeze_encoder``, ``decoder_channels``).
    """

    variant: str
    encoder: "MnistCnnConfig"  # noqa: F821
    model: "FcnConfig"  # noqa: F821
    train: "TrainConfig"  # noqa: F821
    train_size: int | None
    class_weighting: str
    confusion_pixels: int
    preview_digits: int
    preview_canvases: int
    seed: int
    nproc: int = 1  # processes training together (train_fcn.nproc), via torchrun when > 1


def fcn_params(params: dict, variant: str, device: str | None = None) -> FcnParams:
    from cnnlab.models.fcn import VARIANTS, FcnConfig

    if variant not in VARIANTS:
        raise UserError(f"unknown FCN variant {variant!r}: use one of {', '.join(VARIANTS)}")
    s = "train_fcn"
    variant_key = f"{s}.{variant}"
    section = _section(params, variant_key, allowed=FCN_VARIANT_KEYS)
    overrides = section.get("training") or {}
    if not isinstance(overrides, dict):
        raise UserError(f"params.yaml: {variant_key}.training={overrides!r} must be a mapping of training keys to values")
    try:
        model = FcnConfig(variant=variant, **{k: v for k, v in section.items() if k != "training"})
    except UserError as err:
        raise _located(variant_key, err) from None
    return FcnParams(
        variant=variant,
        encoder=mnist_cnn_config(params),
        model=model,
        train=train_config(params, f"{s}.training", overrides, f"{variant_key}.training", device),
        train_size=integer(f"{s}.train_size", get(params, f"{s}.train_size"), 1, allow_none=True),
        class_weighting=choice(f"{s}.class_weighting", get(params, f"{s}.class_weighting"), CLASS_WEIGHTINGS),
        confusion_pixels=integer(f"{s}.confusion_pixels", get(params, f"{s}.confusion_pixels"), 1),
        preview_digits=integer(f"{s}.preview.digits", get(params, f"{s}.preview.digits"), 1),
        preview_canvases=integer(f"{s}.preview.canvases", get(params, f"{s}.preview.canvases"), 1),
        seed=integer("seed", get(params, "seed"), 0),
        nproc=integer(f"{s}.nproc", get(params, f"{s}.nproc", 1), 1),
    )
