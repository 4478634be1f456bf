"""What users look at, checked in a real browser (headless Chromium, offline): the `dvc plots show`
page renders every declared plot with a title and axis labels, and the report shows every figure and
table; neither logs a console error nor asks the network for anything.

The pages come from the tiny pipeline run of conftest.py, or from the project in
``$CNNLAB_PAGES_PROJECT`` (CI points it at the repository after `make quick`). Screenshots go to
``<project>/plots/browser/`` (git-ignored) for a person to look at. Without Chromium these tests skip,
unless ``CNNLAB_REQUIRE_BROWSER=1`` (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from browser import find_chromium, inspect_page
from helpers import run_in

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path("web/plots_template.html")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _missing(what: str) -> None:
    if os.environ.get("CNNLAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} (CNNLAB_REQUIRE_BROWSER=1)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def project(request) -> Path:
    """A project folder whose pipeline ran, with the offline page template registered as `make setup` does."""
    if find_chromium() is None:
        _missing("no chromium: `apt-get install chromium` (or set CNNLAB_CHROMIUM)")
    if not (ROOT / TEMPLATE).is_file():
        _missing(f"{TEMPLATE} is missing: run `make setup` (needs npm)")
    if os.environ.get("CNNLAB_PAGES_PROJECT"):
        return Path(os.environ["CNNLAB_PAGES_PROJECT"]).resolve()
    folder, _ = request.getfixturevalue("tiny_pipeline")
    (folder / TEMPLATE).parent.mkdir(exist_ok=True)
    shutil.copy(ROOT / TEMPLATE, folder / TEMPLATE)
    run_in(folder, ["dvc", "config", "--local", "plots.html_template", f"../{TEMPLATE}"])
    return folder


def test_dvc_plots_show_renders_every_plot_offline(project, tmp_path):
    declared = json.loads(run_in(project, ["dvc", "plots", "show", "--json"]).stdout)["data"]
    proc = run_in(project, ["dvc", "plots", "show", "-o", tmp_path / "dvc_plots"])
    assert "failed to load" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    html = (tmp_path / "dvc_plots" / "index.html").read_text()
    assert "<script src=" not in html and "cdn." not in html  # Vega comes inline, from web/node_modules

    page = inspect_page(tmp_path / "dvc_plots" / "index.html", project / "plots" / "browser" / "dvc_plots.png")

    assert page.console_errors == [] and page.remote_requests == []
    kinds = {p["id"]: p["kind"] for p in page.plots}
    assert len(page.plots) == len(declared) >= 20, (len(page.plots), sorted(declared))
    assert "empty" not in kinds.values(), [i for i, k in kinds.items() if k == "empty"]
    for plot in page.plots:
        if plot["kind"] == "vega":
            assert plot["marks"] > 0, f"{plot['id']}: no data marks"
            assert plot["title"], f"{plot['id']}: no title"
            assert len(plot["axis_titles"]) >= 2, f"{plot['id']}: axis labels {plot['axis_titles']}"
    assert all(i["loaded"] and i["width"] > 0 for i in page.images), page.images
    images = sum(k == "image" for k in kinds.values())
    assert images >= 8 and len(page.images) == images
    vega_titles = " | ".join(p["title"] for p in page.plots)
    for expected in ("CIFAR-10 final test accuracy, plain vs residual", "per-layer gradient, RMS per parameter",
                     "normalised per true class", "Grad-CAM deletion curves", "per-epoch training curve"):
        assert expected in vega_titles


def test_gradient_plots_use_a_log_scale(project, tmp_path):
    """Gradients span decades (vanishing in the tanh plain nets): their plots use the log-scale template."""
    spec = json.loads(run_in(project, ["dvc", "plots", "show", "--json"]).stdout)["data"]
    for plot_id in ("gradient_profile_rms", "gradient_first_last_ratio"):
        (entry,) = spec[plot_id]
        assert entry["content"]["encoding"]["y"]["scale"] == {"type": "log"}, plot_id


def test_report_shows_every_figure_and_table(project):
    page = inspect_page(project / "reports" / "report.html", project / "plots" / "browser" / "report.png",
                        width=1100)
    assert page.console_errors == [] and page.remote_requests == []
    assert len(page.images) >= 6 and all(i["loaded"] and i["width"] > 0 for i in page.images), page.images
    assert all(i["src"].startswith("data:image/png;base64,") for i in page.images)  # one self-contained file
    assert page.tables >= 4
