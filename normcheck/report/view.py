"""Turn a result document (schema ``normcheck.audit/1``) into the plain values the template shows.

Everything here is pure Python over the JSON document: no Jinja2, no matplotlib. Strings from the
document are passed through as they are; the template escapes them (autoescape on), so nothing
here may build markup.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from normcheck.adapters import FRAMEWORKS
from normcheck.report.formatting import fmt_seconds, fmt_units
from normcheck.report.formatting import num as _num
from normcheck.report.formatting import order as _order
from normcheck.report.formatting import slug as _slug
from normcheck.report.formatting import text as _text

__all__ = ["VERDICTS", "build", "equivalence_view", "fmt_units", "generic_tables"]

VERDICTS = ("pass", "finding", "fail", "error", "skip")
SEVERITY = {"skip": 0, "pass": 1, "finding": 2, "error": 3, "fail": 4}
LABELS = {
    "pass": "pass",
    "finding": "registered finding",
    "fail": "new deviation",
    "error": "error",
    "skip": "skipped",
}
GLYPHS = {"pass": "✓", "finding": "F", "fail": "✗", "error": "E", "skip": "·"}
NORM_ORDER = ("batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm")
FRAMEWORK_ORDER = (*FRAMEWORKS, "user")  # a user's target last
OPEN_CARDS = 12  # with more deviations than this the cards start collapsed (their summary lines are the list)
SMALL_VALUES = 64  # counterexample arrays up to this many elements are shown in full
_ARRAYS = ("input", "weight", "bias", "running_mean", "running_var")


# --- records ----------------------------------------------------------------------------------------


def _verdict(r: Mapping[str, Any]) -> str:
    v = str(r.get("verdict") or "error")
    return v if v in SEVERITY else "error"


def _worst_observed(records: Sequence[dict[str, Any]]) -> tuple[float | None, dict[str, Any] | None, bool]:
    """(largest observed among checks that ran, its record, any NaN observed among deviations)."""
    best: float | None = None
    rec = None
    nan = False
    for r in records:
        if r["verdict"] in ("skip", "error"):
            continue
        x = _num(r["raw"].get("observed"))
        if x is None:
            nan = nan or r["verdict"] in ("fail", "finding")
            continue
        if best is None or x > best:
            best, rec = x, r
    return best, rec, nan


def _array_view(name: str, a: Any) -> dict[str, Any] | None:
    if not isinstance(a, Mapping):
        return None
    shape = a.get("shape")
    shape_l = list(shape) if isinstance(shape, list | tuple) else []
    out: dict[str, Any] = {
        "name": "x" if name == "input" else name,
        "shape": "[" + ", ".join(_text(s) for s in shape_l) + "]",
        "dtype": _text(a.get("dtype")),
        "data": None,
        "note": "",
    }
    vals = a.get("values")
    if isinstance(vals, list):
        if len(vals) <= SMALL_VALUES:
            out["data"] = _format_values(vals, shape_l)
        else:
            finite = [v for v in (_num(x) for x in vals) if v is not None]
            if finite:
                out["note"] = (
                    f"{len(vals)} values (full in the repro): min {fmt_units(min(finite))}, "
                    f"max {fmt_units(max(finite))}, mean {fmt_units(sum(finite) / len(finite))}"
                )
            else:
                out["note"] = f"{len(vals)} values (full in the repro)"
    elif isinstance(a.get("summary"), Mapping):
        s = a["summary"]
        out["note"] = "not saved (too large): " + ", ".join(f"{k} {fmt_units(v)}" for k, v in s.items())
    return out


def _format_values(vals: list[Any], shape: list[Any]) -> str:
    try:
        import numpy as np

        arr = np.asarray([_num(v) if _num(v) is not None else math.nan for v in vals], dtype=np.float64)
        if shape and all(isinstance(s, int) for s in shape) and math.prod(shape) == arr.size:
            arr = arr.reshape(shape)
        return np.array2string(arr, precision=8, separator=", ", max_line_width=100, threshold=SMALL_VALUES + 1)
    except Exception:
        return "[" + ", ".join(_text(v) for v in vals) + "]"


def _case_view(ce: Any) -> dict[str, Any] | None:
    if not isinstance(ce, Mapping):
        return None
    args = ce.get("args") if isinstance(ce.get("args"), Mapping) else {}
    arrays = [v for v in (_array_view(k, ce.get(k)) for k in _ARRAYS) if v is not None]
    extra = {k: v for k, v in ce.items() if k not in (*_ARRAYS, "args", "norm", "regime") and v is not None}
    inp = ce.get("input") if isinstance(ce.get("input"), Mapping) else {}
    return {
        "norm": _text(ce.get("norm")),
        "regime": _text(ce.get("regime")),
        "shape": _array_view("input", inp)["shape"] if inp else "",
        "dtype": _text(inp.get("dtype")) if inp else "",
        "args": [(str(k), _text(v)) for k, v in args.items()],
        "arrays": arrays,
        "extra": [(str(k), _text(v)) for k, v in extra.items()],
    }


def _record_view(i: int, raw: Mapping[str, Any], findings: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    v = _verdict(raw)
    fid = raw.get("finding")
    finding = findings.get(str(fid)) if fid is not None else None
    impl = _text(raw.get("impl"))
    fields = ("impl", "framework", "norm", "form", "layout", "mode", "api", "dtype", "property", "message")
    text = " ".join(_text(raw.get(k)) for k in fields)
    text += f" {v} {LABELS[v]} {_text(fid)} {_text(raw.get('version'))} {_text(raw.get('diagnosis'))}"
    observed, allowed = raw.get("observed"), raw.get("allowed")
    ran = v not in ("skip", "error")
    return {
        "i": i,
        "raw": raw,
        "id": f"r{i}",
        "verdict": v,
        "label": LABELS[v],
        "glyph": GLYPHS[v],
        "impl": impl,
        "framework": _text(raw.get("framework")) or impl.split("/")[0],
        "version": _text(raw.get("version")),
        "norm": _text(raw.get("norm")),
        "form": _text(raw.get("form")),
        "layout": _text(raw.get("layout")),
        "mode": _text(raw.get("mode")),
        "api": _text(raw.get("api")),
        "dtype": _text(raw.get("dtype")),
        "property": _text(raw.get("property")),
        "observed": fmt_units(observed) if ran else "—",
        "allowed": fmt_units(allowed) if ran else "—",
        "over": ran and _exceeds(observed, allowed),
        "examples": _text(raw.get("examples")),
        "seconds": fmt_seconds(raw.get("seconds")),
        "message": _text(raw.get("message")),
        "finding": _text(fid) if fid is not None else "",
        "finding_entry": _registry_entry(finding) if finding else None,
        "case": _case_view(raw.get("counterexample")),
        "configs": _configs_view(raw.get("configs")),
        "explained": [(str(k), _text(v)) for k, v in (raw.get("explained") or {}).items()],
        "unexplained_worst": fmt_units(raw.get("unexplained_worst")) if raw.get("explained") else "",
        "repro": _text(raw.get("repro")) if raw.get("repro") else "",
        "diagnosis": _text(raw.get("diagnosis")) if raw.get("diagnosis") else "",
        "search": text.lower(),
        "issue": v in ("fail", "error", "finding"),
    }


def _configs_view(rows: Any) -> list[dict[str, str]]:
    """A record's (or a group's) configuration breakdown: per configuration drawn, its examples, worst
    error and deviations ("defaults": every constructor option at its default)."""
    if not isinstance(rows, Mapping):
        return []
    return [
        {
            "config": str(label),
            "examples": _text(row.get("examples")),
            "worst": fmt_units(row.get("worst")),
            "deviations": _text(row.get("deviations")),
        }
        for label, row in rows.items()
        if isinstance(row, Mapping)
    ]


def _merged_configs(recs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The configuration breakdowns of several records summed per configuration (worst: the largest)."""
    out: dict[str, dict[str, Any]] = {}
    for r in recs:
        for label, row in (r["raw"].get("configs") or {}).items():
            acc = out.setdefault(label, {"examples": 0, "worst": 0.0, "deviations": 0})
            acc["examples"] += int(row.get("examples") or 0)
            acc["deviations"] += int(row.get("deviations") or 0)
            w = _num(row.get("worst"))
            acc["worst"] = max(acc["worst"], w) if w is not None else acc["worst"]
    return out


