"""Loading ``params.yaml`` and validating it once, with messages that name the key, the value and the fix.

The top layer of the package: it reads the file and builds the configs of the layers below; nothing else in
:mod:`cnnlab` imports it, only the stages. Each section is read by the module beside the configs it builds,
so that a stage's code deps (the files it imports) stay the ones it uses:

- :mod:`cnnlab.params.sections`: ``segment_mnist``, ``gradient_stats``, ``gradcam`` (plain dataclasses);
- :mod:`cnnlab.params.datasets`: ``data`` (-> :class:`cnnlab.data.sources.DataParams`);
- :mod:`cnnlab.params.classifiers`: ``classifier``, ``train_classifier`` (-> CIFAR net config, TrainConfig);
- :mod:`cnnlab.params.segmentation`: ``fcn``, ``train_encoder``, ``train_fcn`` (-> encoder / FCN config, TrainConfig);
- :mod:`cnnlab.params.check`: :func:`~cnnlab.params.check.validate_params`, which :func:`load_params` runs on
  every section of the file, so a bad value anywhere fails the first stage that runs, before any output is
  touched.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from cnnlab.errors import UserError

PARAMS_FILE = "params.yaml"


def load_params(path: str | os.PathLike = PARAMS_FILE, validate: bool = True) -> dict:
    """The parsed params file; with ``validate`` (the default), every section is checked
    (:mod:`cnnlab.params.check`)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found: run from the project root (where dvc.yaml is)")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise UserError(f"{path} must be a mapping of sections, got {type(params).__name__}")
    if validate:
        from cnnlab.params.check import validate_params  # not a code dep of the stages: see cnnlab.devtools.deps

        validate_params(params)
    return params
