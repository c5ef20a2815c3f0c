"""Error-distribution figures for the HTML report (matplotlib, no GUI, no pyplot state).

One figure per norm: x is the implementation (``framework/form[/layout][/mode]``), hue is the dtype;
each (implementation, dtype) gets a box of every example's observed error (``samples`` of all its
records, every property pooled) with the examples drawn as a jittered strip on top, against the
allowed bound λ as a horizontal line, on a log scale. Figures are returned as ``data:`` URIs of
SVG documents so the report stays a single self-contained file (``img-src data:`` in its CSP).

matplotlib is imported here, and this module is imported only when a report is rendered.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from normcheck.adapters import FRAMEWORKS
from normcheck.report.formatting import num

__all__ = ["CEIL", "FLOOR", "error_figures"]

FLOOR = 1e-3  # observed errors below this (exact zeros included) are drawn at the floor of the log axis
CEIL = 1e12  # and errors above this at its ceiling (an overflowing kernel can err by 1e300)
MAX_STRIP = 400  # jittered points drawn per (implementation, dtype); the box uses every sample
DTYPE_COLORS = {
    "float64": "#4c72b0",
    "float32": "#2a9d8f",
    "float16": "#e9a23b",
    "bfloat16": "#9c6ade",
}
_OTHER_COLORS = ("#6c757d", "#c2185b", "#5d8aa8", "#8d6e63")
_OVER = "#c62828"


def _impl_label(rec: Mapping[str, Any]) -> str:
    """The implementation without its norm: ``framework/form[/layout][/mode]``."""
    impl = str(rec.get("impl") or "")
    parts = impl.split("/")
    norm = str(rec.get("norm") or "")
    if len(parts) >= 2 and parts[1] == norm:
        parts = parts[:1] + parts[2:]
    return "/".join(parts) or str(rec.get("framework") or "?")


_FRAMEWORKS = (*FRAMEWORKS, "user")  # a user's target last


def _impl_order(label: str) -> tuple[int, str]:
    fw = label.split("/")[0]
    return (_FRAMEWORKS.index(fw) if fw in _FRAMEWORKS else len(_FRAMEWORKS), label)


def _dtype_order(dt: str) -> tuple[int, str]:
    order = list(DTYPE_COLORS)
    return (order.index(dt) if dt in order else len(order), dt)


def _bound(records: Iterable[Mapping[str, Any]]) -> float | None:
    """The most common positive finite ``allowed`` among the records (λ for most properties)."""
    counts: dict[float, int] = {}
    for r in records:
        a = num(r.get("allowed"))
        if a is not None and math.isfinite(a) and a > 0:
            counts[a] = counts.get(a, 0) + 1
    return max(counts, key=lambda a: (counts[a], a)) if counts else None


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _pow10(y: float, _pos: Any = None) -> str:
    """Log-axis tick label as plain text (``10⁻³``, ``1``, ``10⁴``): no mathtext, which is slow."""
    if not 0 < y < math.inf:
        return ""
    e = math.log10(y)
    if abs(e - round(e)) > 1e-9:
        return f"{y:g}"
    e = round(e)
    return {0: "1", 1: "10"}.get(e, "10" + str(e).translate(_SUPERSCRIPT))


def _svg_uri(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _norm_figure(norm: str, records: Sequence[Mapping[str, Any]], fig_index: int) -> dict[str, Any] | None:
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    groups: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r.get("verdict") == "skip":
            continue
        raw = r.get("samples")
        vals = [v for v in map(num, raw if isinstance(raw, list) else []) if v is not None and math.isfinite(v)]
        if not vals:
            continue
        groups.setdefault((_impl_label(r), str(r.get("dtype") or "?")), []).extend(vals)
    if not groups:
        return None
    lam = _bound(records)
    impls = sorted({k[0] for k in groups}, key=_impl_order)
    dts = sorted({k[1] for k in groups}, key=_dtype_order)
    colors = {dt: DTYPE_COLORS.get(dt, _OTHER_COLORS[i % len(_OTHER_COLORS)]) for i, dt in enumerate(dts)}
    slot = 0.8 / len(dts)
    width = min(max(5.5, 0.42 * len(impls) * max(1, len(dts)) + 2.5), 16.0)
    rc = {
        "text.parse_math": False,  # labels are untrusted text: a stray "$" must not reach mathtext
        "text.usetex": False,
        "svg.fonttype": "none",
        "svg.hashsalt": f"normcheck-{fig_index}",
        "font.family": ["DejaVu Sans", "sans-serif"],
        "font.size": 8.5,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    rng = np.random.default_rng(fig_index)
    n_points = n_over = 0
    ymax = 1.0
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(width, 3.3), layout="constrained")
        ax = fig.add_subplot()
        for i, impl in enumerate(impls):
            for j, dt in enumerate(dts):
                vals = groups.get((impl, dt))
                if not vals:
                    continue
                x0 = i - 0.4 + slot * (j + 0.5)
                arr = np.clip(np.asarray(vals, dtype=float), FLOOR, CEIL)
                ymax = max(ymax, float(arr.max()))
                n_points += arr.size
                ax.boxplot(
                    [arr],
                    positions=[x0],
                    widths=slot * 0.8,
                    whis=(0, 100),
                    patch_artist=True,
                    manage_ticks=False,
                    showfliers=False,
                    boxprops={"facecolor": colors[dt] + "33", "edgecolor": colors[dt], "linewidth": 0.9},
                    medianprops={"color": colors[dt], "linewidth": 1.4},
                    whiskerprops={"color": colors[dt], "linewidth": 0.8},
                    capprops={"color": colors[dt], "linewidth": 0.8},
                    zorder=2,
                )
                pts = arr
                if pts.size > MAX_STRIP:  # keep the largest errors, thin the rest evenly
                    srt = np.sort(pts)
                    keep = MAX_STRIP // 4
                    rest = srt[:-keep][np.linspace(0, srt.size - keep - 1, MAX_STRIP - keep).astype(int)]
                    pts = np.concatenate([rest, srt[-keep:]])
                jit = x0 + (rng.random(pts.size) - 0.5) * slot * 0.6
                over = pts > lam if lam is not None else np.zeros(pts.size, bool)
                n_over += int(np.count_nonzero(np.asarray(vals, dtype=float) > lam)) if lam is not None else 0
                ax.scatter(
                    jit[~over], pts[~over], s=7, color=colors[dt], alpha=0.55, linewidths=0, zorder=3, rasterized=True
                )
                if over.any():
                    ax.scatter(
                        jit[over], pts[over], s=14, color=_OVER, marker="x", linewidths=1.0, zorder=4, rasterized=True
                    )
        if lam is not None:
            ax.axhline(lam, color=_OVER, linestyle="--", linewidth=1.1, zorder=1)
            ax.annotate(
                f"allowed λ = {lam:g}",
                xy=(1.0, lam),
                xycoords=("axes fraction", "data"),
                xytext=(-4, 3),
                textcoords="offset points",
                ha="right",
                va="bottom",
                color=_OVER,
                fontsize=8,
            )
            ymax = max(ymax, lam)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, numticks=12))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(_pow10))
        ax.set_ylim(FLOOR / 1.6, ymax * 4)
        ax.set_xlim(-0.6, len(impls) - 0.4)
        ax.set_xticks(range(len(impls)))
        ax.set_xticklabels(
            impls,
            rotation=25 if len(impls) > 4 else 0,
            ha="right" if len(impls) > 4 else "center",
            fontsize=8.5 if len(impls) <= 24 else 6.5,
        )
        for i in range(1, len(impls)):
            ax.axvline(i - 0.5, color="#e3e6ea", linewidth=0.8, zorder=0)
        ax.grid(axis="y", which="major", color="#eef0f2", linewidth=0.8, zorder=0)
        ax.set_ylabel(f"observed error (u·s), floor {FLOOR:g}")
        ax.set_title(norm, loc="left", fontweight="bold")
        handles = [Patch(facecolor=colors[dt] + "55", edgecolor=colors[dt], label=dt) for dt in dts]
        if n_over:
            handles.append(Line2D([], [], color=_OVER, marker="x", linestyle="none", markersize=5, label="above bound"))
        ax.legend(
            handles=handles,
            loc="lower right",
            bbox_to_anchor=(1.0, 1.0),
            fontsize=7.5,
            frameon=False,
            ncol=len(handles),
            borderaxespad=0.2,
        )
        uri = _svg_uri(fig)
    return {
        "norm": norm,
        "uri": uri,
        "implementations": len(impls),
        "wide": width > 7.5,
        "points": n_points,
        "over": n_over,
        "bound": None if lam is None else f"{lam:g}",
    }


def error_figures(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One error-distribution figure per norm that has any finite samples.

    Returns ``[{"norm", "uri" (data:image/svg+xml;base64,...), "implementations", "points", "over", "bound"}]``.
    """
    by_norm: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        by_norm.setdefault(str(r.get("norm") or "?"), []).append(r)
    out = []
    for k, norm in enumerate(sorted(by_norm)):
        fig = _norm_figure(norm, by_norm[norm], k)
        if fig is not None:
            out.append(fig)
    return out
