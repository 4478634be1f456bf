"""The `report` stage: Markdown + standalone HTML built from a fake pipeline output tree.

The fake metrics are written by the same library functions the stages use (``result_metrics``,
``summarize``) where one exists, and otherwise with the schema of the stage that writes them
(stages/train_fcn.py, stages/gradcam.py). An FCN variant named ``fcn<8s&`` checks escaping.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest
import yaml
from PIL import Image

from cnnlab.compare import gradient_headline
from cnnlab.errors import UserError
from cnnlab.gradients import STAT_COLUMNS, summarize
from cnnlab.report import build_report
from cnnlab.report.document import (
    PNG_SIGNATURE,
    Bullets,
    Document,
    Figure,
    Heading,
    Paragraph,
    Table,
    to_html,
    to_markdown,
    write_report,
)
from cnnlab.report.text import pct, pp
from cnnlab.tables import MISSING
from cnnlab.tracking import result_metrics
from cnnlab.training import TrainResult
from helpers import run_stage

ROOT = Path(__file__).resolve().parents[1]
ODD = "fcn<8s&"  # an FCN variant whose name needs escaping in Markdown and HTML
PARAMS = {
    "seed": 0,
    "data": {"source": "synthetic", "mirror": "", "mnist": {"train_size": 200, "test_size": 50},
             "cifar10": {"train_size": None, "test_size": 50}},
    "segment_mnist": {"canvas": {"count": 8, "rows": 2, "cols": 3}},
    "classifier": {"archs": ["plain", "residual"], "depths": [8, 14], "variants": ["relu-bn"]},
    "train_classifier": {"epochs": 3},
    "gradient_matrix": {"archs": ["plain", "residual"], "depths": [8, 14], "variants": ["tanh-nobn"],
                        "inits": ["default"]},
    "gradient_stats": {"iterations": 2, "batch_size": 16},
    "fcn": {"encoders": ["cnn", "resnet18"],
            "variants": {"upsample": {"encoder": "cnn", "decoder": "upsample", "target": "digits"},
                         ODD: {"encoder": "resnet18", "decoder": "fcn8s", "target": "digits"},
                         "binary": {"encoder": "resnet18", "decoder": "fcn8s", "target": "binary"}}},
    "train_encoder": {"training": {"epochs": 1}, "cnn": {"model": {}},
                      "resnet18": {"model": {"width": 0.25}, "training": {"epochs": 2}}},
    "train_fcn": {"train_size": None, "training": {"epochs": 2}, "upsample": {"training": {"epochs": 6}}, ODD: {},
                  "binary": {}},
    "gradcam": {"layer": "layer3", "n_eval": 20},
}
ACCURACY = {"plain-8-relu-bn-0": 0.50, "residual-8-relu-bn-0": 0.60, "plain-14-relu-bn-0": 0.45,
            "residual-14-relu-bn-0": 0.662}
# first / last layer mean |grad| per gradient-stats model
GRADIENTS = {"plain-8-tanh-nobn-default": (1e-6, 1e-3), "plain-14-tanh-nobn-default": (1e-8, 1e-3),
             "residual-8-tanh-nobn-default": (8e-3, 1e-2), "residual-14-tanh-nobn-default": (9e-3, 1e-2),
             "trained-plain-8-relu-bn-0": (8e-3, 7e-3), "trained-plain-14-relu-bn-0": (8e-3, 7e-3),
             "trained-residual-8-relu-bn-0": (1e-2, 2e-2), "trained-residual-14-relu-bn-0": (1e-2, 2e-2)}
FCN = {"upsample": {"digits": 0.897, "canvases": 0.453}, ODD: {"digits": 0.951, "canvases": 0.901},
       "binary": {"digits": 0.97, "canvases": 0.95}}
FIGURES = ["compare_classifiers/accuracy_vs_depth.png", "compare_classifiers/test_accuracy_curves.png",
           "gradient_report/profile_rms.png", "gradient_report/grad_norm.png", "segment_mnist/canvases.png",
           *[f"train_fcn/{v}/{f}" for v in FCN for f in ("canvases.png", "confusion.png")],
           "gradcam/14-relu-bn-0/heatmaps.png", "gradcam/14-relu-bn-0/deletion.png",
           "gradient_report/over_training/8-relu-bn-0.png", "gradient_report/over_training/14-relu-bn-0.png"]
# gradients over training, RMS per parameter of (first, last) layer at epochs 0 and 3, the same in both panels
OVER_TRAINING = {("plain", 0): (1e-3, 1e-1), ("plain", 3): (2e-2, 4e-2),
                 ("residual", 0): (3e-2, 1.0), ("residual", 3): (6e-2, 6e-2)}


def over_training_csv(path: Path, depths: tuple[int, ...] = (8, 14)) -> None:
    """plots/gradient_report/over_training.csv as the gradient_report stage writes it (two layers per net)."""
    rows = [{"model": f"{arch}-{depth} epoch {epoch}", "panel": f"{depth}-relu-bn-0", "arch": arch, "depth": depth,
             "variant": "relu-bn", "seed": 0, "epoch": epoch, "layer_index": i, "layer": name, "kind": "conv",
             "n_params": 10, "statistic": statistic, "value": value * (2 if statistic == "grad_mean_abs" else 1)}
            for depth in depths for (arch, epoch), values in OVER_TRAINING.items()
            for i, (name, value) in enumerate(zip(("stem.conv", "fc"), values, strict=True))
            for statistic in ("grad_mean_abs", "grad_rms")]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["model", "panel", "arch", "depth", "variant", "seed", "epoch", "layer_index",
                                "layer", "kind", "n_params", "statistic", "value"]).to_csv(path, index=False)


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True))


def gradient_summary(first: float, last: float) -> dict:
    """``summarize`` of two layers with constant statistics over two iterations."""
    rows = [{"iteration": i, "layer_index": j, "layer_name": name, "kind": "conv", "n_params": 10,
             **{s: value for s in STAT_COLUMNS}, "loss": 2.3}
            for i in range(2) for j, (name, value) in enumerate((("conv1", first), ("fc", last)))]
    return summarize(pd.DataFrame(rows))


def segmentation(mean_iou: float, digits: int, binary: bool = False) -> dict:
    return {"pixel_accuracy": 0.99, "mean_iou": mean_iou, "foreground_iou": mean_iou + 0.01,
            "digit_accuracy": None if binary else 0.98, "digits": digits}


def per_class_iou(path: Path, mean_iou: dict[str, float]) -> None:
    """plots/train_fcn/<variant>/per_class_iou.csv: class i's IoU = the test set's mean IoU - 0.001 i."""
    classes = ["background", "digit"] if "binary" in str(path) else ["background", *map(str, range(10))]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"class": classes, **{test_set: [round(iou - 0.001 * i, 6) for i in range(len(classes))]
                                       for test_set, iou in mean_iou.items()}}).to_csv(path, index=False)


def make_tree(root: Path, accuracy: dict[str, float] = ACCURACY) -> Path:
    """The outputs of every stage the report reads (plus a stale classifier of a depth params no longer names)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    for key, acc in {**accuracy, "plain-20-relu-bn-0": 0.9876}.items():
        result = TrainResult(best_epoch=3, best_test_acc=acc, test_loss=1.1, test_acc=acc)
        write_json(root / f"metrics/train_classifier/{key}.json",
                   result_metrics(result, model=key, params=75290 if "-8-" in key else 172890))
    for name, (first, last) in GRADIENTS.items():
        write_json(root / f"metrics/gradient_stats/{name}.json", gradient_headline(gradient_summary(first, last)))
    write_json(root / "metrics/train_encoder/cnn.json",
               result_metrics(TrainResult(best_epoch=1, best_test_acc=0.9955, test_acc=0.9955, test_loss=0.02),
               encoder="cnn", params=288554, epochs=1))
    write_json(root / "metrics/train_encoder/resnet18.json",
               result_metrics(TrainResult(best_epoch=2, best_test_acc=0.9931, test_acc=0.9931, test_loss=0.03),
               encoder="resnet18", params=700234, epochs=2))
    for variant, iou in FCN.items():
        write_json(root / f"metrics/train_fcn/{variant}.json", {
            "variant": variant, "params": 300000, "trainable_params": 300000, "train_images": 200, "diverged": False,
            "test_loss": 0.05, "best_epoch": 2,
            "best_test_pixel_accuracy": 0.99, "diverged_epoch": None,
            "digits": segmentation(iou["digits"], 50, variant == "binary"),
            "canvases": segmentation(iou["canvases"], 35, variant == "binary")})
        per_class_iou(root / f"plots/train_fcn/{variant}/per_class_iou.csv", iou)
    for depth, plain_random in ((8, 0.1804), (14, 0.2934)):  # at depth 8 the AUCs differ in hidden digits only
        write_json(root / f"metrics/gradcam/{depth}-relu-bn-0.json", {
            "images": 20, "box_area_fraction": 0.27,
            "plain": {"accuracy": 0.442, "pointing_game": 0.96, "energy_in_box": 0.67, "deletion_auc": 0.1801,
                      "deletion_auc_random": plain_random},
            "residual": {"accuracy": 0.692, "pointing_game": 0.2, "energy_in_box": 0.1, "deletion_auc": 0.2571,
                         "deletion_auc_random": 0.2569}})
    over_training_csv(root / "plots/gradient_report/over_training.csv")
    for i, rel in enumerate(FIGURES):
        path = root / "plots" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4 + i, 3), (20 * i, 100, 200)).save(path)
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "run")


