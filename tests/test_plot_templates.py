"""The DVC plot templates in .dvc/plots/: the encoding of the overlays (one colour per model in every panel,
a readable dash legend for `dvc plots diff`) and the per-model DVCLive curves (no smoothed layer).

The JSON is checked always; rendering with the pinned Vega / Vega-Lite (web/node_modules, `make setup`)
runs where node and those packages are installed and skips otherwise.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from dvc_render.vega import VegaRenderer

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / ".dvc" / "plots"
WEB = ROOT / "web"
OVERLAYS = ("lines_by_model", "log_lines_by_model")


def template(name: str) -> dict:
    return json.loads((TEMPLATES / f"{name}.json").read_text())


def filled(name: str, datapoints: list[dict], x: str, y: str) -> dict:
    """The template as DVC fills it (dvc_render, the library `dvc plots` uses)."""
    path = TEMPLATES / f"{name}.json" if (TEMPLATES / f"{name}.json").exists() else name
    return VegaRenderer(datapoints, name, template=str(path), x=x, y=y, title="t", x_label="x",
                        y_label="y").get_filled_template()


def render(spec: dict) -> dict:
    if shutil.which("node") is None or not (WEB / "node_modules" / "vega-lite").is_dir():
        pytest.skip("rendering needs node and web/node_modules (make setup / npm ci --prefix web)")
    out = subprocess.run(["node", str(Path(__file__).with_name("render_vega.js")), str(WEB)], input=json.dumps(spec),
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def legend_symbols(svg: str, title: str) -> list[str]:
    """The symbol paths of the legend titled ``title`` (vega's SVG: symbols come before their title)."""
    legends = svg.split('aria-roledescription="legend"')[1:]
    for legend in legends:
        if re.search(rf">{re.escape(title)}</text>", legend):
            return re.findall(r'role-legend-symbol"[^>]*><path ([^>]*)/>', legend)
    raise AssertionError(f"no legend titled {title!r}")


def overlay_data() -> list[dict]:
    """Two revisions of two panels; the panels hold different models (plain-44 only in the second)."""
    rows = []
    for rev in ("main", "deeper"):
        for panel, models in (("relu-bn", ("plain-20", "residual-20")), ("tanh-nobn", ("plain-44", "residual-20"))):
            for i, model in enumerate(models):
                rows += [{"rev": rev, "panel": panel, "model": model, "epoch": e, "acc": 0.1 * e + 0.01 * i}
                         for e in (1, 2, 3)]
    return rows


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_encoding_shares_colour_and_draws_line_legends(name):
    t = template(name)
    enc = t["encoding"]
    assert enc["color"]["field"] == "model" and enc["color"]["sort"] == "ascending"
    assert enc["strokeDash"]["field"] == "rev"
    assert t["resolve"]["scale"] == {"color": "shared", "strokeDash": "shared"}
    assert enc["facet"]["field"] == "panel"
    for channel in ("color", "strokeDash"):
        assert enc[channel]["legend"]["symbolType"] == "stroke", channel
    dash = enc["strokeDash"]["legend"]
    # vega-lite gives the dash legend of a line-with-points mark a transparent stroke unless it is set
    assert dash["symbolStrokeColor"] and dash["symbolFillColor"]
    dashes = [tuple(d) for d in enc["strokeDash"]["scale"]["range"]]
    assert len(set(dashes)) == len(dashes) >= 2 and dashes[0] == (1, 0)  # first revision solid, the rest distinct


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_renders_one_colour_per_model_and_visible_dashes(name):
    result = render(filled(name, overlay_data(), "epoch", "acc"))
    assert result["warnings"] == []
    colour_scales = [s for s in result["spec"]["scales"] if s["name"] == "color"]
    assert len(colour_scales) == 1  # one scale for every panel: a model has one colour everywhere
    model_symbols = legend_symbols(result["svg"], "model")
    colours = [re.search(r'stroke="([^"]+)"', s).group(1) for s in model_symbols]
    assert len(colours) == 3 and len(set(colours)) == 3  # plain-20, plain-44, residual-20
    rev_symbols = legend_symbols(result["svg"], "revision")
    assert len(rev_symbols) == 2
    for symbol in rev_symbols:  # a visible line with a dash pattern, not a dot
        assert re.search(r'stroke="#555555"', symbol) and re.search(r'd="M-[\d.]+,0L[\d.]+,0"', symbol), symbol
    patterns = [re.search(r'stroke-dasharray="([^"]+)"', s).group(1) for s in rev_symbols]
    assert patterns[0] != patterns[1]


def dvclive_points(n: int) -> list[dict]:
    return [{"step": i, "loss": 1.0 / (i + 1), "rev": "workspace", "filename": "dvclive/m/plots/metrics/loss.tsv",
             "field": "loss"} for i in range(n)]


def test_dvclive_plots_use_the_template_without_smoothing():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    entries = [(name, out, props) for name, stage in stages.items() for d in [stage.get("do", stage)]
               for entry in d.get("plots", []) if isinstance(entry, dict) for out, props in entry.items()]
    dvclive = [(name, props) for name, out, props in entries if out.startswith("dvclive/")]
    assert len(dvclive) == 3
    for name, props in dvclive:
        assert props["template"] == "simple_lines", name
    t = template("simple_lines")
    assert "layer" not in t and "transform" not in t and t["mark"]["type"] == "line" and t["mark"]["point"]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_short_dvclive_curves_render_without_warnings(n):
    result = render(filled("simple_lines", dvclive_points(n), "step", "loss"))
    assert not [w for w in result["warnings"] if "extent" in w]
    assert "mark-line" in result["svg"]


def test_dvcs_linear_template_warns_on_short_curves():
    """The reason for simple_lines: DVC's default `linear` template logs an infinite extent for 2 points."""
    result = render(filled("linear", dvclive_points(2), "step", "loss"))
    assert any("Infinite extent" in w for w in result["warnings"]), result["warnings"]


def test_gradient_epochs_template_draws_a_line_per_epoch_and_a_panel_per_statistic():
    t = template("gradient_epochs")
    enc = t["encoding"]
    assert enc["color"]["field"] == "epoch" and enc["color"]["type"] == "ordinal"
    assert enc["facet"]["field"] == "statistic" and enc["y"]["scale"]["type"] == "log"
    assert enc["strokeDash"]["field"] == "rev"
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train_classifier"]
    props = [p for entry in stage["plots"] for out, p in entry.items() if out.endswith("/gradients.csv")]
    assert props == [{**props[0], "template": "gradient_epochs", "x": "layer_index", "y": "value"}]
    rows = [{"rev": "workspace", "epoch": e, "statistic": s, "layer_index": i, "value": 10.0 ** -(i + e)}
            for e in (0, 1, 2) for s in ("grad_rms", "grad_l2") for i in range(4)]
    result = render(filled("gradient_epochs", rows, "layer_index", "value"))
    assert result["warnings"] == []
