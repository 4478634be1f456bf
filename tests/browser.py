"""Open a local HTML page in headless Chromium (Debian's ``chromium``, driven by Playwright) and report
what a person would see: which plots rendered marks, which images loaded, console errors, and any
request that would leave the machine. Used by tests/test_browser.py.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

#: What the machine's closed network needs: no sandbox as root, and no background requests to Google.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def find_chromium() -> str | None:
    """``$CNNLAB_CHROMIUM``, else the first Chromium/Chrome on PATH."""
    if os.environ.get("CNNLAB_CHROMIUM"):
        return os.environ["CNNLAB_CHROMIUM"]
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@dataclass
class PageReport:
    plots: list[dict] = field(default_factory=list)  # one per DVC plot container: id, kind, marks, title, ...
    images: list[dict] = field(default_factory=list)  # every <img>: src (shortened), loaded, width
    tables: int = 0
    console_errors: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)  # anything but file: and data: URLs


# Runs in the page. A Vega plot counts as rendered when its SVG holds data marks (paths/shapes inside a
# `role-mark` group); axis ticks and grids are `role-axis-*` and do not count.
_INSPECT = """async () => {
  const outcomes = await Promise.all((window.cnnlabPlots || []).map(p => p.done));
  const text = (root, sel) => [...root.querySelectorAll(sel)].map(t => t.textContent.trim()).filter(Boolean);
  const plots = [...document.querySelectorAll('.plots > div')].map(div => {
    const svg = div.querySelector('svg.marks');
    const img = div.querySelector('img');
    const marks = svg ? [...svg.querySelectorAll('.role-mark > path, .role-mark > rect, .role-mark > circle')]
        .filter(m => m.tagName !== 'path' || (m.getAttribute('d') || '').length > 0).length : 0;
    return {id: div.id, kind: svg ? 'vega' : (img ? 'image' : 'empty'), marks,
            title: svg ? text(svg, '.role-title-text').join(' ') : '',
            axis_titles: svg ? text(svg, '.role-axis-title') : []};
  });
  const images = [...document.images].map(i => ({src: i.getAttribute('src').slice(0, 80), loaded: i.complete,
                                                  width: i.naturalWidth}));
  return {plots, images, tables: document.querySelectorAll('table').length, outcomes};
}"""


def inspect_page(page_path: Path, screenshot: Path, width: int = 1400) -> PageReport:
    """Load ``page_path`` (a file), wait until every plot settled, inspect it and save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    report = PageReport()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("console", lambda m: report.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: report.console_errors.append(f"uncaught: {e}"))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                    else report.remote_requests.append(r.url))
            page.route(lambda url: not url.startswith(("file:", "data:")), lambda route: route.abort())
            page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
            found = page.evaluate(_INSPECT)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    report.plots, report.images, report.tables = found["plots"], found["images"], found["tables"]
    report.console_errors += [f"plot failed: {o}" for o in found["outcomes"] if o != "ok"]
    return report
