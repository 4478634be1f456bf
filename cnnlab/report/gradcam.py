"""Experiment 3, Grad-CAM: where do the classifiers look? Metrics table, findings and figures."""

from __future__ import annotations

import pandas as pd

from cnnlab.config import get
from cnnlab.pipeline import gradcam_key, gradcam_metrics
from cnnlab.report.document import Block, Bullets, Heading, Paragraph, Table
from cnnlab.report.run import Run
from cnnlab.report.text import fixed, pct, words
from cnnlab.tables import is_missing

ARCHS = ("plain", "residual")


def _compare(a: str, b: str) -> int:
    """-1, 0 or 1 as the displayed numbers ``a`` < = > ``b``: claims never rest on hidden digits."""
    return (float(a) > float(b)) - (float(a) < float(b))


def _faithful(m: dict) -> bool:
    """Does deleting pixels in Grad-CAM order lower the class probability faster than a random order?"""
    cam, rnd = m.get("deletion_auc"), m.get("deletion_auc_random")
    return not is_missing(cam) and not is_missing(rnd) and _compare(fixed(cam), fixed(rnd)) < 0


def _deletion_finding(label: str, m: dict) -> str:
    cam, rnd = m.get("deletion_auc"), m.get("deletion_auc_random")
    if is_missing(cam) or is_missing(rnd):
        return f"{label}: no deletion AUC."
    how = {-1: "faster than", 0: "as fast as", 1: "slower than"}[_compare(fixed(cam), fixed(rnd))]
    text = (f"{label}: deleting pixels in Grad-CAM order lowers the class probability {how} a random order "
            f"(AUC {fixed(cam)} vs {fixed(rnd)})")
    return text + (", so the map points at the evidence." if _faithful(m) else ".")


def gradcam(run: Run, params: dict) -> list[Block]:
    depths, variants = get(params, "classifier.depths"), get(params, "classifier.variants")
    keys = [(d, v) for d in depths for v in variants]
    metrics = {(d, v): run.json(gradcam_metrics(gradcam_key(d, v)), f"gradcam@{gradcam_key(d, v)}") for d, v in keys}
    boxes = any("box_area_fraction" in m for m in metrics.values())
    rows, findings = [], []
    for (d, v), m in metrics.items():
        for arch in ARCHS:
            a = m.get(arch, {})
            row = {"depth": d, "variant": v, "model": f"{arch}-{d}", "images": f"{m.get('images', 0):,}",
                   "accuracy": fixed(a.get("accuracy")), "deletion AUC, Grad-CAM order": fixed(a.get("deletion_auc")),
                   "deletion AUC, random order": fixed(a.get("deletion_auc_random"))}
            if boxes:
                row |= {"pointing game": fixed(a.get("pointing_game")), "energy in box": fixed(a.get("energy_in_box")),
                        "chance (box area)": fixed(m.get("box_area_fraction"))}
            rows.append(row)
            findings.append(_deletion_finding(f"{arch}-{d} ({v})", a))
            if boxes and not is_missing(a.get("pointing_game")) and not is_missing(m.get("box_area_fraction")):
                chance = fixed(m["box_area_fraction"])
                signs = {_compare(fixed(a[name]), chance) for name in ("pointing_game", "energy_in_box")}
                verdict = {frozenset({1}): ": both above chance.", frozenset({-1}): ": both below chance."}
                findings[-1] += (f" Pointing game {fixed(a['pointing_game'])} and energy in box "
                                 f"{fixed(a['energy_in_box'])} against a chance level of {chance}"
                                 + verdict.get(frozenset(signs), "."))
    layer = get(params, "gradcam.layer")
    faithful = sum(_faithful(m.get(a, {})) for m in metrics.values() for a in ARCHS)
    blocks: list[Block] = [
        Heading("Grad-CAM: where do the classifiers look?"),
        Paragraph(f"Grad-CAM at {layer} explains the class each trained classifier predicts. The deletion AUC is the "
                  "area under the class probability while pixels are removed in the heatmap's order; an AUC below "
                  "the random order's means the heatmap finds the evidence."),
        Table(pd.DataFrame(rows), f"Grad-CAM metrics over the first test images, per classifier. In {faithful} of "
                                  f"the {len(rows)} classifiers, deleting pixels in Grad-CAM order lowers the class "
                                  "probability faster than a random order."),
        Bullets(findings),
    ]
    deepest = max(depths)
    for v in variants:
        m, key = metrics[(deepest, v)], f"{deepest}-{v}"
        accuracy = words([f"{arch}-{deepest} classifies {pct(m.get(arch, {}).get('accuracy'))}" for arch in ARCHS])
        aucs = "; ".join(f"{arch}-{deepest}: Grad-CAM {fixed(m.get(arch, {}).get('deletion_auc'))}, random "
                         f"{fixed(m.get(arch, {}).get('deletion_auc_random'))}" for arch in ARCHS)
        blocks += [
            run.figure(f"plots/gradcam/{key}/heatmaps.png", f"gradcam@{key}",
                       f"Grad-CAM heatmaps of the plain and residual classifier, depth {deepest}, {v}",
                       f"Grad-CAM at {layer} for the first test image of each class: image, plain overlay, residual "
                       f"overlay (depth {deepest}, {v}). Of the first {m.get('images', 0):,} test images, "
                       f"{accuracy} correctly."),
            run.figure(f"plots/gradcam/{key}/deletion.png", f"gradcam@{key}", f"Deletion curves, depth {deepest}, {v}",
                       f"Mean class probability as pixels are deleted, in Grad-CAM and in random order (depth "
                       f"{deepest}, {v}). Areas under the curves: {aucs}."),
        ]
    return blocks
