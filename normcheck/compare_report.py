"""What :func:`normcheck.comparison.compare` found: each quantity on each case judged A against B
(:func:`difference`) and each side against its float64 reference (:class:`Pair`), tallied per dtype
and quantity (:class:`Tally`), and the report (:class:`CompareReport`) with its text and JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normcheck import error_model
from normcheck.case import Case

__all__ = ["CompareReport", "Measured", "Pair", "Tally", "difference"]


SMALL = 32  # arrays up to this many elements are printed in full


def difference(a, b, s_a, s_b, dtype) -> error_model.Comparison:
    """``a`` against ``b`` with both sides' bounds as the allowance: observed = max |a - b| /
    (u ((1 + u64/u)(s_a + s_b) + eta_min/u)), in u·s, equivalent where observed <= lambda (NaN must
    meet NaN, ±inf the same ±inf)."""
    s = np.asarray(s_a, np.float64) + np.asarray(s_b, np.float64)
    return error_model.compare(a, np.asarray(b, np.float64), s, dtype)


@dataclass
class Measured:
    """One quantity of one side on one case: the value, its float64 reference and scale, its dtype."""

    value: np.ndarray
    reference: np.ndarray
    scale: np.ndarray
    dtype: str


#: The eps defaults of the frameworks (torch, Keras, Flax), tried beside the two sides' own.
FRAMEWORK_EPS = {1e-5: "torch's", 1e-3: "Keras's", 1e-6: "Flax's"}


@dataclass
class Pair:
    """One quantity on one case, both sides: A against B, and each against its reference."""

    quantity: str
    case: Case
    a: Measured
    b: Measured
    between: error_model.Comparison
    a_ref: error_model.Comparison
    b_ref: error_model.Comparison

    @classmethod
    def of(cls, quantity: str, case: Case, a: Measured, b: Measured) -> Pair:
        between = difference(a.value, b.value, a.scale, b.scale, a.dtype)
        a_ref = error_model.compare(a.value, a.reference, a.scale, a.dtype)
        b_ref = error_model.compare(b.value, b.reference, b.scale, b.dtype)
        return cls(quantity, case, a, b, between, a_ref, b_ref)

    @property
    def equivalent(self) -> bool:
        return self.between.ok

    def to_json(self) -> dict[str, Any]:
        small = self.case.x.size <= 4096
        return {
            "quantity": self.quantity,
            "observed": json_number(self.between.observed),
            "allowed": self.between.allowed,
            "max_abs": json_number(self.between.max_abs),
            "mismatch": self.between.mismatch or None,
            "a_vs_reference": json_number(self.a_ref.observed),
            "b_vs_reference": json_number(self.b_ref.observed),
            "case": self.case.to_json(),
            "a": json_values(self.a.value) if small else None,
            "b": json_values(self.b.value) if small else None,
            "reference": json_values(self.a.reference) if small else None,
        }


@dataclass
class Tally:
    """One quantity over every case: how many were compared, how many differ, the worst pair."""

    compared: int = 0
    differ: int = 0
    worst: Pair | None = None

    def add(self, p: Pair) -> None:
        self.compared += 1
        self.differ += not p.equivalent
        if self.worst is None or worst_key(p.between) > worst_key(self.worst.between):
            self.worst = p


def worst_key(c: error_model.Comparison) -> float:
    return math.inf if c.mismatch else (c.observed if math.isfinite(c.observed) else math.inf)


@dataclass
class CompareReport:
    """The outcome of :func:`compare` (see the module docstring). ``bool(report)``: equivalent."""

    a: str
    b: str
    norm: str
    frameworks: tuple[str, str]
    dtypes: tuple[str, ...]
    seed: int
    eps: tuple[float, float] = (math.nan, math.nan)  # the eps each side uses when a case gives none (float32)
    own_eps: tuple[bool, bool] = (True, True)  # does a side use its own default (a layer class), or is it given one
    cases: int = 0
    tallies: dict[str, Tally] = field(default_factory=dict)  # "<dtype> <quantity>" -> Tally
    raised: list[str] = field(default_factory=list)  # "<side> raised <message> on <case>"
    notes: list[str] = field(default_factory=list)
    explanation: str | None = None  # the convention slip whose translation makes them equivalent
    slip: str | None = None  # its name
    diagnosis: str | None = None
    hung: str | None = None
    seconds: float = 0.0

    @property
    def compared(self) -> int:
        return sum(t.compared for t in self.tallies.values())

    @property
    def verdict(self) -> str:
        """ "equivalent", "differ", "hangs" or "untested" (nothing could be compared)."""
        if self.hung:
            return "hangs"
        if any(t.differ for t in self.tallies.values()):
            return "differ"
        return "equivalent" if self.compared else "untested"

    @property
    def equivalent(self) -> bool:
        return self.verdict == "equivalent"

    def __bool__(self) -> bool:
        return self.equivalent

    @property
    def worst(self) -> Pair | None:
        """The pair that differs most (of every quantity and dtype)."""
        pairs = [t.worst for t in self.tallies.values() if t.worst is not None]
        return max(pairs, key=lambda p: worst_key(p.between)) if pairs else None

    def closer(self) -> str | None:
        """Which side is closer to its reference on the worst pair ("A", "B", or None for a tie)."""
        w = self.worst
        if w is None:
            return None
        ka, kb = worst_key(w.a_ref), worst_key(w.b_ref)
        if ka == kb or (w.a_ref.ok and w.b_ref.ok):  # both right by their own reference: a convention, not an error
            return None
        return "A" if ka < kb else "B"

    # --- text ---------------------------------------------------------------------------------------
    def headline(self) -> str:
        v = self.verdict
        lam = error_model.MODEL.lam
        if v == "hangs":
            return f"HANGS: {self.hung}"
        if v == "untested":
            why = f": {self.raised[0]}" if self.raised else ""
            return f"UNTESTED: nothing could be compared{why}"
        what = ", ".join(dict.fromkeys(k.split(" ", 1)[1] for k in self.tallies))
        if v == "equivalent":
            w = self.worst
            return (
                f"EQUIVALENT: {self.cases} cases ({', '.join(self.dtypes)}), {what}; worst difference "
                f"{w.between.observed:.3g} u·s of {lam:g} allowed, in {self.seconds:.1f} s"
            )
        bad = [k for k, t in self.tallies.items() if t.differ]
        w = self.worst
        diff = "NaN/Inf pattern" if w.between.mismatch else f"{w.between.observed:.3g} u·s (allowed {lam:g})"
        return f"DIFFER: {', '.join(bad)} differ; worst {w.quantity} by {diff}, in {self.seconds:.1f} s"

    def summary(self) -> str:
        fa, fb = self.frameworks
        out = [
            f"normcheck compare {self.norm}",
            f"  A: {self.a} ({fa}), {self._eps_words(0)}",
            f"  B: {self.b} ({fb}), {self._eps_words(1)}",
            f"  seed {self.seed}" + "".join(f"; {n}" for n in self.notes),
            "",
            f"  {'quantity':<30} {'cases':>6} {'differ':>7} {'worst':>10}",
        ]
        for k, t in self.tallies.items():
            worst = "" if t.worst is None else observed_text(t.worst.between)
            out.append(f"  {k:<30} {t.compared:>6} {t.differ:>7} {worst:>10}")
        if self.raised:
            out.append(f"  {len(self.raised)} calls raised; first: {self.raised[0]}")
        out += ["", self.headline()]
        if self.explanation:
            out.append(f"explained by a convention slip: {self.explanation}")
        w = self.worst
        if w is not None and not w.equivalent:
            out += ["", *self._worst_lines(w)]
        if self.diagnosis:
            out += ["", f"diagnosis: {self.diagnosis}"]
        return "\n".join(out)

    def _eps_words(self, i: int) -> str:
        if self.own_eps[i]:
            return f"eps default {number_text(self.eps[i])}"
        return f"given eps (the spec's {number_text(self.eps[i])} where a case has none)"

    def _worst_lines(self, w: Pair) -> list[str]:
        out = [f"── where they differ most: {w.quantity}, {w.case.describe()}"]
        if w.case.x.size <= SMALL:
            out.append(f"   input:      {array_text(w.case.x)}")
        if np.size(w.a.value) <= SMALL:
            out += [
                f"   A:          {array_text(w.a.value)}",
                f"   B:          {array_text(w.b.value)}",
                f"   reference:  {array_text(w.a.reference)}" + ("" if same_reference(w) else " (A's eps)"),
            ]
            if not same_reference(w):
                out.append(f"   reference:  {array_text(w.b.reference)} (B's eps)")
        else:
            idx = w.between.worst_index
            if idx is not None:
                out.append(
                    f"   at {idx}: A {value_at(w.a.value, idx)}, B {value_at(w.b.value, idx)}, reference {value_at(w.a.reference, idx)}"
                )
        out.append(
            f"   A against its reference: {observed_text(w.a_ref)}; B against its reference: {observed_text(w.b_ref)}"
        )
        c = self.closer()
        if c:
            out.append(f"   closer to the reference: {c} ({self.a if c == 'A' else self.b})")
        return out

    def __str__(self) -> str:
        return self.summary()

    def to_json(self) -> dict[str, Any]:
        w = self.worst
        return {
            "schema": "normcheck.compare/1",
            "a": {"target": self.a, "framework": self.frameworks[0], "eps_default": json_number(self.eps[0])},
            "b": {"target": self.b, "framework": self.frameworks[1], "eps_default": json_number(self.eps[1])},
            "norm": self.norm,
            "dtypes": list(self.dtypes),
            "seed": self.seed,
            "verdict": self.verdict,
            "equivalent": self.equivalent,
            "cases": self.cases,
            "quantities": {
                k: {
                    "compared": t.compared,
                    "differ": t.differ,
                    "worst": json_number(t.worst.between.observed) if t.worst else None,
                }
                for k, t in self.tallies.items()
            },
            "worst": None if w is None else w.to_json(),
            "closer": self.closer(),
            "slip": self.slip,
            "explanation": self.explanation,
            "diagnosis": self.diagnosis,
            "raised": self.raised[:20],
            "notes": list(self.notes),
            "hung": self.hung,
            "seconds": round(self.seconds, 2),
        }


def same_reference(w: Pair) -> bool:
    return np.array_equal(np.asarray(w.a.reference), np.asarray(w.b.reference), equal_nan=True)


def observed_text(c: error_model.Comparison) -> str:
    return "NaN/Inf" if c.mismatch else f"{c.observed:.3g}"


def number_text(v: float) -> str:
    return "?" if math.isnan(v) else f"{v:g}"


def json_number(v: float) -> float | str | None:
    if v is None:
        return None
    v = float(v)
    if math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def json_values(a) -> list:
    return [json_number(v) for v in np.asarray(a, np.float64).ravel().tolist()]


def array_text(a) -> str:
    with np.errstate(all="ignore"):
        text = np.array2string(np.asarray(a).astype(np.float64), precision=6, separator=", ", max_line_width=10_000)
    return " ".join(text.split())


def value_at(a, idx) -> str:
    return f"{float(np.asarray(a, np.float64)[idx]):.7g}"
