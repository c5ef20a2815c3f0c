"""The HTML report: content, escaping of untrusted strings, self-containment, and main_report."""

from __future__ import annotations

import base64
import json
import random
import re
import sys

import pytest

pytest.importorskip("jinja2", reason="the report needs jinja2 (pip install 'normcheck[report]')")
pytest.importorskip("matplotlib", reason="the report needs matplotlib (pip install 'normcheck[report]')")

from normcheck.report import CSP, main_report, render_html, write_html
from normcheck.report.view import fmt_units, generic_tables

HOSTILE_SCRIPT = "<script>alert(1)</script>"
PWN_SCRIPT = '<script>window.__pwned = 1; document.title = "pwned"</script>'
PWN_IMG = '<img src=x onerror="window.__pwned = 2">'
PWN_EXTERNAL = '<script src="https://evil.example/x.js"></script><link rel=stylesheet href="http://evil.example/a.css">'
QUOTES = "it's \"quoted\" & 'single' `tick`"
CLOSE_PRE = "</pre></code></details></table>"
UNICODE = "héllo ✓ 日本"
TOKEN = "zebrafinch"  # appears in the messages of exactly TOKEN_ROWS records

FRAMEWORKS = {
    "numpy": ("2.4.6", ["reference", "float32"]),
    "torch": ("2.13.0+cpu", ["functional", "module"]),
    "jax": ("0.10.2", ["linen", "nnx"]),
    "tensorflow": ("2.21.0", ["keras"]),
}
NORMS = ["batch_norm", "layer_norm", "instance_norm", "group_norm", "rms_norm"]
PROPS = ["agreement", "statistics", "shift_invariance", "scale_equivariance", "contracts", "special_values"]
DTYPES = ["float32", "bfloat16"]
TOKEN_ROWS = 3


def _case(n=2):
    return {
        "norm": "layer_norm",
        "regime": "large_mean",
        "args": {"normalized_shape": [n], "eps": 1e-5, "note": HOSTILE_SCRIPT},
        "input": {"shape": [2, n], "dtype": "float32", "values": [0.125, -0.5, 1e4, 3.0][: 2 * n]},
        "weight": {"shape": [n], "dtype": "float32", "values": [1.0, 2.0][:n]},
        "bias": None,
        "running_mean": None,
        "running_var": None,
    }


def synthetic_document(n_records: int = 600, *, hostile: bool = True) -> dict:
    """A schema-conforming result document: passes, findings, new deviations, errors, skips."""
    rng = random.Random(1234)
    bad = lambda s: s if hostile else "plain text"  # noqa: E731
    combos = [
        (fw, form, norm, dt, prop)
        for fw, (_, forms) in FRAMEWORKS.items()
        for form in forms
        for norm in NORMS
        for dt in DTYPES
        for prop in PROPS
    ]
    records = []
    for k in range(n_records):
        fw, form, norm, dt, prop = combos[k % len(combos)]
        impl = f"{fw}/{norm}/{form}"
        samples = [round(10 ** rng.uniform(-4, 0.8), 4) for _ in range(rng.randint(3, 30))] + [0.0]
        rec = {
            "impl": impl,
            "framework": fw,
            "version": FRAMEWORKS[fw][0],
            "norm": norm,
            "form": form,
            "layout": "channels_first",
            "mode": "eager",
            "api": f"{fw}.{norm}",
            "dtype": dt,
            "property": prop,
            "verdict": "pass",
            "observed": max(samples),
            "allowed": 16.0,
            "examples": len(samples),
            "samples": samples,
            "message": "",
            "finding": None,
            "counterexample": None,
            "repro": None,
            "seconds": round(rng.uniform(0.01, 2), 3),
            "diagnosis": None,
        }
        records.append(rec)

    def deviate(i, verdict, **kw):
        if i >= len(records):
            return
        r = records[i]
        r.update(verdict=verdict, counterexample=_case(), repro=f"print({QUOTES!r})\n# {bad(CLOSE_PRE)}", **kw)
        r["samples"] = [*r["samples"], 512.0]
        r["observed"] = kw.get("observed", 512.0)

    # new deviations (fail), carrying every hostile string somewhere
    deviate(5, "fail", message=f"observed 512 u·s {bad(HOSTILE_SCRIPT)} {bad(PWN_SCRIPT)}", diagnosis=bad(PWN_IMG))
    deviate(17, "fail", message=f"{bad(QUOTES)} {bad(CLOSE_PRE)} {UNICODE}", observed="inf")
    deviate(29, "fail", message=f"{bad(PWN_EXTERNAL)} nan output", observed=None)
    if len(records) > 29:
        records[29]["samples"] = [0.5]
    # registered findings
    for i in (40, 41, 97):
        deviate(i, "finding", message="variance is unbiased", finding="flax-bn-unbiased")
    deviate(120, "finding", message="not in the registry", finding=bad("<b>unknown</b>"))
    # errors and skips
    for i in (60, 61)[: max(0, len(records) - 60)]:
        records[i].update(verdict="error", message=f"the check could not run: {bad(HOSTILE_SCRIPT)}", samples=[])
    for i in range(200, min(210, len(records))):
        records[i].update(verdict="skip", message="not applicable", samples=[], observed=0.0, allowed=0.0)
    for i in range(300, min(300 + TOKEN_ROWS, len(records))):
        records[i]["message"] = f"looked at {TOKEN} here"
    records[min(7, len(records) - 1)]["property"] = bad('identity:"odd"<name>')
    counts = {v: sum(r["verdict"] == v for r in records) for v in ("pass", "finding", "fail", "error", "skip")}
    return {
        "schema": "normcheck.audit/1",
        "run": {
            "command": f"normcheck audit {bad(HOSTILE_SCRIPT)}",
            "profile": "quick",
            "seed": 0,
            "started": "2026-11-25T05:56:14Z",
            "seconds": 83.4,
            "environment": {
                "normcheck": "0.1.0",
                "python": "3.11.7",
                "platform": "Linux-6.18-x86_64-with-glibc2.36",
                "machine": "x86_64",
                "processor": f"Xeon {bad(UNICODE)}",
                "cpus": 2,
                "frameworks": {fw: {"version": v} for fw, (v, _) in FRAMEWORKS.items()},
            },
        },
        "summary": counts,
        "findings": [
            {
                "id": "flax-bn-unbiased",
                "package": "flax",
                "versions": ">=0.8",
                "impl": "jax/batch_norm/*",
                "property": "agreement",
                "explanation": f"Flax stores the unbiased variance {bad(QUOTES)} {bad(HOSTILE_SCRIPT)}",
            }
        ],
        "records": records,
    }


