"""Run the benchmark matrix: median time, GB/s under the byte model and fraction of the copy roof
measured in the same run, per (framework, norm, dtype, layout, mode, pass, shape).

Result document, schema ``normcheck.bench/1``::

    {"schema", "machine": {...}, "roof": {device, gbps, api, copies: [...]},
     "results": [{framework, norm, api, dtype, shape, layout, mode, pass, size ("large"|"small"),
                  median_s, iqr_s, first_s, bytes, gbps, fraction_of_roof, latency_us}],
     "skipped": [{..., "reason"}], "findings": [{...}]}

Large shapes (several times the last-level cache) are reported in GB/s and as a fraction of the
roof; small ones (in cache) as latency. A **performance finding** is an implementation whose
fraction of roof is below ``1/3`` of the best comparable one: the same framework, dtype, pass and
mode on equal bytes (another norm, or the other layout of the same norm).
"""

from __future__ import annotations

import time
from typing import Any

from normcheck.bench import model, native, roof, timer

__all__ = [
    "NOISY_SPREAD",
    "SCHEMA",
    "findings",
    "load",
    "noise_warnings",
    "report_rows",
    "report_section",
    "run",
    "table",
]

SCHEMA = "normcheck.bench/1"
FINDING_RATIO = 1 / 3


def run(
    *,
    frameworks=None,
    norms=None,
    dtypes=("float32",),
    device: str = "cpu",
    layouts=("channels_first", "channels_last"),
    modes=None,
    passes=(native.FORWARD,),
    sizes=("large",),
    shapes=None,
    quick: bool = False,
    target=None,
    progress=None,
) -> dict[str, Any]:
    """Benchmark every supported combination; see the module docstring for the document.

    ``target`` (a function with the canonical signature taking its framework's arrays; give one
    framework and one norm) is timed beside the framework's native call on the same cases, in rows
    with ``target: true``."""
    from normcheck import adapters, spec

    fws = [a.name for a in adapters.installed(frameworks) if a.bench_natives() is not None]
    whos = (None,) if target is None else (None, target)  # the native call, then the user's
    norms = list(norms or spec.names())
    llc_bytes, _ = roof.llc(device)
    roof_doc = roof.measure_roof(device, quick=quick, frameworks=fws)
    timing = {"min_reps": 3, "min_time": 0.05, "max_time": 5.0} if quick else {"min_reps": 5, "min_time": 0.3}
    results, skipped = [], []
    for fw in fws:
        fw_modes = native.natives(fw).modes
        for norm in norms:
            for dtype in dtypes:
                for size in sizes:
                    if shapes:
                        cases = [("custom", model.parse_shape(s) if isinstance(s, str) else tuple(s)) for s in shapes]
                    elif size == "large":
                        numel = model.large_numel(llc_bytes, dtype) // (8 if quick else 1)
                        cases = [("large", _shape_with(norm, numel))]
                    else:
                        cases = [("small", model.small_shape(norm))]
                    for size_name, shape in cases:
                        for layout in layouts:
                            for mode in [m for m in (modes or fw_modes[:1]) if m in fw_modes]:
                                for pass_, who in [(p, t) for p in passes for t in whos]:
                                    row = dict(
                                        framework=fw,
                                        norm=norm,
                                        dtype=dtype,
                                        shape=list(shape),
                                        layout=layout,
                                        mode=mode,
                                        size=size_name,
                                    )
                                    row["pass"] = pass_
                                    row["target"] = who is not None
                                    why = (
                                        _target_why(fw, layout)
                                        if who
                                        else native.supports(fw, norm, layout, mode, pass_, device)
                                    )
                                    why = why or model.shape_fits(norm, shape)
                                    if why:
                                        skipped.append({**row, "reason": why})
                                        continue
                                    try:
                                        call = native.build(
                                            fw,
                                            norm,
                                            shape=shape,
                                            dtype=dtype,
                                            layout=layout,
                                            mode=mode,
                                            pass_=pass_,
                                            device=device,
                                            target=who,
                                        )
                                        t = timer.measure(call.fn, sync=call.sync, **timing)
                                    except Exception as e:  # a framework that cannot run this case here
                                        skipped.append(
                                            {**row, "reason": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
                                        )
                                        continue
                                    results.append(
                                        _result(
                                            row,
                                            call.api,
                                            t,
                                            model.model(norm, shape, dtype).of(pass_),
                                            roof_doc["gbps"],
                                        )
                                    )
                                    if progress:
                                        progress(results[-1])
                native.clear()
    doc = {"schema": SCHEMA, "machine": roof.machine(device), "roof": roof_doc, "results": results, "skipped": skipped}
    doc["findings"] = findings(results)
    doc["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return doc


def _target_why(fw: str, layout: str) -> str | None:
    """Why a user's target (canonical, channels-first arrays) cannot run in ``layout``, or None."""
    if layout == "channels_first" or native.natives(fw).layouts_keep_logical_shape:
        return None
    return f"a {fw} target takes canonical (channels-first) arrays"


def _shape_with(norm: str, numel: int) -> tuple[int, ...]:
    """The large shape of ``norm`` holding about ``numel`` elements (equal bytes across norms)."""
    if norm in model.ROW_NORMS:
        return (max(1, numel // model.ROW), model.ROW)
    c, h, w = model.CHANNEL_SHAPE
    return (max(2, numel // (c * h * w)), c, h, w)


def _result(row, api, t, nbytes, roof_gbps) -> dict[str, Any]:
    med = t.median_s
    out = {**row, "api": api, "median_s": med, "iqr_s": t.iqr_s, "first_s": t.first_s, "bytes": nbytes}
    if row["size"] == "small":
        out.update(latency_us=med * 1e6, gbps=None, fraction_of_roof=None)
    else:
        gbps = nbytes / med / 1e9 if med > 0 else float("inf")
        out.update(latency_us=None, gbps=gbps, fraction_of_roof=gbps / roof_gbps if roof_gbps else None)
    return out


def findings(results) -> list[dict[str, Any]]:
    """Implementations far below the best comparable one (same framework, dtype, pass, mode, size)."""
    out = []
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        if r.get("fraction_of_roof") is None:
            continue
        groups.setdefault((r["framework"], r["dtype"], r["pass"], r["mode"], r["size"]), []).append(r)
    for rows in groups.values():
        best = max(rows, key=lambda r: r["fraction_of_roof"])
        for r in rows:
            if r is not best and r["fraction_of_roof"] < FINDING_RATIO * best["fraction_of_roof"]:
                out.append(
                    {
                        "framework": r["framework"],
                        "what": f"{r['api']} ({r['norm']}, {r['layout']}, {r['dtype']}, {r['pass']})",
                        "fraction_of_roof": r["fraction_of_roof"],
                        "best": f"{best['api']} ({best['norm']}, {best['layout']})",
                        "best_fraction_of_roof": best["fraction_of_roof"],
                        "statement": (
                            f"{r['api']} on {r['layout']} {r['norm']} reaches {100 * r['fraction_of_roof']:.1f}% of the copy roof "
                            f"({r['gbps']:.2f} GB/s), under a third of {best['api']} on {best['layout']} {best['norm']} "
                            f"({100 * best['fraction_of_roof']:.1f}%, {best['gbps']:.2f} GB/s) on equal bytes"
                        ),
                    }
                )
    return out


def report_rows(doc) -> list[dict[str, Any]]:
    """Flat rows for the HTML report's benchmark section."""
    return [
        {
            "framework": r["framework"],
            "api": r["api"],
            "dtype": r["dtype"],
            "layout": r["layout"],
            "mode": r["mode"],
            "pass": r["pass"],
            "shape": "×".join(map(str, r["shape"])),
            "median": f"{r['median_s'] * 1e3:.3g} ms",
            "GB/s": "" if r["gbps"] is None else f"{r['gbps']:.2f}",
            "of roof": "" if r["fraction_of_roof"] is None else f"{100 * r['fraction_of_roof']:.1f}%",
        }
        for r in doc["results"]
    ]


def report_section(doc) -> dict[str, list[dict[str, Any]]]:
    """The audit report's benchmark section for a bench document: the machine and roof, the
    results (:func:`report_rows`) and the performance findings, as tables."""
    m, rf = doc["machine"], doc["roof"]
    return {
        "machine and roof": [
            {
                "machine": roof.describe(m),
                "device": rf.get("device", ""),
                "roof GB/s": f"{rf['gbps']:.2f}",
                "roof measured with": rf.get("api", ""),
                "started": doc.get("started", ""),
            }
        ],
        "results": report_rows(doc),
        "performance findings": [{"statement": f["statement"]} for f in doc.get("findings", [])]
        or [{"statement": "none: every implementation is within 3x of the best comparable one"}],
    }


def load(path) -> dict[str, Any]:
    """A saved ``normcheck bench --json`` document; ValueError (one line) if it is not one."""
    from normcheck.documents import load_document

    doc = load_document(path)
    if doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a benchmark document (schema {doc.get('schema')!r}, expected {SCHEMA!r})")
    return doc


#: A median whose interquartile range exceeds this fraction of it is not to be trusted.
NOISY_SPREAD = 0.25


def noise_warnings(doc) -> list[str]:
    """Lines warning that the figures are not to be trusted: a result's spread (IQR / median) over
    :data:`NOISY_SPREAD`, or a machine already loaded (1-minute load over half its cores) at the start."""
    out = []
    noisy = [
        r for r in doc["results"] if r.get("iqr_s") and r["median_s"] and r["iqr_s"] / r["median_s"] > NOISY_SPREAD
    ]
    if noisy:
        out.append(
            f"warning: {len(noisy)} of {len(doc['results'])} medians vary by more than "
            f"{100 * NOISY_SPREAD:.0f}% (IQR/median); rerun on a quiet machine before trusting them"
        )
    m = doc.get("machine", {})
    load, cores = m.get("load_1min"), m.get("cores") or 1
    if load is not None and load > 0.5 * cores:
        out.append(f"warning: the machine was loaded at the start (1-minute load {load:g} on {cores} cores)")
    return ["", *out] if out else []


def table(doc) -> str:
    m, rf = doc["machine"], doc["roof"]
    lines = [
        f"machine: {roof.describe(m)}",
        f"roof: {rf['gbps']:.2f} GB/s ({rf['api']}, {rf.get('array_bytes', 0) / 2**20:.0f} MiB copies)",
        "",
        f"{'framework':<11} {'api':<42} {'dtype':<9} {'layout':<15} {'mode':<8} {'pass':<17} {'shape':<18} {'median':>10} {'± IQR':>9} {'GB/s':>7} {'roof':>6}",
    ]
    for r in doc["results"]:
        shape = "×".join(map(str, r["shape"]))
        med = f"{r['median_s'] * 1e3:.3g} ms"
        spread = f"{100 * r['iqr_s'] / r['median_s']:.0f}%" if r.get("iqr_s") is not None and r["median_s"] else ""
        gbps = "" if r["gbps"] is None else f"{r['gbps']:.2f}"
        frac = "" if r["fraction_of_roof"] is None else f"{100 * r['fraction_of_roof']:.0f}%"
        lines.append(
            f"{r['framework']:<11} {r['api'][:42]:<42} {r['dtype']:<9} {r['layout']:<15} {r['mode']:<8} {r['pass']:<17} {shape:<18} {med:>10} {spread:>9} {gbps:>7} {frac:>6}"
        )
    lines += noise_warnings(doc)
    if doc["findings"]:
        lines += ["", "performance findings:"] + [f"- {f['statement']}" for f in doc["findings"]]
    return "\n".join(lines)
