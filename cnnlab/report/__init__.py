"""A self-contained report of the pipeline's results, as Markdown and as one standalone HTML file.

- :mod:`cnnlab.report.document`: the document model (headings, paragraphs, bullets, tables, figures) and
  its two renderers, Markdown and standalone HTML (images embedded), plus :func:`write_report`;
- :mod:`cnnlab.report.run`: reading the run's metrics and figures (a missing input is a :class:`UserError`
  naming the file and the stage that writes it); :mod:`cnnlab.report.text`: numbers and words;
- one section module per part of the report: :mod:`~cnnlab.report.configuration`,
  :mod:`~cnnlab.report.classifiers` (plain vs residual), :mod:`~cnnlab.report.gradients`,
  :mod:`~cnnlab.report.segmentation` (FCN surgery) and :mod:`~cnnlab.report.gradcam`;
- :func:`build_report` (here), which reads the metrics and figures of exactly the models ``params.yaml``
  names and writes every caption from this run's numbers. It never reads the clock, so the same inputs give
  byte-identical outputs.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.report.classifiers import classifiers
from cnnlab.report.configuration import configuration
from cnnlab.report.document import Document, Paragraph
from cnnlab.report.gradcam import gradcam
from cnnlab.report.gradients import gradients
from cnnlab.report.run import Run
from cnnlab.report.segmentation import fcn


def build_report(root: Path, params: dict) -> Document:
    """The report of the run whose outputs are under ``root`` and whose parameters are ``params``."""
    run = Run(root)
    doc = Document("cnnlab: results of the pipeline run")
    doc.blocks.append(Paragraph("Every table, number and caption below is computed from this run's metrics files "
                                "by stages/report.py; the figures are the pipeline's own."))
    for section in (configuration, classifiers, gradients, fcn, gradcam):
        doc.blocks += section(params) if section is configuration else section(run, params)
    return doc
