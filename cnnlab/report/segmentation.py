"""Experiment 2, fully convolutional surgery on MNIST: segmentation table, findings and figures."""

from __future__ import annotations

import pandas as pd

from cnnlab.config import get
from cnnlab.pipeline import encoder_metrics, fcn_metrics
from cnnlab.report.document import Block, Heading, Paragraph, Table
from cnnlab.report.run import Run
from cnnlab.report.text import fixed, pct, plural, words

TEST_SETS = {"digits": "single digits", "canvases": "canvases"}
FCN_COLUMNS = {"pixel acc.": "pixel_accuracy", "mean IoU": "mean_iou", "foreground IoU": "foreground_iou",
               "per-digit acc.": "digit_accuracy"}
ENCODER_LABELS = {"cnn": "MNIST CNN", "resnet18": "ResNet-18"}


def _best(metrics: dict[str, dict], key: str, name: str, what: str, among: str = "") -> str | None:
    """"On <what>, <best> has the highest <name>, <value> (others)." over the variants that define it."""
    scored = {v: fixed(m[key][name]) for v, m in metrics.items() if m[key].get(name) is not None}
    if len(scored) < 2:
        return None
    top = max(scored.values(), key=float)
    best = [v for v, s in scored.items() if s == top]
    others = ", ".join(f"{v} {s}" for v, s in scored.items() if s != top)
    has = "has" if len(best) == 1 else "share"
    label = name.replace("_iou", " IoU").replace("_", " ")
    return f"On {what}, {words(best)} {has} the highest {label}{among}, {top}" + (f" ({others})." if others else ".")


def _fcn_findings(metrics: dict[str, dict], variants: dict[str, dict]) -> list[str]:
    out = []
    digits = {v: m for v, m in metrics.items() if variants[v]["target"] == "digits"}
    for key, what in TEST_SETS.items():
        # foreground IoU is defined the same way for every target: the one comparison across all variants
        out.append(_best(metrics, key, "foreground_iou", what))
        # mean IoU averages the target's classes (11 or 2): compared among the 11-class variants only
        out.append(_best(digits, key, "mean_iou", what, " among the 11-class variants" if len(digits) < len(metrics)
                          else ""))
    # what the class labels add: a binary variant against the 11-class variant of the same encoder and decoder
    for b, vb in variants.items():
        if vb["target"] != "binary" or b not in metrics:
            continue
        for d, vd in variants.items():
            if vd["target"] == "digits" and d in metrics and (vd["encoder"], vd["decoder"]) == (vb["encoder"],
                                                                                               vb["decoder"]):
                pairs = "; ".join(f"{what} {fixed(metrics[d][key]['foreground_iou'])} vs "
                                  f"{fixed(metrics[b][key]['foreground_iou'])}" for key, what in TEST_SETS.items())
                out.append(f"Foreground IoU of {d} (11 classes) vs {b} (digit vs background), same encoder and "
                           f"decoder: {pairs}.")
    changes = [f"{v} {fixed(m['digits']['mean_iou'])} → {fixed(m['canvases']['mean_iou'])}"
               for v, m in metrics.items() if None not in (m["digits"]["mean_iou"], m["canvases"]["mean_iou"])]
    if changes:
        out.append(f"Mean IoU from single digits to canvases: {'; '.join(changes)}.")
    out += [f"{v} diverged in epoch {m.get('diverged_epoch')}." for v, m in metrics.items() if m.get("diverged")]
    return [line for line in out if line]


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


def _encoder_text(name: str, m: dict, params: dict) -> str:
    label = ENCODER_LABELS.get(name, name)
    width = get(params, f"train_encoder.{name}.model.width", None)
    if width is not None:
        label += f" (width {width:g})"
    if m.get("diverged"):
        return f"The {label} ({m['params'] / 1e3:.0f}k parameters) diverged in epoch {m.get('diverged_epoch')}."
    epochs = m.get("epochs")
    budget = f" after {plural(epochs, 'epoch')}" if epochs is not None else ""
    return f"The {label} ({m['params'] / 1e3:.0f}k parameters) reaches {pct(m['test_acc'], 2)} test accuracy{budget}."


def fcn(run: Run, params: dict) -> list[Block]:
    variants = get(params, "fcn.variants")
    encoders = [e for e in get(params, "fcn.encoders") if any(v["encoder"] == e for v in variants.values())]
    trained = {e: run.json(encoder_metrics(e), f"train_encoder@{e}") for e in encoders}
    metrics = {v: run.json(fcn_metrics(v), f"train_fcn@{v}") for v in variants}
    rows = [{"variant": v, "encoder": variants[v]["encoder"], "decoder": variants[v]["decoder"],
             "target": variants[v]["target"], "test set": what,
             **{col: fixed(m[key].get(name)) for col, name in FCN_COLUMNS.items()}, "digits": f"{m[key]['digits']:,}"}
            for v, m in metrics.items() for key, what in TEST_SETS.items()]
    encoder_text = " ".join(_encoder_text(e, m, params) for e, m in trained.items())
    findings = _fcn_findings(metrics, variants)
    canvas = get(params, "segment_mnist.canvas")
    digits = next(iter(metrics.values()))["canvases"]["digits"] if metrics else 0
    blocks: list[Block] = [
        Heading("Fully convolutional surgery on MNIST"),
        Paragraph(f"{encoder_text} Each FCN keeps one of these trained encoders and replaces the classifier head "
                  "by a decoder that labels every pixel, either as background or one of the ten digits (target "
                  "digits) or as digit vs background (target binary); the FCNs are evaluated on the single test "
                  "digits and on multi-digit canvases."),
        Table(pd.DataFrame(rows), "Segmentation quality per FCN variant and test set. Mean IoU averages the "
                                  "target's classes (11, or 2 for the binary target), so it compares only within "
                                  "a target; foreground IoU (digit vs background, every digit class merged) is "
                                  "the same measure for every variant. A binary model names no digit: no "
                                  "per-digit accuracy. " + " ".join(findings)),
        run.figure("plots/segment_mnist/canvases.png", "segment_mnist", "Multi-digit test canvases and their masks",
                   f"Examples of the {canvas['count']:,} test canvases of {canvas['rows']} × {canvas['cols']} cells "
                   f"with their ground-truth masks; all canvases together hold {digits:,} digits."),
    ]
    for v, m in metrics.items():
        c = m["canvases"]
        digit_accuracy = "" if c["digit_accuracy"] is None else f" and per-digit accuracy {fixed(c['digit_accuracy'])}"
        blocks += [
            run.figure(f"plots/train_fcn/{v}/canvases.png", f"train_fcn@{v}", f"FCN {v} predictions on canvases",
                       f"FCN {v} on test canvases (input, ground truth, prediction): over all canvases, mean IoU "
                       f"{fixed(c['mean_iou'])}, foreground IoU {fixed(c['foreground_iou'])}{digit_accuracy}."),
            run.figure(f"plots/train_fcn/{v}/confusion.png", f"train_fcn@{v}", f"FCN {v} pixel confusion matrix",
                       f"Pixel confusion of FCN {v} on the test digits, normalised per true class."
                       + _iou_range(_per_class_iou(run, v))),
        ]
    return blocks