@pytest.fixture(scope="module")
def doc():
    return synthetic_document()


@pytest.fixture(scope="module")
def html(doc):
    return render_html(doc)


def test_hostile_strings_are_escaped(html):
    assert HOSTILE_SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert PWN_SCRIPT not in html and "<script>window" not in html
    assert PWN_IMG not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=" in html
    assert '<script src="https://evil' not in html and '<link rel=stylesheet href="http' not in html
    assert "<b>unknown</b>" not in html and "&lt;b&gt;unknown&lt;/b&gt;" in html
    assert 'identity:"odd"<name>' not in html
    # the only script element is the report's own; every <pre>/<details> opened is closed by the template
    assert len(re.findall(r"<script\b", html, re.I)) == 1
    assert html.count("<pre") == html.count("</pre>")
    assert html.count("<details") == html.count("</details>")
    assert "&lt;/pre&gt;&lt;/code&gt;&lt;/details&gt;&lt;/table&gt;" in html
    assert "it&#39;s &#34;quoted&#34; &amp; &#39;single&#39;" in html


def test_unicode_verbatim(html):
    assert UNICODE in html
    assert '<meta charset="utf-8">' in html


def test_counts_and_summary(doc, html):
    s = doc["summary"]
    assert s["fail"] == 3 and s["finding"] == 4 and s["error"] == 2 and s["skip"] == 10
    for verdict, n in s.items():
        assert re.search(rf'id="count-{verdict}"><b>{n}</b>', html), verdict
    assert re.search(rf'id="count-total"><b>{len(doc["records"])}</b>', html)
    assert "3 new deviations and 2 errors: the audit exits 1" in html
    for fw, (version, _) in FRAMEWORKS.items():
        assert f'<th>{fw}</th><td class="num">{version}</td>' in html
    assert "3.11.7" in html and "quick" in html and "1 min 23 s" in html


def test_self_contained(html):
    low = html.lower()
    for bad in ('src="http', "src='http", 'href="http', "href='http", "url(http", "@import", 'src="//', 'href="//'):
        assert bad not in low, bad
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html
    assert "default-src 'none'" in CSP
    # every src/href is a data: URI or an in-page anchor
    for m in re.finditer(r'\b(?:src|href)="([^"]*)"', html):
        assert m.group(1).startswith(("data:", "#")), m.group(0)[:80]


def test_no_urls_at_all_without_urls_in_the_data():
    html = render_html(synthetic_document(120, hostile=False))
    assert "http:" not in html and "https:" not in html


def test_matrix_and_anchors(doc, html):
    assert '<table class="matrix">' in html
    cells = re.findall(r'<td class="cell v-(\w+)"', html)
    combos = {(r["norm"], r["framework"], r["form"]) for r in doc["records"]}
    assert len(cells) == len(combos)
    assert "fail" in cells and "pass" in cells and "error" in cells
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    for target in re.findall(r'href="#([^"]*)"', html):
        assert target in ids, target
    # record 5 (a fail) is batch_norm · numpy/reference: its cell is coloured fail
    row = html[html.index("<tr><th>batch_norm</th>") :]
    assert 'class="cell v-fail"' in row[: row.index("</tr>")]


def test_details_cards(doc, html):
    issues = [r for r in doc["records"] if r["verdict"] in ("fail", "error", "finding")]
    assert html.count('class="card fx') == len(issues)
    assert html.count('data-copy="repro-') == sum(1 for r in issues if r["repro"])
    assert "Flax stores the unbiased variance" in html  # registry explanation shown on the finding
    assert "Registered finding" in html and "(not in this document's registry)" in html
    assert "large_mean" in html and "normalized_shape" in html
    assert '<pre class="values">[[ 1.25e-01, -5.00e-01],\n [ 1.00e+04,  3.00e+00]]</pre>' in html  # small: shown
    assert "Diagnosis" in html
    assert ">inf<" in html and ">nan<" in html  # "inf" and null observed errors