def _by_finding(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The records grouped by the findings they met: per finding, the records, examples it explained,
    implementations and properties, and its record with the smallest counterexample (a link)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        raw = r["raw"]
        met = dict(raw.get("explained") or {})
        if not met and raw.get("finding"):
            met = {str(raw["finding"]): None}
        for fid, n in met.items():
            g = out.setdefault(
                fid, {"id": fid, "records": 0, "examples": 0, "impls": set(), "props": set(), "first": r}
            )
            g["records"] += 1
            g["examples"] += int(n or 0)
            g["impls"].add(r["impl"])
            g["props"].add(r["property"])
    return [
        {**g, "impls": ", ".join(sorted(g["impls"])), "props": ", ".join(sorted(g["props"])), "first": g["first"]["id"]}
        for g in sorted(out.values(), key=lambda g: -g["records"])
    ]


def _registry_entry(f: Mapping[str, Any]) -> dict[str, str]:
    return {k: _text(f.get(k)) for k in ("id", "package", "versions", "impl", "property", "explanation")}


def _exceeds(observed: Any, allowed: Any) -> bool:
    o, a = _num(observed), _num(allowed)
    if o is None:
        return observed is None and allowed is not None
    return a is not None and o > a


# --- generic tables (conventions, bench) -------------------------------------------------------------


def _cell(v: Any) -> dict[str, Any]:
    if isinstance(v, bool) or v is None:
        return {"text": "—" if v is None else str(v).lower(), "num": False, "code": False}
    if isinstance(v, int):
        return {"text": str(v), "num": True, "code": False}
    if isinstance(v, float):
        return {"text": f"{v:.4g}" if math.isfinite(v) else str(v), "num": True, "code": False}
    if isinstance(v, str):
        return {"text": v, "num": False, "code": False}
    return {"text": _text(v), "num": False, "code": True}


#: Columns of names (a layer, a framework, an implementation id): never wrapped, so a table with
#: long text beside them cannot squeeze them to a few characters.
NAME_COLUMNS = frozenset(
    {"api", "layer", "framework", "impl", "implementation", "norm", "name", "key", "form", "dtype"}
)
#: Text columns with a cell longer than this get a minimum width (they wrap, but not to a sliver).
WIDE_TEXT = 40


def _column_class(name: str, cells: list[dict[str, Any]]) -> str:
    """``id`` (no wrapping: names, one-word identifiers), ``wide`` (long text, wrapped at spaces
    with a minimum width) or ``""`` (short text and numbers: wrapped only at spaces)."""
    texts = [c["text"] for c in cells if not c["num"] and not c["code"]]
    if name in NAME_COLUMNS or (
        texts
        and len(texts) == len(cells)
        and all(len(t) <= WIDE_TEXT and not any(ch.isspace() for ch in t) for t in texts)
    ):
        return "id"
    if any(len(t) > WIDE_TEXT for t in texts):
        return "wide"
    return ""


def _table(title: str, rows: Sequence[Any]) -> dict[str, Any]:
    columns: list[str] = []
    for r in rows:
        if isinstance(r, Mapping):
            columns += [str(k) for k in r if str(k) not in columns]
    if not columns:
        body = [[_cell(r)] for r in rows]
        return {
            "title": title,
            "columns": ["value"],
            "classes": [_column_class("value", [b[0] for b in body])],
            "rows": body,
        }
    body = []
    for r in rows:
        if isinstance(r, Mapping):
            m = {str(k): v for k, v in r.items()}
            body.append([_cell(m.get(c)) for c in columns])
        else:
            body.append([_cell(r)] + [_cell(None)] * (len(columns) - 1))
    classes = [_column_class(c, [row[i] for row in body]) for i, c in enumerate(columns)]
    return {"title": title, "columns": columns, "classes": classes, "rows": body}


def generic_tables(obj: Any, title: str = "") -> list[dict[str, Any]]:
    """Tables for an arbitrary JSON value.

    A list of dicts is one table (columns: the union of keys, in order of first appearance); a dict
    whose values are lists is one table per key; a dict of dicts is one table with a ``name`` column;
    a dict of scalars is a two-column key/value table. Anything nested deeper is shown as JSON text.
    """
    if isinstance(obj, list | tuple):
        return [_table(title, list(obj))]
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, list | tuple) for v in obj.values()):
            out = []
            for k, v in obj.items():
                out += generic_tables(v, f"{title} · {k}" if title else str(k))
            return out
        if obj and all(isinstance(v, Mapping) for v in obj.values()):
            return [_table(title, [{"name": k, **v} for k, v in obj.items()])]
        return [_table(title, [{"key": k, "value": v} for k, v in obj.items()])]
    return [_table(title, [obj])]


