"""A self-contained report of the pipeline's results, as Markdown and as one standalone HTML file.

Three parts:

- a tiny document model: :class:`Heading`, :class:`Paragraph`, :class:`Bullets`, :class:`Table` (a
  DataFrame of display strings and a caption) and :class:`Figure` (a PNG and its caption), in a
  :class:`Document`;
- two renderers: :func:`to_markdown` (GitHub-flavoured, pipe tables, images at ``figures/<name>.png``
  beside the report) and :func:`to_html` (one HTML5 file, images embedded as base64 data URIs, all
  text escaped); :func:`write_report` writes both plus the figures into a folder;
- :func:`build_report`, which reads the metrics and figures of exactly the models ``params.yaml``
  names and writes every caption from this run's numbers. It never reads the clock, so the same
  inputs give byte-identical outputs. A missing input is a :class:`UserError` naming the file and
  the stage that writes it.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from cnnlab.compare import accuracy_table, gradient_display, gradient_table
from cnnlab.config import get
from cnnlab.errors import UserError
from cnnlab.pipeline import (
    classifier_key,
    classifier_keys,
    classifier_metrics,
    gradcam_key,
    gradcam_metrics,
    gradient_metrics,
)
from cnnlab.pipeline import gradient_names as _gradient_names

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MISSING = "—"

# --------------------------------------------------------------------------- document model


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    """``frame`` holds the cells as shown (strings; None/NaN render as an em dash). A column whose cells
    are all numbers (``12.5``, ``+3.1``, ``1.5e-04``, ``66.2 %``) is right-aligned."""

    frame: pd.DataFrame
    caption: str


@dataclass
class Figure:
    """A PNG ``path`` shown as ``figures/<name>`` in Markdown and embedded in HTML; ``alt`` is a short
    description of the image, ``caption`` says what it shows."""

    path: Path
    name: str
    alt: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


# --------------------------------------------------------------------------- rendering

_NUMBER = re.compile(r"^[+\-−]?\d[\d,.]*(e[+\-]?\d+)?( ?%)?$")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~#])")

CSS = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
       max-width: 62rem; margin: 2rem auto; padding: 0 1rem; }
h1, h2, h3 { line-height: 1.2; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 1.5rem 0; font-size: 0.9rem; }
caption { caption-side: bottom; text-align: left; padding-top: 0.4rem; color: #444; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } .num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5rem 0; } img { max-width: 100%; max-height: 40rem; width: auto; height: auto; }
figcaption, caption { font-size: 0.9rem; } figcaption { color: #444; }
""".strip()


def _cell(value: object) -> str:
    return MISSING if _missing(value) else str(value)


def _cells(table: Table) -> tuple[list[str], list[list[str]], list[bool]]:
    """Header, rows of display strings, and which columns are numeric (right-aligned)."""
    header = [str(c) for c in table.frame.columns]
    rows = [[_cell(v) for v in row] for row in table.frame.itertuples(index=False)]
    numeric = [all(_NUMBER.match(r[i]) or r[i] in (MISSING, "") for r in rows)
               and any(r[i] not in (MISSING, "") for r in rows) for i in range(len(header))]
    return header, rows, numeric


