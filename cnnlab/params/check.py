"""The whole params file at load: every section that can be checked without data (see :func:`validate_params`).

:func:`cnnlab.params.load_params` imports this module inside the function, and :mod:`cnnlab.devtools.deps`
does not count it as a code dep of the stages: it can only stop a stage before the stage writes anything,
never change what it writes, so editing it must not rerun the pipeline.
"""

from __future__ import annotations

from typing import Any

from cnnlab.config import get, integer_list
from cnnlab.errors import UserError
from cnnlab.gradcam import resolve_layer
from cnnlab.models.classifiers import build_classifier, default_gradcam_layer
from cnnlab.params.classifiers import classifier_params, model_config, trained_model_config
from cnnlab.params.datasets import DATASETS, data_params
from cnnlab.params.sections import gradcam_params, gradient_params, segment_params
from cnnlab.params.segmentation import encoder_params, fcn_encoders, fcn_params, fcn_variants
from cnnlab.pipeline import classifier_keys, classifier_seeds, gradient_matrix, split_key


def _names(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"params.yaml: {key}={value!r} must be a non-empty list of names")
    return value


def _seeds(key: str, value: Any) -> list[int]:
    """Distinct integers >= 0: a repeated seed would name two matrix entries (and outputs) the same."""
    seeds = integer_list(key, value, 0, example="[0, 1, 2]")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UserError(f"params.yaml: {key}={value!r} repeats {', '.join(map(str, repeated))}: list each seed once")
    return seeds


def validate_params(params: dict) -> None:
    """Check every section of ``params`` that needs no data, as the stages will read it.

    Run by :func:`load_params`, so that a bad value in any section (``gradcam.layer: nonexistent``) fails the
    first stage that runs, not the stage that reads it hours later. A section the file lacks is left to the
    stage that needs it (which names the missing key). What needs the data (batch size against the number of
    images, ``gradcam.class_name`` against the dataset's classes) is checked by the stages.
    """
    if "data" in params:
        for dataset in DATASETS:
            data_params(params, dataset)
    if "segment_mnist" in params:
        segment_params(params)
    if "classifier" in params:
        _names("classifier.archs", get(params, "classifier.archs"))
        integer_list("classifier.depths", get(params, "classifier.depths"), 1)
        _names("classifier.variants", get(params, "classifier.variants"))
        _seeds("classifier.seeds", classifier_seeds(params))
        if "train_classifier" in params:
            for key in classifier_keys(params):
                classifier_params(params, *split_key(key))
    if "gradient_matrix" in params:
        for axis in ("archs", "variants", "inits"):
            _names(f"gradient_matrix.{axis}", get(params, f"gradient_matrix.{axis}"))
        integer_list("gradient_matrix.depths", get(params, "gradient_matrix.depths"), 1)
        for entry in gradient_matrix(params):
            model_config(*entry)
    if "gradient_stats" in params:
        gradient_params(params)
    if "gradcam" in params:
        p = gradcam_params(params)
        if "classifier" in params and "train_classifier" in params:
            seed = classifier_seeds(params)[0]  # the seeds of a model share its architecture: check one
            for key in classifier_keys({**params, "classifier": {**params["classifier"], "seeds": [seed]}}):
                config = trained_model_config(params, key)
                if p.layer is None:  # each family's default layer exists (tested): no net to build, and a
                    continue         # ResNet-18 would cost every stage torchvision's import (~1.8 s)
                net = build_classifier(config)
                try:
                    resolve_layer(net, p.layer or default_gradcam_layer(net.config))
                except UserError as err:
                    raise UserError(f"params.yaml: gradcam.layer: {err}") from None
    if "fcn" in params:
        fcn_variants(params)  # checks fcn.encoders too
        if "train_encoder" in params:
            for encoder in fcn_encoders(params):
                encoder_params(params, encoder)
        if "train_fcn" in params:
            for variant in fcn_variants(params):
                fcn_params(params, variant)
