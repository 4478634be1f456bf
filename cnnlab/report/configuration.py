"""The "Configuration" section: the parameters of the run as one table."""

from __future__ import annotations

import pandas as pd

from cnnlab.config import get
from cnnlab.pipeline import classifier_seeds
from cnnlab.report.document import Block, Heading, Table
from cnnlab.report.text import gradcam_layer, plural


def _size(v: int | None) -> str:
    return "all" if v is None else f"{v:,}"


def _list(values: list) -> str:
    return ", ".join(map(str, values))


def _fcn_epochs(params: dict, variant: str) -> int:
    return get(params, f"train_fcn.{variant}.training.epochs", get(params, "train_fcn.training.epochs"))


def _classifier_grid(params: dict, grid: str) -> str:
    """The classifier matrix; its training seeds only when they are not the default ``[0]`` (then the row
    reads as before seeds existed, and the ``seed`` row above says nothing about the classifiers)."""
    seeds = classifier_seeds(params)
    return grid if seeds == [0] else f"{grid} × training seeds {_list(seeds)}"


def configuration(params: dict) -> list[Block]:
    def p(key: str):
        return get(params, key)

    def grid(section: str, *axes: str) -> str:
        return " × ".join(f"{axis} {_list(p(f'{section}.{axis}'))}" for axis in axes)

    fcn = ", ".join(f"{v} ({plural(_fcn_epochs(params, v), 'epoch')})" for v in p("fcn.variants"))
    rows = [
        ("data source", p("data.source")),
        *[(f"{name} images (train / test)",
           f"{_size(p(f'data.{key}.train_size'))} / {_size(p(f'data.{key}.test_size'))}")
          for name, key in (("MNIST", "mnist"), ("CIFAR-10", "cifar10"))],
        ("seed", p("seed")),
        ("classifiers", f"{_classifier_grid(params, grid('classifier', 'archs', 'depths', 'variants'))}; "
                        f"{plural(p('train_classifier.epochs'), 'epoch')}"),
        ("gradient statistics", f"{grid('gradient_matrix', 'archs', 'depths', 'variants', 'inits')}; "
                                f"{plural(p('gradient_stats.iterations'), 'iteration')} of batch "
                                f"{p('gradient_stats.batch_size')}"),
        ("MNIST CNN", plural(p("train_mnist_cnn.training.epochs"), "epoch")),
        ("FCN variants", f"{fcn}; {_size(p('train_fcn.train_size'))} training digits"),
        ("multi-digit canvases", f"{p('segment_mnist.canvas.count'):,} of {p('segment_mnist.canvas.rows')} × "
                                 f"{p('segment_mnist.canvas.cols')} cells"),
        ("Grad-CAM", f"{gradcam_layer(p('gradcam.layer'))}, metrics over the first {p('gradcam.n_eval'):,} "
                     "test images"),
    ]
    return [Heading("Configuration"),
            Table(pd.DataFrame(rows, columns=["setting", "value"]), "The parameters of this run (params.yaml).")]