def _md(text: str) -> str:
    """Backslash-escape the characters that Markdown (or GFM tables) would interpret."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _numbered(doc: Document) -> list[tuple[Block, str]]:
    """Each block with its label: "Table 2", "Figure 3" (empty for other blocks)."""
    counts = {Table: 0, Figure: 0}
    out = []
    for block in doc.blocks:
        label = ""
        if type(block) in counts:
            counts[type(block)] += 1
            label = f"{type(block).__name__} {counts[type(block)]}"
        out.append((block, label))
    return out


def to_markdown(doc: Document) -> str:
    parts = [f"# {_md(doc.title)}"]
    for block, label in _numbered(doc):
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {_md(block.text)}")
        elif isinstance(block, Paragraph):
            parts.append(_md(block.text))
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {_md(item)}" for item in block.items))
        elif isinstance(block, Table):
            header, rows, numeric = _cells(block)
            lines = ["| " + " | ".join(map(_md, header)) + " |",
                     "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
            lines += ["| " + " | ".join(map(_md, row)) + " |" for row in rows]
            parts.append("\n".join(lines) + f"\n\n*{label}. {_md(block.caption)}*")
        elif isinstance(block, Figure):
            parts.append(f"![{_md(block.alt)}](figures/{quote(block.name)})\n\n*{label}. {_md(block.caption)}*")
    return "\n\n".join(parts) + "\n"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(doc: Document) -> str:
    esc = html.escape
    body = [f"<h1>{esc(doc.title)}</h1>"]
    for block, label in _numbered(doc):
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>\n" + "\n".join(f"<li>{esc(item)}</li>" for item in block.items) + "\n</ul>")
        elif isinstance(block, Table):
            header, rows, numeric = _cells(block)
            cls = [' class="num"' if n else "" for n in numeric]
            head = "".join(f"<th{c}>{esc(h)}</th>" for h, c in zip(header, cls))
            cells = ["<tr>" + "".join(f"<td{c}>{esc(v)}</td>" for v, c in zip(row, cls)) + "</tr>" for row in rows]
            body.append(f"<table>\n<caption><strong>{label}.</strong> {esc(block.caption)}</caption>\n"
                        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(cells) + "\n</tbody>\n</table>")
        elif isinstance(block, Figure):
            body.append(f'<figure>\n<img src="{_data_uri(block.path)}" alt="{esc(block.alt)}">\n'
                        f"<figcaption><strong>{label}.</strong> {esc(block.caption)}</figcaption>\n</figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(doc.title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def write_report(doc: Document, folder: Path) -> None:
    """``report.md``, ``report.html`` and ``figures/<name>`` into ``folder`` (the caller makes it atomic)."""
    names = [f.name for f in doc.figures]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate figure names in the report: {names}")
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    for figure in doc.figures:
        shutil.copyfile(figure.path, folder / "figures" / figure.name)
    (folder / "report.md").write_text(to_markdown(doc), encoding="utf-8")
    (folder / "report.html").write_text(to_html(doc), encoding="utf-8")


# --------------------------------------------------------------------------- number formatting


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _half_up(x: float, digits: int) -> Decimal:
    """``x`` rounded half away from zero as the tables show it (66.15 -> 66.2), not as its binary float
    happens to lie (100 * 0.6615 = 66.14999...); the 10-decimal step drops that float noise first."""
    q = Decimal(f"{x:.10f}").quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return q.copy_abs() if q == 0 else q  # no "-0.0"


def pct(v: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.6615 -> "66.2 %"."""
    return MISSING if _missing(v) else f"{_half_up(100 * v, digits)} %"


def pp(v: float | None, digits: int = 1) -> str:
    """A difference of fractions in percentage points: 0.116 -> "+11.6 pp", 0.2295 -> "+23.0 pp"."""
    return MISSING if _missing(v) else f"{_half_up(100 * v, digits):+} pp"


def sci(v: float | None) -> str:
    """Two significant digits, in exponent form outside [0.001, 10000): 0.78, 1.5e-04."""
    if _missing(v):
        return MISSING
    return f"{v:.2g}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.1e}"


def fixed(v: float | None, digits: int = 3) -> str:
    return MISSING if _missing(v) else f"{v:.{digits}f}"


def trend(values: list[float]) -> str | None:
    """"rises" / "falls" if ``values`` (in depth order, at least two) change strictly monotonically,
    "stays the same" if they are all equal, else None (no claim)."""
    diffs = [b - a for a, b in zip(values, values[1:])]
    if not diffs:
        return None
    if all(d > 0 for d in diffs):
        return "rises"
    if all(d < 0 for d in diffs):
        return "falls"
    return "stays the same" if all(d == 0 for d in diffs) else None


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def series(values: list[str]) -> str:
    return " → ".join(values)