def test_every_record_listed(doc, html):
    assert html.count('<tr class="fx"') == len(doc["records"])
    assert html.count(f"looked at {TOKEN} here") >= TOKEN_ROWS


def test_figures_are_matplotlib_data_uris(doc, html):
    uris = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == len({r["norm"] for r in doc["records"]})
    svg = base64.b64decode(uris[0]).decode()
    assert svg.startswith("<svg") and "matplotlib" in svg.lower()
    assert "<script" not in svg and 'href="http' not in svg.replace('xmlns:xlink="http', "")


def test_extras_rendered_only_when_present(doc):
    assert 'id="conventions"' not in render_html({**doc, "records": doc["records"][:20]})
    extra = {
        **doc,
        "records": doc["records"][:20],
        "conventions": [
            {"framework": "torch", "momentum": 0.1, "eps": 1e-5, "note": HOSTILE_SCRIPT},
            {"framework": "jax", "momentum": 0.99, "layout": {"axis": -1}},
        ],
        "bench": {
            "layer_norm": [{"impl": "torch/layer_norm/functional", "us": 12.5}],
            "rms_norm": [{"impl": "x", "us": 3}],
        },
    }
    html = render_html(extra)
    assert 'id="conventions"' in html and 'id="bench"' in html
    assert "<th>momentum</th>" in html and "<th>layout</th>" in html and '<td class="n">0.99</td>' in html
    assert "<caption>layer_norm</caption>" in html and "<caption>rms_norm</caption>" in html
    assert HOSTILE_SCRIPT not in html


def test_generic_tables_shapes():
    (t,) = generic_tables([{"a": 1, "b": "x"}, {"c": [1, 2]}])
    assert t["columns"] == ["a", "b", "c"] and len(t["rows"]) == 2
    (t,) = generic_tables({"k": 1, "j": None})
    assert t["columns"] == ["key", "value"]
    (t,) = generic_tables({"torch": {"eps": 1e-5}, "jax": {"eps": 1e-6}})
    assert t["columns"] == ["name", "eps"]


def test_fmt_units():
    assert fmt_units(0.0) == "0"
    assert fmt_units(0.60390) == "0.604"
    assert fmt_units(16.0) == "16"
    assert fmt_units(2272414.66) == "2.27e6"
    assert fmt_units(1.5e-5) == "1.5e-5"
    assert fmt_units("inf") == "inf" and fmt_units("-inf") == "-inf" and fmt_units(None) == "nan"


def test_minimal_and_empty_documents():
    html = render_html({"schema": "normcheck.audit/1", "records": []})
    assert "The document has no records." in html and "No samples to plot." in html
    html = render_html({"schema": "normcheck.audit/1", "run": {}, "summary": {}, "findings": [], "records": [{}]})
    assert "checks in all" in html


def test_main_report_from_saved_json(tmp_path, doc):
    src = tmp_path / "results.json"
    src.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    out = main_report(src, tmp_path / "deep" / "er" / "report.html")
    assert out.exists()
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and UNICODE in text
    assert re.search(rf'id="count-fail"><b>{doc["summary"]["fail"]}</b>', text)


def test_write_html_creates_parents(tmp_path, doc):
    p = write_html({**doc, "records": doc["records"][:10]}, tmp_path / "a" / "b" / "r.html")
    assert p.is_file() and p.stat().st_size > 1000


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"schema": "other.thing/1", "records": []}, "not a normcheck result document"),
        ({"records": []}, "not a normcheck result document"),
        ([1, 2], "top level is not an object"),
        ({"schema": 7}, "not a normcheck result document"),
    ],
)
def test_main_report_rejects_other_documents(tmp_path, payload, match):
    src = tmp_path / "x.json"
    src.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=match) as e:
        main_report(src, tmp_path / "x.html")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "x.html").exists()


def test_main_report_rejects_non_json(tmp_path):
    src = tmp_path / "x.json"
    src.write_text("<html>not json</html>")
    with pytest.raises(ValueError, match="not JSON"):
        main_report(src, tmp_path / "x.html")


def test_missing_dependency_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(ImportError, match=r"pip install 'normcheck\[report\]'"):
        render_html({"schema": "normcheck.audit/1", "records": []})


def test_untrusted_labels_in_figures():
    """Implementation and norm names reach matplotlib as plain text: no mathtext, escaped in the SVG."""
    doc = synthetic_document(60, hostile=False)
    for r in doc["records"][:12]:
        r["impl"] = r["impl"] + "/$\\frac{<script>$"
        r["norm"] = "weird_$norm<b>"
    html = render_html(doc)
    uris = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    svgs = [base64.b64decode(u).decode() for u in uris]
    assert any("&lt;script&gt;" in s for s in svgs)
    assert not any("<script" in s for s in svgs)
