"""The target's exceptions, and the one-line form of an exception the user reads."""

from __future__ import annotations


class TargetError(Exception):
    """The target cannot be loaded or used (one line, for the user; the CLI exits 2)."""


class TargetHung(Exception):
    """A call of the target did not return within the timeout (later calls are not made)."""


class BadOutput(Exception):
    """The target returned something that is not an array of its framework."""


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def unsupported(msg: str) -> Exception:
    from normcheck.adapters.base import Unsupported

    return Unsupported(msg)


class ConstructionError(Exception):
    """The target's constructor raised (the message names the call tried)."""
