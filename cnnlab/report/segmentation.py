"""Experiment 2, fully convolutional surgery on MNIST: segmentation table, findings and figures."""

from __future__ import annotations

import pandas as pd

from cnnlab.config import get
from cnnlab.pipeline import MNIST_CNN_METRICS, fcn_metrics
from cnnlab.report.document import Block, Heading, Paragraph, Table
from cnnlab.report.run import Run
from cnnlab.report.text import fixed, pct, plural, words

TEST_SETS = {"digits": "single digits", "canvases": "canvases"}
FCN_COLUMNS = {"pixel acc.": "pixel_accuracy", "mean IoU": "mean_iou", "foreground IoU": "foreground_iou",
               "per-digit acc.": "digit_accuracy"}


def _fcn_findings(metrics: dict[str, dict]) -> list[str]:
    out = []
    if len(metrics) >= 2:
        for key, what in TEST_SETS.items():
            scored = {v: fixed(m[key]["mean_iou"]) for v, m in metrics.items() if m[key]["mean_iou"] is not None}
            if scored:
                top = max(scored.values(), key=float)
                best = [v for v, s in scored.items() if s == top]
                others = ", ".join(f"{v} {s}" for v, s in scored.items() if s != top)
                has = "has" if len(best) == 1 else "share"
                out.append(f"On {what}, {words(best)} {has} the highest mean IoU, {top}"
                           + (f" ({others})." if others else "."))
    changes = [f"{v} {fixed(m['digits']['mean_iou'])} → {fixed(m['canvases']['mean_iou'])}"
               for v, m in metrics.items() if None not in (m["digits"]["mean_iou"], m["canvases"]["mean_iou"])]
    if changes:
        out.append(f"Mean IoU from single digits to canvases: {'; '.join(changes)}.")
    out += [f"{v} diverged in epoch {m.get('diverged_epoch')}." for v, m in metrics.items() if m.get("diverged")]
    return out


def _iou_range(per_class: dict[str, float | None]) -> str:
    scored = {c: v for c, v in per_class.items() if v is not None}
    if not scored:
        return ""
    low, high = min(scored, key=scored.get), max(scored, key=scored.get)
    return f" Per-class IoU ranges from {fixed(scored[low])} (class {low}) to {fixed(scored[high])} (class {high})."



def _per_class_iou(run: Run, variant: str) -> dict[str, float | None]:
    """The test digits' IoU per class from ``plots/train_fcn/<variant>/per_class_iou.csv``."""
    table = pd.read_csv(run.path(f"plots/train_fcn/{variant}/per_class_iou.csv", f"train_fcn@{variant}"),
                        dtype={"class": str})
    return {c: None if pd.isna(v) else float(v) for c, v in zip(table["class"], table["digits"], strict=True)}

def fcn(run: Run, params: dict) -> list[Block]:
    cnn = run.json(MNIST_CNN_METRICS, "train_mnist_cnn")
    variants = get(params, "fcn.variants")
    metrics = {v: run.json(fcn_metrics(v), f"train_fcn@{v}") for v in variants}
    rows = [{"variant": v, "test set": what, **{col: fixed(m[key].get(name)) for col, name in FCN_COLUMNS.items()},
             "digits": f"{m[key]['digits']:,}"}
            for v, m in metrics.items() for key, what in TEST_SETS.items()]
    cnn_text = f"The MNIST CNN ({cnn['params'] / 1e3:.0f}k parameters) " + (
        f"diverged in epoch {cnn.get('diverged_epoch')}." if cnn.get("diverged") else
        f"reaches {pct(cnn['test_acc'], 2)} test accuracy after "
        f"{plural(get(params, 'train_mnist_cnn.training.epochs'), 'epoch')}.")
    findings = _fcn_findings(metrics)
    canvas = get(params, "segment_mnist.canvas")
    digits = next(iter(metrics.values()))["canvases"]["digits"] if metrics else 0
    blocks: list[Block] = [
        Heading("Fully convolutional surgery on MNIST"),
        Paragraph(f"{cnn_text} Its trained encoder is kept and the classifier head replaced by a decoder that labels "
                  "every pixel as background or one of the ten digits; the FCNs are evaluated on the single test "
                  "digits and on multi-digit canvases."),
        Table(pd.DataFrame(rows), "Segmentation quality per FCN variant and test set (mean IoU over the 11 "
                                  "classes; foreground IoU: digit vs background). " + " ".join(findings)),
        run.figure("plots/segment_mnist/canvases.png", "segment_mnist", "Multi-digit test canvases and their masks",
                   f"Examples of the {canvas['count']:,} test canvases of {canvas['rows']} × {canvas['cols']} cells "
                   f"with their ground-truth masks; all canvases together hold {digits:,} digits."),
    ]
    for v, m in metrics.items():
        c = m["canvases"]
        blocks += [
            run.figure(f"plots/train_fcn/{v}/canvases.png", f"train_fcn@{v}", f"FCN {v} predictions on canvases",
                       f"FCN {v} on test canvases (input, ground truth, prediction): over all canvases, mean IoU "
                       f"{fixed(c['mean_iou'])}, foreground IoU {fixed(c['foreground_iou'])} and per-digit accuracy "
                       f"{fixed(c['digit_accuracy'])}."),
            run.figure(f"plots/train_fcn/{v}/confusion.png", f"train_fcn@{v}", f"FCN {v} pixel confusion matrix",
                       f"Pixel confusion of FCN {v} on the test digits, normalised per true class."
                       + _iou_range(_per_class_iou(run, v))),
        ]
    return blocks
