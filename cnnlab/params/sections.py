"""Sections ``segment_mnist``, ``gradient_stats`` and ``gradcam``, and the helpers every section module shares."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cnnlab.config import boolean, get, integer, number
from cnnlab.errors import UserError

# --------------------------------------------------------------------------- shared sections


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


# --------------------------------------------------------------------------- Grad-CAM

#: ``gradcam.class_name: null`` shows the dataset's class with this index: "cat" in CIFAR-10's order
#: (airplane, automobile, bird, cat, ...), "cross" in the synthetic shapes.
GRADCAM_DEFAULT_CLASS_INDEX = 3


@dataclass(frozen=True)
class GradCamParams:
    class_name: str | None  # the class of the close-up figure; None = class GRADCAM_DEFAULT_CLASS_INDEX
    k: int  # how many test images of that class (the first k)
    layer: str | None  # dotted module name of the explained layer, e.g. "layer3"; None = the family's last stage
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
    if layer is not None and (not isinstance(layer, str) or not layer):
        raise UserError(f"params.yaml: {s}.layer={layer!r} must be a module name of the classifiers, e.g. layer3, "
                        "or null (the last stage: layer3 of a 6n+2 net, layer4 of ResNet-18)")
    return GradCamParams(
        class_name=class_name,
        k=integer(f"{s}.k", get(params, f"{s}.k"), 1),
        layer=layer,
        n_eval=integer(f"{s}.n_eval", get(params, f"{s}.n_eval"), 1),
        deletion_steps=integer(f"{s}.deletion_steps", get(params, f"{s}.deletion_steps"), 1),
        batch_size=integer(f"{s}.batch_size", get(params, f"{s}.batch_size"), 1),
        seed=integer("seed", get(params, "seed"), 0),
    )


# --------------------------------------------------------------------------- shared by the sections

#: TrainConfig fields a stage sets itself: they must not appear in a ``training`` section.
RESERVED_TRAIN_KEYS = {"seed": "the top-level seed", "device": "the stage's --device option (or $CNNLAB_DEVICE)"}


def _section(params: dict, key: str, allowed: Iterable[str] | None = None) -> dict:
    """The mapping at ``key``; with ``allowed``, unknown keys in it are a :class:`UserError`."""
    value = get(params, key)
    if not isinstance(value, dict):
        raise UserError(f"params.yaml: {key}={value!r} must be a mapping of keys to values")
    if allowed is not None:
        allowed = list(allowed)
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise UserError(f"params.yaml: unknown key(s) {', '.join(unknown)} in {key}: "
                            f"allowed keys are {', '.join(allowed)}")
    return value


def _located(where: str, err: UserError) -> UserError:
    """Prefix a config class's own message with the params.yaml section it came from."""
    return UserError(f"params.yaml: {where}: {err}")
