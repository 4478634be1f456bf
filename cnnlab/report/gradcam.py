"""Experiment 3, Grad-CAM: where do the classifiers look? Metrics table, findings and figures."""

from __future__ import annotations

import pandas as pd

from cnnlab.config import get
from cnnlab.families import model_label
from cnnlab.pipeline import classifier_seeds, gradcam_key, gradcam_metrics
from cnnlab.report.document import Block, Bullets, Heading, Paragraph, Table
from cnnlab.report.run import Run
from cnnlab.report.text import fixed, gradcam_layer, pct, words
from cnnlab.tables import is_missing

ARCHS = ("plain", "residual")
#: the per-model numbers of metrics/gradcam/<key>.json that the report summarises over seeds
MODEL_FIELDS = ("accuracy", "deletion_auc", "deletion_auc_random", "pointing_game", "energy_in_box")


def _over_seeds(runs: list[dict]) -> tuple[dict, dict]:
    """The Grad-CAM metrics of one depth and variant over its seeds: (means, sample stds), both in the schema of
    one run's file (the stds NaN with one seed); a number a run lacks stays out of its mean."""
    means: dict = {"images": runs[0].get("images", 0)}
    stds: dict = {}
    box = pd.Series([r.get("box_area_fraction") for r in runs], dtype=float)
    if box.notna().any():
        means["box_area_fraction"] = box.mean()
    for arch in ARCHS:
        frame = pd.DataFrame([{f: r.get(arch, {}).get(f) for f in MODEL_FIELDS} for r in runs], dtype=float)
        means[arch] = {f: v for f, v in frame.mean().items() if not is_missing(v)}
        stds[arch] = frame.std(ddof=1).to_dict()
    return means, stds


def _with_std(mean: float | None, std: float | None) -> str:
    return fixed(mean) if is_missing(std) or is_missing(mean) else f"{fixed(mean)} ± {fixed(std)}"


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
    depths, variants, seeds = (get(params, "classifier.depths"), get(params, "classifier.variants"),
                               classifier_seeds(params))
    runs = {(d, v, s): run.json(gradcam_metrics(gradcam_key(d, v, s)), f"gradcam@{gradcam_key(d, v, s)}")
            for d in depths for v in variants for s in seeds}
    summary = {(d, v): _over_seeds([runs[(d, v, s)] for s in seeds]) for d in depths for v in variants}
    metrics = {dv: means for dv, (means, _) in summary.items()}  # with one seed: that run's numbers
    boxes = any("box_area_fraction" in m for m in metrics.values())
    rows, findings = [], []
    for (d, v), (m, std) in summary.items():
        for arch in ARCHS:
            a, sd = m.get(arch, {}), std[arch]
            row = {"depth": d, "variant": v, "model": model_label(arch, d), "images": f"{m.get('images', 0):,}"}
            if len(seeds) > 1:
                row["seeds"] = str(len(seeds))
            row |= {"accuracy": _with_std(a.get("accuracy"), sd["accuracy"]),
                    "deletion AUC, Grad-CAM order": _with_std(a.get("deletion_auc"), sd["deletion_auc"]),
                    "deletion AUC, random order": _with_std(a.get("deletion_auc_random"), sd["deletion_auc_random"])}
            if boxes:
                row |= {"pointing game": _with_std(a.get("pointing_game"), sd["pointing_game"]),
                        "energy in box": _with_std(a.get("energy_in_box"), sd["energy_in_box"]),
                        "chance (box area)": fixed(m.get("box_area_fraction"))}
            rows.append(row)
            findings.append(_deletion_finding(f"{model_label(arch, d)} ({v})", a))
            if boxes and not is_missing(a.get("pointing_game")) and not is_missing(m.get("box_area_fraction")):
                chance = fixed(m["box_area_fraction"])
                signs = {_compare(fixed(a[name]), chance) for name in ("pointing_game", "energy_in_box")}
                verdict = {frozenset({1}): ": both above chance.", frozenset({-1}): ": both below chance."}
                findings[-1] += (f" Pointing game {fixed(a['pointing_game'])} and energy in box "
                                 f"{fixed(a['energy_in_box'])} against a chance level of {chance}"
                                 + verdict.get(frozenset(signs), "."))
    layer = gradcam_layer(get(params, "gradcam.layer"))
    faithful = sum(_faithful(m.get(a, {})) for m in metrics.values() for a in ARCHS)
    blocks: list[Block] = [
        Heading("Grad-CAM: where do the classifiers look?"),
        Paragraph(f"Grad-CAM at {layer} explains the class each trained classifier predicts. The deletion AUC is the "
                  "area under the class probability while pixels are removed in the heatmap's order; an AUC below "
                  "the random order's means the heatmap finds the evidence."),
        Table(pd.DataFrame(rows), "Grad-CAM metrics over the first test images, per classifier"
                                  + (f" (mean ± sample std over its {len(seeds)} training seeds; the findings compare "
                                     "the means)" if len(seeds) > 1 else "")
                                  + f". In {faithful} of the {len(rows)} classifiers, deleting pixels in Grad-CAM "
                                  "order lowers the class probability faster than a random order."),
        Bullets(findings),
    ]
    deepest, shown_seed = max(depths), seeds[0]  # the figures of one seed: every seed's are in plots/gradcam/
    of_seed = f", seed {shown_seed}" if len(seeds) > 1 else ""
    for v in variants:
        key = gradcam_key(deepest, v, shown_seed)
        m = runs[(deepest, v, shown_seed)]
        accuracy = words([f"{arch}-{deepest} classifies {pct(m.get(arch, {}).get('accuracy'))}" for arch in ARCHS])
        aucs = "; ".join(f"{arch}-{deepest}: Grad-CAM {fixed(m.get(arch, {}).get('deletion_auc'))}, random "
                         f"{fixed(m.get(arch, {}).get('deletion_auc_random'))}" for arch in ARCHS)
        blocks += [
            run.figure(f"plots/gradcam/{key}/heatmaps.png", f"gradcam@{key}",
                       f"Grad-CAM heatmaps of the plain and residual classifier, depth {deepest}, {v}{of_seed}",
                       f"Grad-CAM at {layer} for the first test image of each class: image, plain overlay, residual "
                       f"overlay (depth {deepest}, {v}{of_seed}). Of the first {m.get('images', 0):,} test images, "
                       f"{accuracy} correctly."),
            run.figure(f"plots/gradcam/{key}/deletion.png", f"gradcam@{key}",
                       f"Deletion curves, depth {deepest}, {v}{of_seed}",
                       f"Mean class probability as pixels are deleted, in Grad-CAM and in random order (depth "
                       f"{deepest}, {v}{of_seed}). Areas under the curves: {aucs}."),
        ]
    return blocks