def render(root: Path, out: Path) -> tuple[str, str]:
    write_report(build_report(root, yaml.safe_load((root / "params.yaml").read_text())), out)
    return (out / "report.md").read_text(), (out / "report.html").read_text()


def table_rows(md: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in md.splitlines() if line.startswith("| ")]


def test_markdown_tables_numbers_and_figures(tree, tmp_path):
    md, _ = render(tree, tmp_path / "out")
    rows = table_rows(md)
    assert ["relu-bn", "8", "0.075M", "50.00", "60.00", "+10.00", ""] in rows
    assert ["relu-bn", "14", "0.173M", "45.00", "66.20", "+21.20", ""] in rows
    assert "98.76" not in md and "depth 20" not in md  # the stale classifier is not in params
    assert "training seeds" not in md and "±" not in md  # one seed (the default [0]) reads as a single run
    assert ["tanh-nobn", "default", "14", "plain", "1.0e-08", "0.001", "1.0e-05", "1.0e-05", ""] in rows
    assert ["relu-bn", "trained", "14", "residual", "0.01", "0.02", "0.5", "0.5", ""] in rows
    assert ["fcn\\<8s\\&", "resnet18", "fcn8s", "digits", "canvases", "0.990", "0.901", "0.911", "0.980", "35"] in rows
    assert ["binary", "resnet18", "fcn8s", "binary", "single digits", "0.990", "0.970", "0.980", MISSING, "50"] in rows
    assert ["14", "relu-bn", "plain-14", "20", "0.442", "0.180", "0.293", "0.960", "0.670", "0.270"] in rows
    fcn = "upsample (6 epochs), fcn\\<8s\\& (2 epochs), binary (2 epochs); all training digits"
    assert ["FCN variants", fcn] in rows
    assert ["MNIST encoders", "cnn (1 epoch), resnet18 (2 epochs)"] in rows
    assert re.search(r"^\|---\|---:\|---\|---:\|---:\|---:\|", md, re.M)  # numbers right-aligned

    links = re.findall(r"!\[[^\]]+\]\((figures/[^)]+)\)", md)
    assert len(links) == len(FIGURES)
    for link in links:
        assert (tmp_path / "out" / unquote(link)).read_bytes().startswith(PNG_SIGNATURE), link
    assert sorted(p.name for p in (tmp_path / "out" / "figures").iterdir()) == sorted(Path(x).name for x in links)


