"""Numbers and words as the report writes them: percentages, percentage points, significant digits, trends,
plurals and lists. Missing values (None/NaN) show as :data:`cnnlab.tables.MISSING`."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from cnnlab.tables import MISSING, is_missing


def half_up(x: float, digits: int) -> Decimal:
    """``x`` rounded half away from zero as the tables show it (66.15 -> 66.2), not as its binary float
    happens to lie (100 * 0.6615 = 66.14999...); the 10-decimal step drops that float noise first."""
    q = Decimal(f"{x:.10f}").quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return q.copy_abs() if q == 0 else q  # no "-0.0"


def pct(v: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.6615 -> "66.2 %"."""
    return MISSING if is_missing(v) else f"{half_up(100 * v, digits)} %"


def pp(v: float | None, digits: int = 1) -> str:
    """A difference of fractions in percentage points: 0.116 -> "+11.6 pp", 0.2295 -> "+23.0 pp"."""
    return MISSING if is_missing(v) else f"{half_up(100 * v, digits):+} pp"


def pct_std(mean: float | None, std: float | None, digits: int = 1) -> str:
    """A mean accuracy over seeds with its sample std: "66.2 ± 0.4 %"; just :func:`pct` without a std (one seed)."""
    if is_missing(mean) or is_missing(std):
        return pct(mean, digits)
    return f"{half_up(100 * mean, digits)} ± {half_up(100 * std, digits)} %"


def pp_std(mean: float | None, std: float | None, digits: int = 1) -> str:
    """A mean gap over seeds with its sample std: "+11.6 ± 0.8 pp"; just :func:`pp` without a std."""
    if is_missing(mean) or is_missing(std):
        return pp(mean, digits)
    return f"{half_up(100 * mean, digits):+} ± {half_up(100 * std, digits)} pp"


def sci(v: float | None) -> str:
    """Two significant digits, in exponent form outside [0.001, 10000): 0.78, 1.5e-04."""
    if is_missing(v):
        return MISSING
    return f"{v:.2g}" if v == 0 or 1e-3 <= abs(v) < 1e4 else f"{v:.1e}"


def fixed(v: float | None, digits: int = 3) -> str:
    return MISSING if is_missing(v) else f"{v:.{digits}f}"


def trend(values: list[float]) -> str | None:
    """"rises" / "falls" if ``values`` (in depth order, at least two) change strictly monotonically,
    "stays the same" if they are all equal, else None (no claim)."""
    diffs = [b - a for a, b in zip(values, values[1:], strict=False)]
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


def gradcam_layer(layer: str | None) -> str:
    """``gradcam.layer`` in a sentence: the module name, or what null means."""
    return layer or "the last stage (layer3 of a 6n+2 net, layer4 of ResNet-18)"