def words(items: list[str]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------- reading the run


class Run:
    """The pipeline's outputs under ``root``; every read names the file and the stage that writes it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, rel: str, stage: str) -> Path:
        path = self.root / rel
        if not path.is_file():
            raise UserError(f"{rel} is missing: run `dvc repro {stage}`")
        return path

    def json(self, rel: str, stage: str) -> dict:
        try:
            return json.loads(self.path(rel, stage).read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{rel} is not valid JSON ({err}): run `dvc repro {stage}`") from None

    def figure(self, rel: str, stage: str, alt: str, caption: str) -> Figure:
        path = self.path(rel, stage)
        with path.open("rb") as fh:
            if fh.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise UserError(f"{rel} is not a PNG image: run `dvc repro {stage}`")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", "_".join(Path(rel).parts[1:]))  # plots/a/b.png -> a_b.png
        return Figure(path, name, alt, caption)


def _size(v: int | None) -> str:
    return "all" if v is None else f"{v:,}"


def _list(values: list) -> str:
    return ", ".join(map(str, values))


def _fcn_epochs(params: dict, variant: str) -> int:
    return get(params, f"train_fcn.{variant}.training.epochs", get(params, "train_fcn.training.epochs"))


def configuration(params: dict) -> list[Block]:
    def p(key: str):
        return get(params, key)

    def grid(section: str, *axes: str) -> str:
        return " × ".join(f"{axis} {_list(p(f'{section}.{axis}'))}" for axis in axes)

    fcn = ", ".join(f"{v} ({plural(_fcn_epochs(params, v), 'epoch')})" for v in p("fcn.variants"))
    rows = [
        ("data source", p("data.source")),
        *[(f"{name} images (train / test)",
           f"{_size(p(f'data.{key}.train_size'))} / {_size(p(f'data.{key}.test_size'))}")
          for name, key in (("MNIST", "mnist"), ("CIFAR-10", "cifar10"))],
        ("seed", p("seed")),
        ("classifiers", f"{grid('classifier', 'archs', 'depths', 'variants')}; "
                        f"{plural(p('train_classifier.epochs'), 'epoch')}"),
        ("gradient statistics", f"{grid('gradient_matrix', 'archs', 'depths', 'variants', 'inits')}; "
                                f"{plural(p('gradient_stats.iterations'), 'iteration')} of batch "
                                f"{p('gradient_stats.batch_size')}"),
        ("MNIST CNN", plural(p("train_mnist_cnn.training.epochs"), "epoch")),
        ("FCN variants", f"{fcn}; {_size(p('train_fcn.train_size'))} training digits"),
        ("multi-digit canvases", f"{p('segment_mnist.canvas.count'):,} of {p('segment_mnist.canvas.rows')} × "
                                 f"{p('segment_mnist.canvas.cols')} cells"),
        ("Grad-CAM", f"layer {p('gradcam.layer')}, metrics over the first {p('gradcam.n_eval'):,} test images"),
    ]
    return [Heading("Configuration"),
            Table(pd.DataFrame(rows, columns=["setting", "value"]), "The parameters of this run (params.yaml).")]


# --------------------------------------------------------------------------- experiment 1: plain vs residual


def _accuracy_findings(table: pd.DataFrame) -> list[str]:
    """Per variant: the accuracies at each depth, the gap's trend and who leads, per architecture's trend."""
    out = []
    for variant, rows in table.groupby("variant", sort=False):
        rows = rows.sort_values("depth")
        both = rows.dropna(subset=["plain", "residual"])
        at = [f"at depth {r.depth} the residual network reaches {pct(r.residual)} test accuracy and the plain one "
              f"{pct(r.plain)} ({pp(r.residual_minus_plain)})" for r in both.itertuples()]
        if not at:
            out.append(f"{variant}: no depth has both accuracies (see the notes in the table).")
            continue
        text = f"{variant}: " + "; ".join(at) + "."
        gaps = [float(_half_up(100 * g, 1)) for g in both["residual_minus_plain"]]
        text += " " + _leaders(gaps, both["depth"].tolist())
        if len(gaps) >= 2:
            how = trend(gaps)
            shown = series([pp(g / 100) for g in gaps])
            text += (f" Residual − plain {how} with depth ({shown})." if how else
                     f" Residual − plain does not change monotonically with depth ({shown}).")
            for arch in ("plain", "residual"):
                values = [float(_half_up(100 * v, 1)) for v in both[arch]]
                direction = trend(values)
                if direction:
                    text += (f" The {arch} network's accuracy {direction} with depth "
                             f"({series([pct(v) for v in both[arch]])}).")
        out.append(text)
    return out


def _leaders(gaps: list[float], depths: list[int]) -> str:
    """Which architecture is ahead at which depth, from the rounded gaps residual − plain."""
    groups = {name: [str(d) for g, d in zip(gaps, depths) if test(g)]
              for name, test in (("residual", lambda g: g > 0), ("plain", lambda g: g < 0), ("tie", lambda g: g == 0))}
    everywhere = " at every depth" if len(gaps) > 1 else ""
    if len(groups["residual"]) == len(gaps):
        return f"The residual network is ahead{everywhere}."
    if len(groups["plain"]) == len(gaps):
        return f"The plain network is ahead{everywhere}."
    if len(groups["tie"]) == len(gaps):
        return f"The two networks tie{everywhere}."
    parts = [f"the {arch} network is ahead at depth {words(ds)}" for arch, ds in groups.items() if arch != "tie" and ds]
    if groups["tie"]:
        parts.append(f"they tie at depth {words(groups['tie'])}")
    text = words(parts)
    return text[0].upper() + text[1:] + "."


def classifiers(run: Run, params: dict) -> list[Block]:
    keys = classifier_keys(params, by_variant=True)
    metrics = {k: run.json(classifier_metrics(k), f"train_classifier@{k}") for k in keys}
    table = accuracy_table([{**m, "model": k} for k, m in metrics.items()])

    def per_arch(variant: str, depth: int, field: str, fmt, collapse: bool = False) -> str:
        values = [metrics.get(classifier_key(a, depth, variant), {}).get(field) for a in ("plain", "residual")]
        shown = [fmt(v) for v in values if v is not None]
        return shown[0] if collapse and len(set(shown)) == 1 else " / ".join(shown)

    rows = [{"variant": r.variant, "depth": r.depth,
             "parameters (plain / residual)": per_arch(r.variant, r.depth, "params", lambda v: f"{v / 1e6:.3f}M", True),
             "plain acc. (%)": fixed(100 * r.plain, 2), "residual acc. (%)": fixed(100 * r.residual, 2),
             "residual − plain (pp)": pp(r.residual_minus_plain, 2).removesuffix(" pp"),
             "training time plain / residual (s)": per_arch(r.variant, r.depth, "train_seconds", lambda v: f"{v:.0f}"),
             "note": r.note} for r in table.itertuples()]
    findings = _accuracy_findings(table)
    epochs = get(params, "train_classifier.epochs")
    done = {k: m["test_acc"] for k, m in metrics.items() if not m.get("diverged")}
    curves = (f"Test accuracy per epoch ({plural(epochs, 'epoch')} of training) for the {len(keys)} classifiers "
              "(plain blue, residual vermillion).")
    if done:
        best, worst = max(done, key=done.get), min(done, key=done.get)
        curves += f" The best final accuracy is {pct(done[best])} ({best}), the lowest {pct(done[worst])} ({worst})."
    diverged = [f"{k} diverged in epoch {m.get('diverged_epoch')}" for k, m in metrics.items() if m.get("diverged")]
    if diverged:
        curves += " " + "; ".join(diverged) + "."
    deepest = table.sort_values("depth").groupby("variant", sort=False).tail(1)
    at_deepest = " ".join(f"{r.variant}, depth {r.depth}: residual {pct(r.residual)}, plain {pct(r.plain)}."
                          for r in deepest.itertuples())
    return [
        Heading("Plain vs residual networks on CIFAR-10"),
        Paragraph("Plain and residual networks share every layer; the residual ones add the identity shortcut "
                  "around each block. Both are trained with the same schedule and evaluated on the test split."),
        Table(pd.DataFrame(rows), "Test accuracy of the final weights per depth. " + " ".join(findings)),
        run.figure("plots/compare_classifiers/accuracy_vs_depth.png", "compare_classifiers",
                   "Test accuracy against depth, plain vs residual",
                   "Test accuracy against depth (plain blue, residual vermillion). At the deepest depth: "
                   + at_deepest),
        run.figure("plots/compare_classifiers/test_accuracy_curves.png", "compare_classifiers",
                   "Test accuracy per epoch of every classifier", curves),
    ]


# --------------------------------------------------------------------------- gradient statistics

VANISHING = 1e-2  # first / last mean |grad| below this: the gradient vanishes towards the input
HEALTHY = 0.1  # between HEALTHY and 1 / HEALTHY: both ends of the net get gradients of a similar size


def gradient_names(params: dict) -> dict[str, str]:
    """Gradient-statistics model name -> the stage that writes it, for exactly the models params names."""
    return _gradient_names(params)


def _describe_ratios(arch: str, rows: pd.DataFrame) -> str:
    """What the first / last mean |grad| ratios of one architecture over depths show."""
    ratios = rows["ratio_mean_abs"].tolist()
    at = ", ".join(f"{sci(r)} at depth {d}" for r, d in zip(ratios, rows["depth"]))
    text = f"the {arch} net's first / last mean |g| is {at}"
    vanishing = [str(d) for r, d in zip(ratios, rows["depth"]) if r < VANISHING]
    if vanishing:
        text += (f": its gradient vanishes towards the input at depth {words(vanishing)} (first layer below "
                 f"{VANISHING:g} of the last)")
    elif all(HEALTHY <= r <= 1 / HEALTHY for r in ratios):
        factor = max(max(r, 1 / r) for r in ratios)
        text += f": both ends stay within a factor of {factor:.1f}"
    direction = {"rises": "grows", "falls": "shrinks"}.get(trend([float(sci(r)) for r in ratios]))
    if direction and len(ratios) >= 2:
        text += f", and the ratio {direction} with depth"
    return text


def _gradient_findings(table: pd.DataFrame) -> list[str]:
    out = []
    for (variant, init), group in table.groupby(["variant", "init"], sort=False):
        parts = []
        for arch, rows in group.groupby("arch", sort=True):
            rows = rows.dropna(subset=["ratio_mean_abs"]).sort_values("depth")
            rows = rows[rows["ratio_mean_abs"] > 0]
            if len(rows):
                parts.append(_describe_ratios(arch, rows))
        start = "trained classifiers" if init == "trained" else f"{init} initialisation"
        if parts:
            out.append(f"{variant}, {start}: " + "; ".join(parts) + ".")
    return out


def gradients(run: Run, params: dict) -> list[Block]:
    names = gradient_names(params)
    summaries = {n: run.json(gradient_metrics(n), stage) for n, stage in names.items()}
    table = gradient_table(summaries)
    numbers = ["first_mean_abs", "last_mean_abs", "ratio_mean_abs", "ratio_rms", "ratio_l2"]
    table[numbers] = table[numbers].apply(pd.to_numeric)  # a column of only skipped models holds None
    shown = gradient_display(table, sci)
    iterations, batch = get(params, "gradient_stats.iterations"), get(params, "gradient_stats.batch_size")
    findings = _gradient_findings(table)
    vanishing = table[table["ratio_mean_abs"] < VANISHING]
    listed = [f"{r.arch}-{r.depth} {r.variant} ({r.init})" for r in vanishing.itertuples()]
    count = (f"{len(listed)} of the {len(table)} models have a first / last mean |g| below {VANISHING:g}"
             + (f": {words(listed)}." if listed else "."))
    rms = table.dropna(subset=["ratio_rms"])
    profile = (f"Per-layer RMS gradient per parameter, averaged over the {plural(iterations, 'iteration')}, for the "
               f"{len(table)} models (input on the left, plain blue, residual vermillion).")
    if len(rms):
        steep = rms.loc[rms["ratio_rms"].idxmin()]
        profile += (f" The steepest fall towards the input is in {steep.arch}-{steep.depth} {steep.variant} "
                    f"({steep.init}): RMS first / last = {sci(steep.ratio_rms)}.")
    norm = (f"Gradient L2 norm of the first (solid) and the last (dashed) weight layer over the "
            f"{plural(iterations, 'iteration')}, log scale.")
    l2 = table.dropna(subset=["ratio_l2"])
    if len(l2):
        low = l2.loc[pd.to_numeric(l2["ratio_l2"]).idxmin()]
        norm += (f" The smallest first / last L2 ratio, averaged over the iterations, is {sci(low.ratio_l2)} "
                 f"({low.arch}-{low.depth} {low.variant}, {low.init}).")
    return [
        Heading("Gradient statistics: where do the gradients vanish?"),
        Paragraph(f"Each model runs {plural(iterations, 'SGD iteration')} on CIFAR-10 batches of {batch} images, "
                  "from its initialisation or from the trained weights; for the first and the last weight layer "
                  "the table gives the mean absolute gradient averaged over the iterations. A first / last ratio far "
                  "below 1 means that the gradient vanishes on its way back to the input."),
        Table(shown, f"First and last layer gradients of every model. {count}"),
        Bullets(findings),
        run.figure("plots/gradient_report/profile_rms.png", "gradient_report",
                   "Per-layer RMS gradient of every model", profile),
        run.figure("plots/gradient_report/grad_norm.png", "gradient_report",
                   "First and last layer gradient norm over the iterations",
                   norm),
    ]


# --------------------------------------------------------------------------- experiment 2: FCN surgery

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


def fcn(run: Run, params: dict) -> list[Block]:
    cnn = run.json("metrics/train_mnist_cnn.json", "train_mnist_cnn")
    variants = get(params, "fcn.variants")
    metrics = {v: run.json(f"metrics/train_fcn/{v}.json", f"train_fcn@{v}") for v in variants}
    rows = [{"variant": v, "test set": what, **{col: fixed(m[key].get(name)) for col, name in FCN_COLUMNS.items()},
             "digits": f"{m[key]['digits']:,}", "training (s)": f"{m['train_seconds']:.0f}" if key == "digits" else ""}
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
                       + _iou_range(m["digits"].get("per_class_iou", {}))),
        ]
    return blocks


# --------------------------------------------------------------------------- experiment 3: Grad-CAM

ARCHS = ("plain", "residual")


def _compare(a: str, b: str) -> int:
    """-1, 0 or 1 as the displayed numbers ``a`` < = > ``b``: claims never rest on hidden digits."""
    return (float(a) > float(b)) - (float(a) < float(b))


def _faithful(m: dict) -> bool:
    """Does deleting pixels in Grad-CAM order lower the class probability faster than a random order?"""
    cam, rnd = m.get("deletion_auc"), m.get("deletion_auc_random")
    return not _missing(cam) and not _missing(rnd) and _compare(fixed(cam), fixed(rnd)) < 0


def _deletion_finding(label: str, m: dict) -> str:
    cam, rnd = m.get("deletion_auc"), m.get("deletion_auc_random")
    if _missing(cam) or _missing(rnd):
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
            if boxes and not _missing(a.get("pointing_game")) and not _missing(m.get("box_area_fraction")):
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


# --------------------------------------------------------------------------- the whole report


def build_report(root: Path, params: dict) -> Document:
    """The report of the run whose outputs are under ``root`` and whose parameters are ``params``."""
    run = Run(root)
    doc = Document("cnnlab: results of the pipeline run")
    doc.blocks.append(Paragraph("Every table, number and caption below is computed from this run's metrics files "
                                "by stages/report.py; the figures are the pipeline's own."))
    for section in (configuration, classifiers, gradients, fcn, gradcam):
        doc.blocks += section(params) if section is configuration else section(run, params)
    return doc