def test_captions_state_this_runs_numbers(tree, tmp_path):
    md, _ = render(tree, tmp_path / "out")
    text = md.replace("\\", "")
    for claim in [
        "at depth 14 the residual network reaches 66.2 % test accuracy and the plain one 45.0 % (+21.2 pp)",
        "The residual network is ahead at every depth. Residual − plain rises with depth (+10.0 pp → +21.2 pp).",
        "The plain network's accuracy falls with depth (50.0 % → 45.0 %).",
        "depth 14: residual 66.2 %, plain 45.0 %",
        "the plain net's first / last mean |g| is 0.001 at depth 8, 1.0e-05 at depth 14: its gradient vanishes "
        "towards the input at depth 8 and 14 (first layer below 0.01 of the last), and the ratio shrinks with depth",
        "the residual net's first / last mean |g| is 0.8 at depth 8, 0.9 at depth 14: both ends stay within a factor "
        "of 1.2, and the ratio grows with depth",
        "2 of the 8 models have a first / last mean |g| below 0.01: plain-8 tanh-nobn (default) and plain-14",
        "The MNIST CNN (289k parameters) reaches 99.55 % test accuracy after 1 epoch. The ResNet-18 (width 0.25) "
        "(700k parameters) reaches 99.31 % test accuracy after 2 epochs.",
        "On canvases, fcn<8s& has the highest mean IoU among the 11-class variants, 0.901 (upsample 0.453).",
        "On single digits, binary has the highest foreground IoU, 0.980 (upsample 0.907, fcn<8s& 0.961).",
        "Foreground IoU of fcn<8s& (11 classes) vs binary (digit vs background), same encoder and decoder: "
        "single digits 0.961 vs 0.980; canvases 0.911 vs 0.960.",
        # from plots/train_fcn/upsample/per_class_iou.csv (class i: 0.897 - 0.001 i)
        "Per-class IoU ranges from 0.887 (class 9) to 0.897 (class background).",
        "plain-14 (relu-bn): deleting pixels in Grad-CAM order lowers the class probability faster than a random "
        "order (AUC 0.180 vs 0.293), so the map points at the evidence. Pointing game 0.960 and energy in box 0.670 "
        "against a chance level of 0.270: both above chance.",
        # 0.2571 vs 0.2569 look equal at the shown precision: no claim either way
        "residual-14 (relu-bn): deleting pixels in Grad-CAM order lowers the class probability as fast as a random "
        "order (AUC 0.257 vs 0.257). Pointing game 0.200 and energy in box 0.100 against a chance level of 0.270: "
        "both below chance.",
        "plain-8 (relu-bn): deleting pixels in Grad-CAM order lowers the class probability as fast as a random "
        "order (AUC 0.180 vs 0.180).",
        "In 1 of the 4 classifiers, deleting pixels in Grad-CAM order",
        "Of the first 20 test images, plain-14 classifies 44.2 % and residual-14 classifies 69.2 % correctly.",
        "Per-layer RMS gradient per parameter at epoch 0 and 3 and the training losses (depth 14, relu-bn, seed 0). "
        "First / last layer RMS: plain-14 0.01 at epoch 0, 0.5 at epoch 3; residual-14 0.03 at epoch 0, 1 at epoch 3. "
        "The last layer's RMS gradient, residual-14 over plain-14: 10 at epoch 0, 1.5 at epoch 3.",
    ]:
        assert claim in text, claim


