"""Saved normcheck result documents (``--json`` files, schema ``normcheck.*``), read back.

Framework-free and dependency-free, so that :mod:`normcheck.report` and :mod:`normcheck.bench.run`
both read documents through it without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["load_document"]


def load_document(json_path: str | Path) -> dict[str, Any]:
    """Load a saved result document; ValueError (one line) if it is not a normcheck document."""
    p = Path(json_path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"{p}: cannot read ({e.strerror or type(e).__name__})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: not a normcheck result document (top level is not an object)")
    schema = doc.get("schema")
    if not isinstance(schema, str) or not schema.startswith("normcheck."):
        shown = repr(schema) if len(repr(schema)) <= 60 else repr(schema)[:57] + "..."
        raise ValueError(f"{p}: not a normcheck result document (schema {shown}, expected 'normcheck.*')")
    return doc
