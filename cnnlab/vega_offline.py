"""An offline page template for ``dvc plots show`` and ``dvc plots diff``.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline it shows no plot at all.
DVC accepts its own page template (config ``plots.html_template``): this module builds one that carries
the three libraries inline, read from the pinned npm packages in ``web/`` (``web/package-lock.json``).
The page DVC writes from it is then a single self-contained file that renders without any network.

``make setup`` runs ``npm ci --prefix web``, then ``python -m cnnlab.vega_offline`` and points DVC at the
result in ``.dvc/config.local`` (untracked). Without that step DVC keeps its default (CDN) page.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from cnnlab.errors import UserError, run_cli
from cnnlab.io import write_text

#: (npm package, built UMD bundle inside it), in load order: Vega-Lite needs Vega, Vega-Embed both.
BUNDLES = (("vega", "build/vega.min.js"), ("vega-lite", "build/vega-lite.min.js"),
           ("vega-embed", "build/vega-embed.min.js"))
#: What DVC substitutes in the template (``dvc_render.html``). ``{scripts}`` is left out on purpose:
#: it is where DVC would put its CDN ``<script src=...>`` tags.
PLOTS_PLACEHOLDER, REFRESH_PLACEHOLDER, SCRIPTS_PLACEHOLDER = "{plot_divs}", "{refresh_tag}", "{scripts}"
_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=.*$", re.MULTILINE)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh}
<title>cnnlab - DVC plots</title>
<!-- {versions}: inlined from web/node_modules by cnnlab.vega_offline (no network needed) -->
{scripts}
<script>
/* DVC calls vegaEmbed(id, spec) for every plot. Render as SVG (sharp in print and screenshots) and keep
   each plot's outcome in window.cnnlabPlots, so a failed plot shows in the console and in tests. */
(function () {{
  var embed = window.vegaEmbed;
  window.cnnlabPlots = [];
  window.vegaEmbed = function (el, spec, opts) {{
    var result = embed(el, spec, Object.assign({{renderer: "svg"}}, opts || {{}}));
    window.cnnlabPlots.push({{id: el, done: result.then(
      function () {{ return "ok"; }},
      function (err) {{ console.error("plot " + el + " failed: " + err); return String(err); }})}});
    return result;
  }};
}})();
</script>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
  h1 {{ font-size: 1.3rem; font-weight: 600; }}
  .plots {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
  .plots > div {{ border: 1px solid #ddd; padding: 0.5rem; max-width: 100%; overflow-x: auto; }}
  .plots img {{ max-width: 100%; }}
  table {{ border-spacing: 15px; }}
</style>
</head>
<body>
<h1>cnnlab - DVC plots</h1>
<div class="plots">
{plots}
</div>
</body>
</html>
"""


def read_bundle(node_modules: Path, package: str, bundle: str) -> tuple[str, str]:
    """(version, JavaScript) of one installed package's UMD bundle, ready to sit inside ``<script>``."""
    manifest, script = node_modules / package / "package.json", node_modules / package / bundle
    if not manifest.is_file() or not script.is_file():
        raise UserError(f"{script} is missing: install the pinned packages with `npm ci --prefix web` "
                        "(or `make setup`)")
    version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    code = _SOURCE_MAP.sub("", script.read_text(encoding="utf-8")).rstrip()
    if "</script" in code.lower():
        raise UserError(f"{script} contains '</script' and cannot be inlined into an HTML page")
    for placeholder in (PLOTS_PLACEHOLDER, REFRESH_PLACEHOLDER, SCRIPTS_PLACEHOLDER):
        if placeholder in code:
            raise UserError(f"{script} contains DVC's template placeholder {placeholder}")
    return version, code


def build_template(node_modules: str | Path) -> str:
    """The HTML template for DVC's ``plots.html_template``, with Vega, Vega-Lite and Vega-Embed inline."""
    node_modules = Path(node_modules)
    versions, scripts = [], []
    for package, bundle in BUNDLES:
        version, code = read_bundle(node_modules, package, bundle)
        versions.append(f"{package} {version}")
        scripts.append(f"<script>\n{code}\n</script>")
    return PAGE.format(refresh=REFRESH_PLACEHOLDER, versions=", ".join(versions), scripts="\n".join(scripts),
                       plots=PLOTS_PLACEHOLDER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--node-modules", default="web/node_modules", help="where `npm ci --prefix web` installed")
    parser.add_argument("--out", default="web/plots_template.html")
    args = parser.parse_args()
    page = build_template(args.node_modules)
    write_text(args.out, page)
    print(f"wrote {args.out} ({len(page) // 1024} KiB)")


if __name__ == "__main__":
    run_cli(main)