@pytest.mark.parametrize("residual_14,claim", [
    (0.52, "Residual − plain falls with depth (+10.0 pp → +7.0 pp)."),
    (0.55, "Residual − plain stays the same with depth (+10.0 pp → +10.0 pp)."),
    (0.40, "The residual network is ahead at depth 8 and the plain network is ahead at depth 14."),
])
def test_accuracy_caption_follows_the_numbers(tmp_path, residual_14, claim):
    root = make_tree(tmp_path / "run", {**ACCURACY, "residual-14-relu-bn-0": residual_14})
    md, _ = render(root, tmp_path / "out")
    assert claim in md.replace("\\", "")
    assert "rises with depth (+10.0" not in md


class Collector(HTMLParser):
    """Start/end tags, each <img> with the tags enclosing it, and the text."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.starts: list[str] = []
        self.images: list[tuple[dict, list[str]]] = []
        self.text: list[str] = []
        self.figures: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        self.starts.append(tag)
        if tag == "img":
            self.images.append((dict(attrs), list(self.stack)))
        if tag == "figure":
            self.figures.append([])
        if self.stack and self.stack[-1] == "figure":
            self.figures[-1].append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (tag, self.stack)
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_standalone_valid_and_escaped(tree, tmp_path):
    _, page = render(tree, tmp_path / "out")
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">")
    parser = Collector()
    parser.feed(page)
    parser.close()
    assert parser.stack == []  # every element closed, properly nested
    assert {"html", "head", "meta", "title", "style", "body", "h1", "h2", "table", "thead", "tbody", "caption",
            "figure", "figcaption", "img", "ul", "li"} <= set(parser.starts)
    assert '<meta charset="utf-8">' in page
    assert len(parser.images) == len(FIGURES)
    sources = {(tree / "plots" / rel).read_bytes() for rel in FIGURES}
    for attrs, enclosing in parser.images:
        assert attrs.get("alt", "").strip()
        assert enclosing[-1] == "figure"
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        data = base64.b64decode(attrs["src"][len(prefix):], validate=True)
        assert data.startswith(PNG_SIGNATURE) and data in sources
    assert all(children == ["img", "figcaption"] for children in parser.figures)
    assert not re.search(r"https?:", page)
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)
    assert "fcn&lt;8s&amp;" in page and "fcn<8s" not in page
    assert "On canvases, fcn<8s& has the highest mean IoU among the 11-class variants" in "".join(parser.text)


def test_renderers_escape_every_kind_of_text(tmp_path):
    png = tmp_path / "x.png"
    Image.new("RGB", (2, 2)).save(png)
    texts = ["T<i>&", "H<2>", "P<p>&amp;", "B<li>", "C<th>|", "V<td>*", "T<cap>", "A<alt>\"", "F<fig>"]
    doc = Document(texts[0], [Heading(texts[1]), Paragraph(texts[2]), Bullets([texts[3]]),
                              Table(pd.DataFrame({texts[4]: [texts[5]]}), texts[6]),
                              Figure(png, "x.png", texts[7], texts[8])])
    page, md = to_html(doc), to_markdown(doc)
    parser = Collector()
    parser.feed(page)
    assert parser.starts.count("p") == 1 and parser.starts.count("li") == 1 and "i" not in parser.starts
    visible = "".join(parser.text)
    for text in texts[:7] + texts[8:]:
        assert text in visible, text
    assert parser.images[0][0]["alt"] == texts[7]
    assert all(re.sub(r"([<>&|*\[\]\\])", r"\\\1", t) in md for t in texts), md


def test_same_inputs_give_identical_bytes(tree, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    render(tree, first)
    render(tree, second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


@pytest.mark.parametrize("rel,stage", [
    ("metrics/train_classifier/residual-14-relu-bn-0.json", "train_classifier@residual-14-relu-bn-0"),
    ("metrics/gradient_stats/trained-plain-8-relu-bn-0.json", "gradient_stats_trained@plain-8-relu-bn-0"),
    ("metrics/gradient_stats/plain-14-tanh-nobn-default.json", "gradient_stats@plain-14-tanh-nobn-default"),
    ("metrics/train_fcn/upsample.json", "train_fcn@upsample"),
    ("plots/train_fcn/upsample/per_class_iou.csv", "train_fcn@upsample"),
    ("metrics/gradcam/8-relu-bn-0.json", "gradcam@8-relu-bn-0"),
    ("plots/gradient_report/profile_rms.png", "gradient_report"),
])
def test_missing_input_names_file_and_stage(tree, rel, stage):
    (tree / rel).unlink()
    with pytest.raises(UserError, match=re.escape(f"{rel} is missing: run `dvc repro {stage}`")):
        build_report(tree, PARAMS)


def test_a_figure_that_is_not_a_png_is_a_user_error(tree):
    (tree / "plots/segment_mnist/canvases.png").write_text("not an image")
    message = r"plots/segment_mnist/canvases.png is not a PNG image: run `dvc repro segment_mnist`"
    with pytest.raises(UserError, match=message):
        build_report(tree, PARAMS)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_stage_writes_the_report_and_keeps_it_on_error(tree):
    proc = run_stage(tree, "report.py")
    assert proc.returncode == 0, proc.stderr
    assert "reports/report.html" in proc.stdout
    before = snapshot(tree / "reports")
    assert {"report.md", "report.html"} <= set(before) and len(before) == 2 + len(FIGURES)

    (tree / "metrics/train_fcn" / f"{ODD}.json").unlink()
    proc = run_stage(tree, "report.py")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"error: metrics/train_fcn/{ODD}.json is missing: run `dvc repro train_fcn@{ODD}`"]
    assert snapshot(tree / "reports") == before
    assert not [p.name for p in tree.iterdir() if p.name.startswith(".reports")]  # no temporary folders left
    shutil.rmtree(tree / "reports")


def test_percentages_round_half_up_as_the_tables_show_them():
    """66.15 % in a table must read 66.2 % in a caption, although 100 * 0.6615 is 66.1499... as a float."""
    assert pct(0.6615) == "66.2 %" and pct(0.6605) == "66.1 %" and pct(0.1) == "10.0 %"
    assert pp(0.6605 - 0.431) == "+23.0 pp" and pp(-0.116) == "-11.6 pp"
    assert pp(-0.0004) == "+0.0 pp" and pct(None) == MISSING


def add_seed_1(root: Path, shift: float = 0.02) -> dict:
    """A second training seed of every classifier (accuracies ``shift`` higher, the same gradients and Grad-CAM
    numbers but plain's accuracy), and the params that name it."""
    params = {**PARAMS, "classifier": {**PARAMS["classifier"], "seeds": [0, 1]}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for key, acc in ACCURACY.items():
        seed_1 = key.removesuffix("-0") + "-1"
        result = TrainResult(best_epoch=3, best_test_acc=acc + shift, test_loss=1.1, test_acc=acc + shift)
        write_json(root / f"metrics/train_classifier/{seed_1}.json",
                   result_metrics(result, model=seed_1, params=75290 if "-8-" in key else 172890))
    for name in [n for n in GRADIENTS if n.startswith("trained-")]:
        shutil.copy(root / f"metrics/gradient_stats/{name}.json",
                    root / f"metrics/gradient_stats/{name.removesuffix('-0')}-1.json")
    for depth in (8, 14):
        metrics = json.loads((root / f"metrics/gradcam/{depth}-relu-bn-0.json").read_text())
        metrics["plain"]["accuracy"] += 0.1
        write_json(root / f"metrics/gradcam/{depth}-relu-bn-1.json", metrics)
    return params


def test_several_seeds_show_mean_std_and_the_seed_count(tree, tmp_path):
    params = add_seed_1(tree)
    write_report(build_report(tree, params), tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    rows = table_rows(md)
    # seeds 0 and 1: plain 45 / 47 %, residual 66.2 / 68.2 % -> mean ± sample std (std of two = |a - b| / sqrt 2)
    assert ["relu-bn", "14", "0.173M", "46.00 ± 1.41", "67.20 ± 1.41", "+21.20 ± 0.00", "2", ""] in rows
    assert ["14", "relu-bn", "plain-14", "20", "2", "0.492 ± 0.071", "0.180 ± 0.000", "0.293 ± 0.000", "0.960 ± 0.000",
            "0.670 ± 0.000", "0.270"] in rows
    assert ["relu-bn", "trained", "14", "residual", "0.01 ± 0", "0.02 ± 0", "0.5 ± 0", "0.5 ± 0", "2", ""] in rows
    text = md.replace("\\", "")
    for claim in [
        "at depth 14 the residual network reaches 67.2 ± 1.4 % test accuracy and the plain one 46.0 ± 1.4 % "
        "(+21.2 ± 0.0 pp)",
        "(Mean ± sample std over 2 training seeds per model; the gap is paired by seed.)",
        "depth 14: residual 67.2 ± 1.4 %, plain 46.0 ± 1.4 %",
        "for the 4 classifiers, 2 training seeds each",
        "The best final accuracy (means over seeds) is 67.2 ± 1.4 % (residual-14-relu-bn)",
        "depth 14, relu-bn, seed 0",
        "variants relu-bn × training seeds 0, 1;",  # the configuration table
    ]:
        assert claim in text, claim
    assert "nan" not in md.lower()



def test_accuracy_table_caption_quotes_the_seed_documents_numbers(tree, tmp_path):
    """The numbers the experiment reproduces stand beside every run's own (77 % / 85 %, 35 layers)."""
    write_report(build_report(tree, PARAMS), tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    assert "the seed document reports 77 % (plain) and 85 % (residual) test accuracy for 35-layer networks" in md


def test_gradient_findings_keep_resnet18_apart_and_catch_a_net_vanishing_at_both_ends():
    """The real ResNet-18 run's tanh-nobn numbers: ResNet-18 without skips has a harmless-looking first / last
    ratio (0.47) while both of its ends get ~1e-7, four orders below ResNet-18 with skips. The findings say so,
    and claim no depth trend between ResNet-18 and a 6n+2 net."""
    from cnnlab.report.gradients import _collapsed, _gradient_findings

    rows = [("plain", 18, 1.3e-07, 2.8e-07), ("residual", 18, 5.0e-03, 3.8e-03),
            ("plain", 20, 8.1e-08, 5.3e-04), ("residual", 20, 8.1e-03, 1.0e-02)]
    table = pd.DataFrame([{"arch": a, "depth": d, "variant": "tanh-nobn", "init": "default", "first_mean_abs": f,
                           "last_mean_abs": la, "ratio_mean_abs": f / la} for a, d, f, la in rows])
    collapsed = _collapsed(table)
    findings = _gradient_findings(table, collapsed)
    text = " ".join(findings)
    assert ("the plain net's first / last mean |g| is 0.46 in ResNet-18, 1.5e-04 at depth 20: its gradient "
            "vanishes towards the input at depth 20 (first layer below 0.01 of the last);") in text
    assert "with depth" not in text  # one 6n+2 depth: no trend, and ResNet-18 is not a point on it
    assert collapsed["depth"].tolist() == [18]  # plain-20's own ratio already shows its vanishing
    assert findings[-1].startswith("tanh-nobn, default initialisation, resnet18-noskip: its first-layer mean |g| "
                                   "is 2.6e-05 of resnet18's and its last-layer one 7.4e-05: the gradient vanishes "
                                   "along the whole net, which its first / last ratio (0.46) hides.")
    # with the skips' gradients as small as its own, nothing is flagged
    table.loc[table["arch"] == "residual", ["first_mean_abs", "last_mean_abs"]] = [[1e-7, 3e-7], [1e-7, 3e-7]]
    assert _collapsed(table).empty


def test_without_recorded_gradients_the_report_has_no_over_training_figures(tree, tmp_path):
    """train_classifier.grad_every: 0 leaves over_training.csv with its header only (and no figures)."""
    csv = tree / "plots/gradient_report/over_training.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")
    shutil.rmtree(tree / "plots/gradient_report/over_training")
    md, _ = render(tree, tmp_path / "out")
    assert "over_training" not in md and "Gradients over training" not in md
    assert "Per-layer RMS gradient of every model" in md  # the rest of the section stays


def test_the_over_training_figure_of_a_depth_is_required_when_its_gradients_were_recorded(tree, tmp_path):
    (tree / "plots/gradient_report/over_training/14-relu-bn-0.png").unlink()
    with pytest.raises(UserError, match=r"over_training/14-relu-bn-0.png is missing: run `dvc repro gradient_report`"):
        render(tree, tmp_path / "out")
