"""The offline page template for `dvc plots show`: Vega inline, DVC's placeholders kept, no CDN."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dvc_render import render_html
from dvc_render.vega import VegaRenderer

from cnnlab.errors import UserError
from cnnlab.vega_offline import BUNDLES, build_template

ROOT = Path(__file__).resolve().parents[1]


def fake_node_modules(root: Path, body: dict[str, str] | None = None) -> Path:
    body = body or {}
    for package, bundle in BUNDLES:
        (root / package / bundle).parent.mkdir(parents=True, exist_ok=True)
        (root / package / "package.json").write_text(json.dumps({"name": package, "version": "1.2.3"}))
        code = body.get(package, f"window.{package.replace('-', '_')} = 1;")
        (root / package / bundle).write_text(f"{code}\n//# sourceMappingURL={Path(bundle).name}.map\n")
    return root


def test_template_inlines_the_three_bundles_in_load_order(tmp_path):
    page = build_template(fake_node_modules(tmp_path))
    positions = [page.index(f"window.{p.replace('-', '_')} = 1;") for p, _ in BUNDLES]
    assert positions == sorted(positions)
    assert "sourceMappingURL" not in page
    assert "vega 1.2.3, vega-lite 1.2.3, vega-embed 1.2.3" in page
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "{scripts}" not in page and "http" not in page


def test_dvc_renders_a_plot_into_the_template_without_cdn(tmp_path):
    template = tmp_path / "template.html"
    template.write_text(build_template(fake_node_modules(tmp_path / "nm")))
    plot = VegaRenderer([{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.5}], "loss.tsv", x="step", y="loss",
                        title="train loss")
    out = render_html([plot], tmp_path / "out" / "index.html", html_template=template)
    html = Path(out).read_text()
    assert "cdn.jsdelivr" not in html
    assert "vegaEmbed(" in html and "train loss" in html
    assert html.index("window.vega_embed = 1;") < html.index("vegaEmbed(")


def test_missing_package_says_how_to_install(tmp_path):
    nm = fake_node_modules(tmp_path)
    (nm / "vega-lite" / "build" / "vega-lite.min.js").unlink()
    with pytest.raises(UserError, match="npm ci --prefix web"):
        build_template(nm)


@pytest.mark.parametrize("code", ["var s = '</script>';", "var t = '{plot_divs}';"])
def test_bundle_that_would_break_the_page_is_refused(tmp_path, code):
    with pytest.raises(UserError, match="vega-embed"):
        build_template(fake_node_modules(tmp_path, {"vega-embed": code}))


def test_pinned_versions_are_exact():
    """web/package.json pins exact versions (the lock file pins the rest): no ^ or ~ ranges."""
    deps = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]
    assert set(deps) == {p for p, _ in BUNDLES}
    assert all(v[0].isdigit() for v in deps.values()), deps
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())["packages"]
    assert {p: lock[f"node_modules/{p}"]["version"] for p in deps} == deps


def test_cli_writes_the_template_and_fails_in_one_line_without_packages(tmp_path):
    nm = fake_node_modules(tmp_path / "nm")
    out = tmp_path / "web" / "plots_template.html"
    cli = [sys.executable, "-m", "cnnlab.vega_offline", "--node-modules", str(nm), "--out", str(out)]
    proc = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text(encoding="utf-8") == build_template(nm)
    shutil.rmtree(nm / "vega")
    proc = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "npm ci --prefix web" in proc.stderr
    assert out.read_text(encoding="utf-8") == build_template(fake_node_modules(tmp_path / "nm2"))  # kept