def _comparison(doc: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A merged comparison of runs (:func:`normcheck.audit.merge`): the runs, the checks whose
    verdict differs between them, and the versions each finding was observed in."""
    runs = doc.get("run", {}).get("runs") or []
    names = [f"run {k + 1}" for k in range(len(runs))]
    differ = [
        {"check": key, **{n: (c or "—") for n, c in zip(names, cells, strict=False)}}
        for key, cells in doc["compare"].items()
        if len({str(c) for c in cells if c is not None}) > 1  # a run that did not run a check is no difference
    ]
    seen = [
        {"finding": fid, "observed in": "; ".join(f"{fw} {', '.join(v)}" for fw, v in fws.items())}
        for fid, fws in (doc.get("finding_versions") or {}).items()
    ]
    return {
        "runs": [{"run": n, "what": r.get("label", "")} for n, r in zip(names, runs, strict=False)],
        "checks that differ": differ or [{"check": "none: every check has the same verdict in every run"}],
        "findings by version": seen or [{"finding": "none observed"}],
    }


# --- the document -------------------------------------------------------------------------------------


def _environment(run: Mapping[str, Any], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    env = run.get("environment") if isinstance(run.get("environment"), Mapping) else {}
    rows = []
    for key, label in (
        ("normcheck", "normcheck"),
        ("python", "Python"),
        ("platform", "OS / platform"),
        ("machine", "machine"),
        ("processor", "CPU"),
        ("cpus", "CPUs"),
    ):
        if env.get(key) not in (None, ""):
            rows.append((label, _text(env.get(key))))
    known = {"normcheck", "python", "platform", "machine", "processor", "cpus", "frameworks"}
    rows += [(str(k), _text(v)) for k, v in env.items() if k not in known]
    fws: dict[str, str] = {}
    raw_fws = env.get("frameworks")
    if isinstance(raw_fws, Mapping):
        for name, info in raw_fws.items():
            fws[str(name)] = _text(info.get("version") if isinstance(info, Mapping) else info)
    for r in records:  # a framework with records but missing from the environment
        if r["framework"] and r["framework"] not in fws and r["version"]:
            fws[r["framework"]] = r["version"]
    ordered = sorted(fws.items(), key=lambda kv: _order(kv[0], FRAMEWORK_ORDER))
    return {"rows": rows, "frameworks": ordered}


def _group_view(key: tuple[str, str, str], recs: list[dict[str, Any]], n: int) -> dict[str, Any]:
    norm, fw, form = key
    counts = {v: 0 for v in VERDICTS}
    for r in recs:
        counts[r["verdict"]] += 1
    worst = max((r["verdict"] for r in recs), key=SEVERITY.__getitem__)
    wo, wrec, nan = _worst_observed(recs)
    by_dtype: dict[str, str] = {}
    for r in recs:
        d = r["dtype"]
        if d not in by_dtype or SEVERITY[r["verdict"]] > SEVERITY[by_dtype[d]]:
            by_dtype[d] = r["verdict"]
    title = f"{norm} · {fw}/{form}: " + ", ".join(f"{c} {LABELS[v]}" for v, c in counts.items() if c)
    if wo is not None:
        title += f"; worst observed {fmt_units(wo)} u·s ({wrec['property']}, {wrec['dtype']})"
    title += "; by dtype: " + ", ".join(f"{d} {LABELS[v]}" for d, v in by_dtype.items())
    configs = _configs_view(_merged_configs(recs))
    if configs:
        title += "; by configuration: " + ", ".join(
            f"{c['config']} {c['deviations']} of {c['examples']} deviating (worst {c['worst']} u·s)" for c in configs
        )
    recs = sorted(recs, key=lambda r: (-SEVERITY[r["verdict"]], r["property"], r["dtype"], r["impl"]))
    return {
        "id": f"g-{_slug(norm, fw, form)}-{n}",
        "norm": norm,
        "framework": fw,
        "form": form,
        "records": recs,
        "counts": counts,
        "worst": worst,
        "worst_label": LABELS[worst],
        "worst_glyph": GLYPHS[worst],
        "worst_observed": "nan" if nan and wo is None else (fmt_units(wo) if wo is not None else "—"),
        "title": title,
        "issues": sum(counts[v] for v in ("fail", "error", "finding")),
        "configs": configs,
    }


def _incomplete(doc: Mapping[str, Any]) -> str:
    """The banner of an interrupted audit's document (``incomplete``), or ""."""
    inc = doc.get("incomplete")
    if not isinstance(inc, Mapping):
        return ""
    why = _text(inc.get("signal") or inc.get("reason"))
    text = f"interrupted after {_text(inc.get('done'))} of {_text(inc.get('planned'))} checks" + (
        f" ({why})" if why else ""
    )
    return text + ": this report shows the checks that finished; normcheck audit --resume runs the rest"


def build(doc: Mapping[str, Any], *, figures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The template context for ``doc``."""
    run = doc.get("run") if isinstance(doc.get("run"), Mapping) else {}
    raw_findings = doc.get("findings") if isinstance(doc.get("findings"), list) else []
    registry = {str(f.get("id")): f for f in raw_findings if isinstance(f, Mapping)}
    raw_records = [r for r in (doc.get("records") or []) if isinstance(r, Mapping)]
    records = [_record_view(i, r, registry) for i, r in enumerate(raw_records)]

    counts = {v: 0 for v in VERDICTS}
    for r in records:
        counts[r["verdict"]] += 1
    summary = doc.get("summary") if isinstance(doc.get("summary"), Mapping) else {}
    for v in VERDICTS:  # the document's own counts win (records may have been trimmed)
        if isinstance(summary.get(v), int) and not isinstance(summary.get(v), bool):
            counts[v] = summary[v]
    total = sum(counts.values())

    # the matrix: rows norm, columns framework × form
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        grouped.setdefault((r["norm"], r["framework"], r["form"]), []).append(r)
    norms = sorted({k[0] for k in grouped}, key=lambda n: _order(n, NORM_ORDER))
    fw_forms: dict[str, list[str]] = {}
    for _, fw, form in grouped:
        fw_forms.setdefault(fw, [])
        if form not in fw_forms[fw]:
            fw_forms[fw].append(form)
    frameworks = sorted(fw_forms, key=lambda f: _order(f, FRAMEWORK_ORDER))
    columns = [(fw, form) for fw in frameworks for form in fw_forms[fw]]
    groups = {}
    for n, key in enumerate(sorted(grouped, key=lambda k: (_order(k[0], NORM_ORDER), _order(k[1], FRAMEWORK_ORDER)))):
        groups[key] = _group_view(key, grouped[key], n)
        for r in grouped[key]:
            r["group"] = groups[key]["id"]
    versions = {r["framework"]: r["version"] for r in records if r["version"]}
    matrix = {
        "frameworks": [{"name": fw, "forms": fw_forms[fw], "version": versions.get(fw, "")} for fw in frameworks],
        "columns": columns,
        "rows": [{"norm": nm, "cells": [groups.get((nm, fw, form)) for fw, form in columns]} for nm in norms],
    }

    issues = sorted(
        (r for r in records if r["issue"]),
        key=lambda r: (
            -SEVERITY[r["verdict"]],
            _order(r["norm"], NORM_ORDER),
            _order(r["framework"], FRAMEWORK_ORDER),
            r["i"],
        ),
    )
    new = counts["fail"] + counts["error"]
    extras = []
    if isinstance(doc.get("compare"), Mapping):
        extras.append({"id": "compare", "title": "Runs compared", "tables": generic_tables(_comparison(doc))})
    for key, title in (("conventions", "Conventions"), ("bench", "Benchmarks")):
        if key in doc and doc[key] is not None:
            extras.append({"id": key, "title": title, "tables": generic_tables(doc[key])})
    incomplete = _incomplete(doc)
    return {
        "incomplete": incomplete,
        "schema": _text(doc.get("schema")),
        "run": {
            "command": _text(run.get("command")),
            "profile": _text(run.get("profile")) or "—",
            "seed": _text(run.get("seed")) if run.get("seed") is not None else "random",
            "started": _text(run.get("started")) or "—",
            "seconds": fmt_seconds(run.get("seconds")),
        },
        "environment": _environment(run, records),
        "counts": counts,
        "total": total,
        "labels": LABELS,
        "tiles": {
            v: (t if counts[v] == 1 or v in ("pass", "skip") else t + "s")
            for v, t in (
                ("pass", "passed"),
                ("finding", "registered finding"),
                ("fail", "new deviation"),
                ("error", "error"),
                ("skip", "skipped"),
            )
        },
        "glyphs": GLYPHS,
        "verdicts": VERDICTS,
        "status": "bad" if new else "good",
        "status_text": (
            f"{counts['fail']} new deviation{'s' * (counts['fail'] != 1)} and {counts['error']} "
            f"error{'s' * (counts['error'] != 1)}"
            + (" among the checks that finished" if incomplete else ": the audit exits 1")
            if new
            else "every check that finished passed or matches a registered finding"
            if incomplete
            else "every check passed or matches a registered finding: the audit exits 0"
        ),
        "matrix": matrix,
        "groups": list(groups.values()),
        "issues": issues,
        "open_cards": len(issues) <= OPEN_CARDS,
        "registry": [_registry_entry(f) for f in raw_findings if isinstance(f, Mapping)],
        "by_finding": _by_finding(records),
        "figures": figures or [],
        "records": records,
        "filter_frameworks": frameworks,
        "filter_norms": norms,
        "extras": extras,
        "equivalence": equivalence_view(doc),
        "pair_looks": [(cls, glyph, words) for cls, glyph, words in PAIR_LOOK.values()],
    }


# --- equivalence: implementations x implementations per norm --------------------------------------------

#: A pair's look: (css verdict class, glyph, words).
PAIR_LOOK = {
    "equivalent": ("pass", "≡", "equivalent"),
    "explained": ("finding", "F", "differ, explained by a registered finding"),
    "differ": ("fail", "≠", "differ, not explained by a registered finding"),
    "untested": ("skip", "·", "not comparable"),
}


def _pair_state(ps: Sequence[Mapping[str, Any]]) -> str:
    """One pair's state over its dtypes (a key of :data:`PAIR_LOOK`)."""
    bad = [p for p in ps if p.get("verdict") == "differ"]
    if bad:
        return "explained" if all(p.get("explained") for p in bad) else "differ"
    return "equivalent" if any(p.get("verdict") == "equivalent" for p in ps) else "untested"


def _values_text(v: Any) -> str:
    return _format_values(v, []) if isinstance(v, list) else ""


def _quantity_view(name: str, q: Mapping[str, Any]) -> dict[str, Any]:
    measured = q.get("observed") is not None
    return {
        "name": name + (f" ({q['part']})" if q.get("part") and q.get("part") != name else ""),
        "verdict": _text(q.get("verdict")),
        "difference": (
            "NaN/Inf pattern differs"
            if q.get("mismatch")
            else fmt_units(q.get("observed") if measured else q.get("bound"))
        )
        + ("" if measured or q.get("mismatch") else " (bound)"),
        "a_ref": fmt_units(q.get("a_vs_reference")) if q.get("a_vs_reference") is not None else "",
        "b_ref": fmt_units(q.get("b_vs_reference")) if q.get("b_vs_reference") is not None else "",
        "a_values": _values_text(q.get("a_values")),
        "b_values": _values_text(q.get("b_values")),
        "reference": _values_text(q.get("reference")),
        "findings": [str(f) for f in q.get("findings") or []],
        "note": _text(q.get("note") or q.get("alike") or ""),
        "case": _case_view(q.get("counterexample")) if q.get("verdict") != "equivalent" or measured else None,
    }


def equivalence_view(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per norm: its line, an implementations x implementations matrix (cells coloured by
    :data:`PAIR_LOOK`, linking to the pair's card) and a card per pair that differs at some dtype."""
    eq = doc.get("equivalence")
    norms = eq.get("norms") if isinstance(eq, Mapping) else None
    if not isinstance(norms, Mapping):
        return []
    out = []
    for norm in sorted(norms, key=lambda n: _order(n, NORM_ORDER)):
        e = norms[norm]
        if not isinstance(e, Mapping) or not isinstance(e.get("dtypes"), Mapping):
            continue
        by_pair: dict[tuple[str, str], list[tuple[str, Mapping[str, Any]]]] = {}
        impls: list[str] = []
        for dt, d in e["dtypes"].items():
            for i in d.get("implementations") or []:
                if i not in impls:
                    impls.append(str(i))
            for p in d.get("pairs") or []:
                by_pair.setdefault((str(p.get("a")), str(p.get("b"))), []).append((str(dt), p))
        impls.sort(key=lambda i: (_order(i.split("/")[0], FRAMEWORK_ORDER), i))
        cards, looks = [], {}
        for k, ((a, b), ps) in enumerate(by_pair.items()):
            state = _pair_state([p for _, p in ps])
            worst = [_num(p.get("worst")) for _, p in ps]
            worst = [w for w in worst if w is not None]
            pid = f"eq-{_slug(norm)}-{k}"
            looks[(a, b)] = looks[(b, a)] = (state, fmt_units(max(worst)) if worst else "", pid)
            if state in ("explained", "differ"):
                cards.append(
                    {
                        "id": pid,
                        "a": a,
                        "b": b,
                        "cls": PAIR_LOOK[state][0],
                        "words": PAIR_LOOK[state][2],
                        "dtypes": [
                            {
                                "dtype": dt,
                                "verdict": _text(p.get("verdict")),
                                "findings": [str(f) for f in p.get("findings") or []],
                                "quantities": [
                                    _quantity_view(str(k), q)
                                    for k, q in (p.get("quantities") or {}).items()
                                    if isinstance(q, Mapping)
                                ],
                            }
                            for dt, p in ps
                        ],
                    }
                )
        rows = []
        for a in impls:
            cells = []
            for b in impls:
                look = looks.get((a, b)) if a != b else None
                if look is None:
                    cells.append(None)
                    continue
                state, worst, pid = look
                cls, glyph, words = PAIR_LOOK[state]
                card = state in ("explained", "differ")
                cells.append({"cls": cls, "glyph": glyph, "worst": worst, "href": pid if card else "",
                              "title": f"{a} vs {b}: {words}" + (f", worst {worst} u·s" if worst else "")})  # fmt: skip
            rows.append({"impl": a, "cells": cells})
        n_pairs = e.get("pairs", len(by_pair))
        line = f"{e.get('implementations', len(impls))} implementations, {n_pairs} pair{'s' * (n_pairs != 1)}: "
        line += f"{e.get('equivalent', 0)} equivalent, {e.get('differ', 0)} differ"
        if e.get("differ"):
            n = len(e.get("findings") or [])
            line += (
                f", all explained by {n} finding{'s' * (n != 1)}"
                if not e.get("unexplained")
                else f", {e.get('unexplained')} not explained by a registered finding"
            )
        out.append({"norm": str(norm), "line": line, "impls": impls, "rows": rows, "cards": cards})
    return out
