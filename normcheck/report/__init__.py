"""A single self-contained HTML report from an audit result document (schema ``normcheck.audit/1``).

:func:`render_html` returns the page as a string, :func:`write_html` writes it, and
:func:`main_report` renders a saved ``--json`` file (``normcheck report results.json --html PATH``), read
with :func:`normcheck.documents.load_document` (also importable from here).
The page has inline CSS and JavaScript only, figures as ``data:`` URIs, and a Content-Security-Policy
that forbids every fetch, so it works offline and can be mailed or archived as one file. Every string
from the document is escaped (Jinja2 autoescape); none is ever interpreted as markup or script.

Needs the ``report`` extra (Jinja2 and matplotlib): ``pip install 'normcheck[report]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from normcheck.documents import load_document

__all__ = ["INSTALL_HINT", "load_audit", "main_report", "render_html", "write_html"]

INSTALL_HINT = "pip install 'normcheck[report]'"
TEMPLATE = "template.html.j2"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _require() -> None:
    missing = []
    for mod in ("jinja2", "matplotlib"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ImportError(f"the HTML report needs {' and '.join(missing)}: {INSTALL_HINT}")


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def render_html(doc: Mapping[str, Any]) -> str:
    """The report for result document ``doc`` as one HTML string (no external resources)."""
    _require()
    if not isinstance(doc, Mapping):
        raise ValueError("a result document must be a JSON object")
    from normcheck.report import plots, view

    records = [r for r in (doc.get("records") or []) if isinstance(r, Mapping)]
    ctx = view.build(doc, figures=plots.error_figures(records))
    ctx["csp"] = CSP
    ctx["floor"] = view.fmt_units(plots.FLOOR)
    ctx["ceil"] = view.fmt_units(plots.CEIL)
    return _environment().get_template(TEMPLATE).render(**ctx)


def write_html(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Render ``doc`` and write it to ``path`` (parent directories are created); returns the path."""
    html = render_html(doc)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(html, encoding="utf-8")
    return p


def load_audit(json_path: str | Path) -> dict[str, Any]:
    """A saved audit (or check) result document; ValueError (one line) for anything else."""
    doc = load_document(json_path)
    if not str(doc.get("schema", "")).startswith("normcheck.audit/"):
        raise ValueError(
            f"{json_path}: a {doc.get('schema')} document, not an audit or check result "
            "(attach a bench document with --bench)"
        )
    return doc


def main_report(json_path: str | Path, html_path: str | Path, *, bench: str | Path | None = None) -> Path:
    """``normcheck report results.json --html PATH [--bench BENCH.json]``: render a saved result
    document to HTML, with a saved benchmark document as its benchmark section."""
    doc = load_audit(json_path)
    if bench is not None:
        from normcheck.bench.run import load, report_section

        doc["bench"] = report_section(load(bench))
    return write_html(doc, html_path)
