"""The audit's journal: every record on disk as soon as its check completes, so that an interrupted
audit loses nothing and ``normcheck audit --resume`` runs only what is missing (docs/schema.md).

A journal is JSON lines beside the ``--json`` document (``RESULTS.json.journal``): a header line
(``{"journal": "normcheck.audit-journal/1", "profile", "seed", "selection", "planned", ...}``), then
one line per finished check, ``{"position": P, "record": {...}}``, ``P`` its place in the serial
order of the uninterrupted run. A line cut short by a killed process is ignored when read back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["KIND", "SUFFIX", "Journal", "path_for", "read"]

KIND = "normcheck.audit-journal/1"
SUFFIX = ".journal"


def path_for(json_path: str | Path) -> Path:
    """The journal of the document written to ``json_path``."""
    return Path(str(json_path) + SUFFIX)


class Journal:
    """An open journal: the header is written at once, each record as it is appended (flushed)."""

    def __init__(self, path: str | Path, header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w", encoding="utf-8")  # open for the run's length
        self._write({"journal": KIND, **header})

    def append(self, position: int, row: dict[str, Any]) -> None:
        self._write({"position": position, "record": row})

    def _write(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, allow_nan=False) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def read(path: str | Path) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """A journal's header and its records by position; ValueError (one line) if it is not one."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(f"{p}: cannot read ({e.strerror or type(e).__name__})") from None
    try:
        header = json.loads(lines[0]) if lines else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or header.get("journal") != KIND:
        raise ValueError(f"{p}: not a normcheck audit journal")
    rows: dict[int, dict[str, Any]] = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the last line of a process killed while writing it
            continue
        if isinstance(entry, dict) and isinstance(entry.get("position"), int) and isinstance(entry.get("record"), dict):
            rows[entry["position"]] = entry["record"]
    return header, rows
