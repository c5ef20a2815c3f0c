#!/usr/bin/env python
"""The version matrix: the audit on several releases of each framework, one isolated environment
per version set, merged into one comparison report (issue 17, items 3-4).

For every requested version set (a framework and the pins of its release: ``flax==0.11.2``,
``jax==0.6.2``) the script

1. builds an environment under ``~/.cache/normcheck-matrix/<set>`` with an existing tool: ``uv``
   (``uv venv`` + ``uv pip install``) where it is on PATH or beside this Python, else
   ``python -m venv`` + ``pip``; downloads stay in that tool's own cache;
2. installs this checkout into it (editable) with the set's pins, and the Hypothesis of the
   running interpreter (a seeded audit draws the same examples only under one Hypothesis);
3. runs ``normcheck audit --frameworks <framework> --profile ci --seed 0 --json`` there, one audit
   at a time;
4. merges the documents with ``normcheck report ... --json-out --html`` (the runs side by side)
   and lists every set that could not be installed or audited in the merged report's runs;
5. with ``--update-registry``, writes each finding's ``observed_in``/``absent_in`` versions into
   specs/findings.toml (only those keys; comments and layout stay).

A set that cannot be installed or audited is reported, not fatal. ``--plan`` prints what would be
built and run, and installs nothing.

    python scripts/matrix.py                          # the default sets
    python scripts/matrix.py --frameworks jax --norms layer_norm
    python scripts/matrix.py --sets flax-0.10.2,flax-0.12.8 --plan
    python scripts/matrix.py --set flax-0.11.0=jax:flax==0.11.0,jax==0.6.0
    python scripts/matrix.py --reuse --update-registry  # merge and record already written documents
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENVS = Path(os.environ.get("NORMCHECK_MATRIX_ENVS", "~/.cache/normcheck-matrix")).expanduser()
OUT = ROOT / "out" / "matrix"
REGISTRY = ROOT / "specs" / "findings.toml"

#: The packages whose versions a run records (the registry's packages and what they build on).
PACKAGES = (
    "flax",
    "jax",
    "jaxlib",
    "keras",
    "tensorflow-cpu",
    "tensorflow",
    "onnxruntime",
    "onnx",
    "torch",
    "numpy",
    "ml-dtypes",
    "hypothesis",
)


@dataclass(frozen=True)
class VersionSet:
    """One environment: the framework the audit is restricted to and the pins of its release."""

    name: str
    framework: str
    pins: tuple[str, ...]
    default: bool = True  # in the matrix when no --sets is given


#: The default sets span the registry's ranges on Python 3.11: four Flax releases, each with a JAX
#: of its time (0.12.1 is the first with nnx.Variable.set_value, which the adapter's nnx forms
#: call: before it the nnx checks skip, Unsupported); three Keras releases (3.5.0 and 3.7.0 on one TensorFlow,
#: 2.17.1, the oldest that installs beside normcheck's ml-dtypes floor: 3.7.0 computes GroupNorm's
#: 16-bit inputs in float32, 3.5.0 does not; 3.15.1 on TensorFlow 2.21.0); two ONNX Runtime releases,
#: each with an onnx of its time. Torch only at the CPU build this machine has (another torch pulls
#: a multi-GB CUDA build): not in the defaults, ask for it with --sets torch-2.13.0.
SETS: tuple[VersionSet, ...] = (
    VersionSet("flax-0.10.2", "jax", ("flax==0.10.2", "jax==0.4.38", "jaxlib==0.4.38")),
    VersionSet("flax-0.11.2", "jax", ("flax==0.11.2", "jax==0.6.2", "jaxlib==0.6.2")),
    VersionSet("flax-0.12.1", "jax", ("flax==0.12.1", "jax==0.8.1", "jaxlib==0.8.1")),
    VersionSet("flax-0.12.8", "jax", ("flax==0.12.8", "jax==0.10.2", "jaxlib==0.10.2")),
    VersionSet("keras-3.5.0", "tensorflow", ("keras==3.5.0", "tensorflow-cpu==2.17.1")),
    VersionSet("keras-3.7.0", "tensorflow", ("keras==3.7.0", "tensorflow-cpu==2.17.1")),
    VersionSet("keras-3.15.1", "tensorflow", ("keras==3.15.1", "tensorflow-cpu==2.21.0")),
    VersionSet("onnxruntime-1.22.1", "onnxruntime", ("onnxruntime==1.22.1", "onnx==1.18.0")),
    VersionSet("onnxruntime-1.32.0", "onnxruntime", ("onnxruntime==1.32.0", "onnx==1.23.2")),
    VersionSet("torch-2.13.0", "torch", ("torch==2.13.0",), default=False),
)


@dataclass
class Step:
    """What the matrix does for one set: the environment, the commands, where the document goes."""

    set: VersionSet
    env: Path
    create: list[str]
    install: list[str]
    audit: list[str]
    document: Path
    log: Path
    status: str = "planned"  # planned | ok | reused | install failed | audit failed
    message: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.set.name,
            "framework": self.set.framework,
            "pins": list(self.set.pins),
            "env": _shown(self.env),
            "create": [_shown(a) for a in self.create],
            "install": [_shown(a) for a in self.install],
            "audit": [_shown(a) for a in self.audit],
            "document": _shown(self.document),
            "log": _shown(self.log),
            "status": self.status,
            "message": self.message,
            "packages": self.packages,
            "seconds": self.seconds,
        }


def _shown(path) -> str:
    """A path as a report shows it: relative to the checkout, or with ~ for the home folder."""
    text = str(path)
    for base, short in ((str(ROOT) + os.sep, ""), (str(Path.home()) + os.sep, "~" + os.sep)):
        text = text.replace(base, short)
    return text


# --- planning (no side effects) -----------------------------------------------------------------


def parse_set(text: str) -> VersionSet:
    """``NAME=FRAMEWORK:PIN[,PIN...]`` (``flax-0.11.0=jax:flax==0.11.0,jax==0.6.0``)."""
    name, eq, rest = text.partition("=")
    framework, colon, pins = rest.partition(":")
    pins_t = tuple(p.strip() for p in pins.split(",") if p.strip())
    if not eq or not colon or not name.strip() or not framework.strip() or not pins_t:
        raise argparse.ArgumentTypeError(f"expected NAME=FRAMEWORK:PIN[,PIN...], got {text!r}")
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name.strip()):
        raise argparse.ArgumentTypeError(f"a set's name is one word of letters, digits and ._+-: {name!r}")
    return VersionSet(name.strip(), framework.strip(), pins_t)


def select(sets=SETS, *, names=None, frameworks=None, extra=()) -> list[VersionSet]:
    """The sets to run: those named (any of the catalogue), else the defaults, restricted to
    ``frameworks``; then the ``extra`` ones (``--set``). ValueError for an unknown name."""
    by_name = {s.name: s for s in sets}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"unknown set {', '.join(unknown)}; known: {', '.join(by_name)}")
        chosen = [by_name[n] for n in names]
    else:
        chosen = [s for s in sets if s.default]
    chosen += list(extra)
    if frameworks:
        chosen = [s for s in chosen if s.framework in frameworks]
    seen: set[str] = set()
    out = []
    for s in chosen:
        if s.name not in seen:
            seen.add(s.name)
            out.append(s)
    return out


def installer(prefer: str = "auto") -> str:
    """``uv`` where it can be found (on PATH or beside this interpreter), else ``pip``."""
    if prefer in ("uv", "pip"):
        return prefer
    return "uv" if uv_path() else "pip"


def uv_path() -> str | None:
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if beside.exists() else shutil.which("uv")


def hypothesis_pin() -> str | None:
    try:
        return f"hypothesis=={importlib.metadata.version('hypothesis')}"
    except importlib.metadata.PackageNotFoundError:
        return None


def audit_arguments(framework: str, document: Path, opts) -> list[str]:
    args = ["audit", "--frameworks", framework, "--profile", opts.profile, "--seed", str(opts.seed)]
    for flag in ("norms", "dtypes", "properties"):
        if getattr(opts, flag, None):
            args += [f"--{flag}", getattr(opts, flag)]
    if getattr(opts, "max_examples", None):
        args += ["--max-examples", str(opts.max_examples)]
    if getattr(opts, "jobs", None):
        args += ["--jobs", str(opts.jobs)]
    return [*args, "--quiet", "--json", str(document)]


def plan(sets: list[VersionSet], opts) -> list[Step]:
    """The steps for ``sets`` under ``opts`` (argparse namespace of this script): pure, nothing
    is created, installed or run."""
    tool = installer(opts.installer)
    envs, out = Path(opts.envs), Path(opts.out)
    python = opts.python or sys.executable
    source = str(Path(opts.source).resolve())
    common = [p for p in (hypothesis_pin(),) if p]
    steps = []
    for s in sets:
        env = envs / s.name
        py = str(env / "bin" / "python")
        links = [a for link in opts.find_links for a in ("--find-links", link)]
        links += [a for url in opts.extra_index_url for a in ("--extra-index-url", url)]
        if tool == "uv":
            uv = uv_path() or "uv"
            create = [uv, "venv", "--quiet", "--allow-existing", "--python", python, str(env)]
            install = [uv, "pip", "install", "--quiet", "--python", py, *links, "-e", source, *s.pins, *common]
        else:
            create = [python, "-m", "venv", str(env)]
            install = [py, "-m", "pip", "install", "--quiet", *links, "-e", source, *s.pins, *common]
        document = out / f"{s.name}.json"
        audit = [str(env / "bin" / "normcheck"), *audit_arguments(s.framework, document, opts)]
        steps.append(Step(s, env, create, install, audit, document, out / f"{s.name}.log"))
    return steps


# --- verified ranges: observed_in / absent_in ------------------------------------------------------


def _version_key(v: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (0, Version(v))
    except InvalidVersion:
        return (1, v)


def _public(v: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(v).public
    except InvalidVersion:
        return v


def package_version(package: str, packages: dict[str, str], doc: dict[str, Any]) -> str | None:
    """The version of ``package`` in one run: from the set's installed packages, else the
    document's environment (its packages, then its frameworks' versions)."""
    env = doc.get("run", {}).get("environment", {})
    for source in (packages, env.get("packages") or {}):
        for dist in (package, f"{package}-cpu", f"{package}-gpu"):
            if source.get(dist):
                return _public(source[dist])
    v = (env.get("frameworks") or {}).get(package, {}).get("version")  # torch: the framework's own package
    return _public(v) if v else None


def verified_ranges(runs, *, registry: str | None = None) -> dict[tuple[str, str], tuple[list[str], list[str]]]:
    """For each registered finding's part (finding id, framework): the versions of its package on
    which a run met it (:func:`met`: a record with that finding, or one of whose examples it
    explained), and those on which a run ran its checks (a
    record it applies to, not skipped, at that version) without meeting it. Absence is evidence only
    beside an observation: a part no run met is left out (the runs' examples never reach it), and so
    is a version on which one run met it and another did not (:func:`mixed`: it depends on another
    package). ``runs``: (audit document, {package: version}) pairs."""
    out = {}
    for key, (seen, absent) in _observations(runs, registry).items():
        seen, absent = seen - absent, absent - seen
        if seen:
            out[key] = (sorted(seen, key=_version_key), sorted(absent, key=_version_key))
    return out


def mixed(runs, *, registry: str | None = None) -> dict[tuple[str, str], list[str]]:
    """The versions of a part's package on which one run met the finding and another, with other
    packages (Keras beside one TensorFlow), ran its checks without meeting it."""
    out = {}
    for key, (seen, absent) in _observations(runs, registry).items():
        if seen & absent:
            out[key] = sorted(seen & absent, key=_version_key)
    return out


def _observations(runs, registry) -> dict[tuple[str, str], tuple[set[str], set[str]]]:
    from normcheck import findings as F

    found = F.load(str(registry)) if registry else F.load()
    out: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for doc, packages in runs:
        for f in found:
            for part in f.parts:
                recs = [r for r in doc["records"] if r["framework"] == part.framework]
                v = package_version(part.package, packages, doc) if recs else None
                if v is None:
                    continue
                seen, absent = out.setdefault((f.id, part.framework), (set(), set()))
                if any(met(r, f.id) for r in recs):
                    seen.add(v)
                elif any(r["verdict"] != "skip" and f.applies(r["impl"], r["property"], r["dtype"], v) for r in recs):
                    absent.add(v)
    return out


def met(record: dict[str, Any], finding_id: str) -> bool:
    """Did the run meet the finding on this record: the record's finding (the one that explains its
    smallest failing example), or one that explained some of its other examples (``explained``: a
    check whose smallest hit is another finding's, Keras 3.5.0's GroupNorm gradients on an extreme
    16-bit input, still met it)?"""
    if record["verdict"] == "skip":
        return False
    return (record["verdict"] == "finding" and record.get("finding") == finding_id) or bool(
        (record.get("explained") or {}).get(finding_id)
    )


_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")


def _tables(lines: list[str]) -> list[tuple[str, int, int]]:
    """Each table of a TOML text: (its name, the header's line, the line after its last)."""
    heads = [(m.group(1), i) for i, ln in enumerate(lines) if (m := _HEADER.match(ln))]
    return [(name, i, heads[k + 1][1] if k + 1 < len(heads) else len(lines)) for k, (name, i) in enumerate(heads)]


def _value_end(lines: list[str], i: int, end: int) -> int:
    """The line after the value that starts on line ``i`` (a value may span lines: an array)."""
    import tomllib

    for j in range(i + 1, end + 1):
        try:
            tomllib.loads("\n".join(lines[i:j]))
            return j
        except tomllib.TOMLDecodeError:
            continue
    raise ValueError(f"line {i + 1}: a value that does not end in its table")


def _key_line(lines: list[str], key: str, start: int, end: int) -> int | None:
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    return next((i for i in range(start + 1, end) if pattern.match(lines[i])), None)


def _body_end(lines: list[str], start: int, end: int) -> int:
    """The line after the table's last key/value (its trailing blank and comment lines excluded)."""
    last = start + 1
    i = start + 1
    while i < end:
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            i = _value_end(lines, i, end)
            last = i
        else:
            i += 1
    return last


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def update_registry(text: str, ranges: dict[tuple[str, str], tuple[list[str], list[str]]]) -> str:
    """``text`` (the registry) with ``observed_in``/``absent_in`` of each (finding id, framework)
    in ``ranges`` merged in: the [[finding]] table of that id for its first framework, the
    [[finding.also]] table of that framework after it otherwise. A version now observed leaves
    absent_in and the other way round; versions no run saw stay as they were. Only those keys'
    lines change (written on one line each, after the table's last key when new); the result is
    parsed back and checked to differ from ``text`` in those keys only."""
    import tomllib

    lines = text.split("\n")
    before = tomllib.loads(text)
    # (finding id, framework) -> table position, from the last edit backwards so positions hold
    targets: list[tuple[int, int, tuple[str, str]]] = []
    fid, first = None, None
    for name, start, end in _tables(lines):
        body = tomllib.loads("\n".join(lines[start + 1 : end]))
        if name == "finding":
            fid = body.get("id")
            impl = body.get("impl")
            first = (impl if isinstance(impl, str) else (impl or ["?"])[0]).split("/")[0]
            key = (fid, first)
        elif name == "finding.also" and fid is not None:
            key = (fid, body.get("framework"))
        else:
            continue
        if key in ranges:
            targets.append((start, end, key))
    missing = set(ranges) - {k for *_, k in targets}
    if missing:
        raise ValueError(f"no table in the registry for {sorted(missing)}")
    for start, end, key in sorted(targets, reverse=True):
        seen, absent = ranges[key]
        body = tomllib.loads("\n".join(lines[start + 1 : end]))
        old_seen, old_absent = body.get("observed_in", []), body.get("absent_in", [])
        new_seen = sorted((set(old_seen) - set(absent)) | set(seen), key=_version_key)
        new_absent = sorted((set(old_absent) - set(seen)) | set(absent), key=_version_key)
        for k, values in (("absent_in", new_absent), ("observed_in", new_seen)):
            at = _key_line(lines, k, start, end)
            if at is not None:
                stop = _value_end(lines, at, end)
                lines[at:stop] = [f"{k} = {_toml_list(values)}"]
                end -= stop - at - 1
            elif values:
                after = _body_end(lines, start, end)
                if k == "absent_in" and (o := _key_line(lines, "observed_in", start, end)) is not None:
                    after = _value_end(lines, o, end)
                lines.insert(after, f"{k} = {_toml_list(values)}")
                end += 1
        # observed_in before absent_in when both were added now
        o, a = _key_line(lines, "observed_in", start, end), _key_line(lines, "absent_in", start, end)
        if o is not None and a is not None and a == o - 1:
            lines[a], lines[o] = lines[o], lines[a]
    out = "\n".join(lines)
    _check(before, tomllib.loads(out), ranges)
    return out


def _check(before: dict, after: dict, ranges) -> None:
    """``after`` is ``before`` but for observed_in/absent_in (ValueError otherwise)."""

    def strip(doc):
        out = json.loads(json.dumps(doc))
        for f in out.get("finding", []):
            for t in (f, *f.get("also", [])):
                t.pop("observed_in", None)
                t.pop("absent_in", None)
        return out

    if strip(before) != strip(after):
        raise ValueError("the registry update changed more than observed_in/absent_in")
    for f in after.get("finding", []):
        impl = f["impl"] if isinstance(f["impl"], str) else f["impl"][0]
        for t, fw in ((f, impl.split("/")[0]), *((a, a.get("framework")) for a in f.get("also", []))):
            if (f["id"], fw) in ranges:
                seen, absent = ranges[(f["id"], fw)]
                if not set(seen) <= set(t.get("observed_in", [])) or not set(absent) <= set(t.get("absent_in", [])):
                    raise ValueError(f"the registry update did not record {f['id']} [{fw}]")


# --- running ------------------------------------------------------------------------------------


def _run(cmd: list[str], log, *, timeout: float | None = None) -> int:
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    try:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False).returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        log.write(f"{type(e).__name__}: {e}\n")
        return 124 if isinstance(e, subprocess.TimeoutExpired) else 127


def _tail(path: Path) -> str:
    """The log's most telling lines (an installer's error and its cause), for one-line reports."""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("$ ")]
    error = next((k for k, ln in enumerate(lines) if re.match(r"(error|×|ERROR)\b", ln)), None)
    if error is None:
        return (lines[-1] if lines else "")[:300]
    cause = next((ln for ln in lines[error + 1 :] if re.search(r"cause|because", ln, re.IGNORECASE)), "")
    return " ".join(x for x in (lines[error], cause) if x)[:400]


def installed_packages(python: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    try:
        r = subprocess.run([str(python), "-c", code, *PACKAGES], capture_output=True, text=True, check=True)
        return json.loads(r.stdout)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        return {}


def execute(step: Step, opts) -> Step:
    """Build the set's environment and run its audit; the outcome in ``step.status``."""
    step.log.parent.mkdir(parents=True, exist_ok=True)
    if opts.reuse and step.document.exists():
        step.status, step.message = "reused", f"the document of an earlier run: {step.document}"
        meta = step.document.with_suffix(".set.json")
        if meta.exists():
            step.packages = json.loads(meta.read_text()).get("packages", {})
        return step
    step.env.parent.mkdir(parents=True, exist_ok=True)
    with open(step.log, "w") as log:
        t0 = time.time()
        rc = _run(step.create, log)
        if rc == 0:
            rc = _run(step.install, log, timeout=opts.install_timeout)
        step.seconds["install"] = round(time.time() - t0, 1)
        if rc != 0:
            log.close()
            step.status, step.message = "install failed", _tail(step.log)
            return step
        step.packages = installed_packages(step.env / "bin" / "python")
        step.document.unlink(missing_ok=True)
        t0 = time.time()
        rc = _run(step.audit, log, timeout=opts.audit_timeout)
        step.seconds["audit"] = round(time.time() - t0, 1)
    if rc not in (0, 1) or not step.document.exists():
        step.status, step.message = "audit failed", f"exit {rc}: {_tail(step.log)}"
        return step
    step.status = "ok"
    step.message = "audit exit 0" if rc == 0 else "audit exit 1 (new deviations or errors: see the report)"
    step.document.with_suffix(".set.json").write_text(json.dumps(step.to_json(), indent=1))
    return step


def set_label(step: Step) -> str:
    pins = ", ".join(step.set.pins)
    return f"{step.set.name} ({pins}): {step.status}: {step.message}"


def merge(steps: list[Step], opts) -> int:
    """The merged report of every set and, with ``--by-framework`` where the sets span several
    frameworks, one per framework beside it (``merged-jax.html``: its runs side by side, every
    check in each of them); 0 when they were written."""
    json_out, html = Path(opts.json_out), Path(opts.html)
    rc = _merge(steps, json_out, html, opts)
    frameworks = list(dict.fromkeys(s.set.framework for s in steps))
    if opts.by_framework and len(frameworks) > 1:
        for fw in frameworks:
            mine = [s for s in steps if s.set.framework == fw]
            out = (json_out.with_name(f"{json_out.stem}-{fw}.json"), html.with_name(f"{html.stem}-{fw}.html"))
            rc = _merge(mine, *out, opts) or rc
    return rc


def differing(compare: dict[str, list]) -> dict[str, list]:
    """The checks whose verdict differs between the runs that ran them (a run of another framework
    has no verdict there: None)."""
    return {k: v for k, v in compare.items() if len({str(c) for c in v if c is not None}) > 1}


def _merge(steps: list[Step], json_out: Path, html: Path, opts) -> int:
    """``normcheck report`` over the documents, then the sets that did not run listed among the
    merged report's runs; 0 when a merged report was written."""
    docs = [s for s in steps if s.status in ("ok", "reused")]
    if not docs:
        print("no document to merge")
        return 1
    report = [_normcheck()]
    cmd = [*report, "report", *[str(s.document) for s in docs], "--json-out", str(json_out)]
    print("$ " + " ".join(cmd))
    if subprocess.run(cmd, check=False).returncode != 0:
        return 1
    merged = json.loads(json_out.read_text())
    if len(docs) == 1:  # one document is not a comparison: normcheck report returns it as is
        merged = {**merged, "run": {**merged["run"], "runs": [{"label": "run 1"}]}}
    for k, s in enumerate(docs):  # each run named by its set and the package versions it had
        if k < len(merged["run"].get("runs", [])):
            extra = ", ".join(f"{p} {v}" for p, v in s.packages.items() if p not in ("hypothesis", "ml-dtypes"))
            merged["run"]["runs"][k]["label"] += f"; set {s.set.name}: {extra or ', '.join(s.set.pins)}"
            merged["run"]["runs"][k]["set"] = s.set.name
    failed = [s for s in steps if s.status not in ("ok", "reused")]
    for s in failed:  # after the runs that have records: the records' run indices stay valid
        merged["run"].setdefault("runs", []).append({"label": f"not run: {set_label(s)}", "set": s.set.name})
    merged["matrix"] = [s.to_json() for s in steps]
    merged["differ"] = differing(merged.get("compare") or {})  # ignoring the runs that lack the check
    if opts.slim:  # a report small enough to keep in a repository
        merged["records"] = [_slim(r) for r in merged["records"] if r["verdict"] != "skip"]
        merged["run"]["slim"] = (
            "left out: the records of skipped checks, per-example errors, repro snippets and the cases of "
            "registered findings' records (each set's own document keeps them)"
        )
    json_out.write_text(json.dumps(merged, indent=None if opts.slim else 1, allow_nan=False))
    cmd = [*report, "report", str(json_out), "--html", str(html)]
    print("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=False).returncode


def _slim(r: dict[str, Any]) -> dict[str, Any]:
    out = {**r, "samples": [], "repro": None}
    if r["verdict"] == "finding":  # a registered finding: the registry holds its smallest case
        out["counterexample"] = None
    return out


def _normcheck() -> str:
    beside = Path(sys.executable).parent / "normcheck"
    return str(beside) if beside.exists() else (shutil.which("normcheck") or "normcheck")


def print_plan(steps: list[Step]) -> None:
    for s in steps:
        print(f"{s.set.name}  ({s.set.framework}: {', '.join(s.set.pins)})")
        print(f"  env:    {s.env}")
        print(f"  create: {' '.join(s.create)}")
        print(f"  install:{' '.join(s.install)}")
        print(f"  audit:  {' '.join(s.audit)}")


def print_table(steps: list[Step]) -> None:
    print()
    width = max(len(s.set.name) for s in steps)
    for s in steps:
        secs = " ".join(f"{k} {v:.0f} s" for k, v in s.seconds.items())
        print(f"{s.set.name:<{width}}  {s.status:<14} {secs:<24} {s.message}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    names = ", ".join(s.name + ("" if s.default else " (not default)") for s in SETS)
    p.add_argument("--sets", help=f"comma-separated sets of the catalogue (default: the defaults): {names}")
    p.add_argument("--set", dest="extra", action="append", type=parse_set, default=[], metavar="NAME=FW:PINS")
    p.add_argument("--frameworks", help="only the sets of these frameworks (comma-separated)")
    p.add_argument("--profile", default="ci", help="the audit's profile (default ci)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--norms", help="passed to normcheck audit --norms")
    p.add_argument("--dtypes", help="passed to normcheck audit --dtypes")
    p.add_argument("--properties", help="passed to normcheck audit --properties")
    p.add_argument("--max-examples", type=int)
    p.add_argument("--jobs", type=int, help="passed to normcheck audit --jobs (default: the audit's)")
    p.add_argument("--installer", choices=("auto", "uv", "pip"), default="auto")
    p.add_argument("--python", help="the interpreter of the environments (default: this one)")
    p.add_argument("--source", default=str(ROOT), help="the normcheck checkout installed (editable)")
    p.add_argument("--find-links", action="append", default=_env_list("PIP_FIND_LINKS"), metavar="DIR|URL")
    p.add_argument("--extra-index-url", action="append", default=[], metavar="URL")
    p.add_argument("--envs", default=str(ENVS), help=f"where the environments live (default {ENVS})")
    p.add_argument("--out", default=str(OUT), help="where the documents and logs go (default out/matrix)")
    p.add_argument("--json-out", help="the merged document (default <out>/merged.json)")
    p.add_argument("--html", help="the merged report (default <out>/merged.html)")
    p.add_argument("--reuse", action="store_true", help="keep a set's document from an earlier run")
    p.add_argument(
        "--by-framework",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also one merged report per framework, <json-out>-<framework>.json/.html (default: yes)",
    )
    p.add_argument(
        "--slim",
        action="store_true",
        help="leave skipped checks, per-example errors, repro snippets and registered findings' cases out of "
        "the merged report (the counts, the comparison and the cases of new deviations stay)",
    )
    p.add_argument("--install-timeout", type=float, default=1800)
    p.add_argument("--audit-timeout", type=float, default=3600)
    p.add_argument("--plan", action="store_true", help="print the plan (JSON with --json-plan) and exit")
    p.add_argument("--json-plan", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--update-registry",
        nargs="?",
        const=str(REGISTRY),
        metavar="TOML",
        help="write observed_in/absent_in into the registry (default specs/findings.toml)",
    )
    return p


def _env_list(name: str) -> list[str]:
    return [x for x in os.environ.get(name, "").split() if x]


def options(argv=None) -> argparse.Namespace:
    opts = parser().parse_args(argv)
    opts.json_out = opts.json_out or str(Path(opts.out) / "merged.json")
    opts.html = opts.html or str(Path(opts.out) / "merged.html")
    return opts


def main(argv=None) -> int:
    opts = options(argv)
    names = [n.strip() for n in opts.sets.split(",") if n.strip()] if opts.sets else None
    fws = [f.strip() for f in opts.frameworks.split(",") if f.strip()] if opts.frameworks else None
    try:
        sets = select(names=names, frameworks=fws, extra=opts.extra)
    except ValueError as e:
        print(f"matrix: {e}", file=sys.stderr)
        return 2
    steps = plan(sets, opts)
    if opts.plan:
        if opts.json_plan:
            print(json.dumps([s.to_json() for s in steps], indent=1))
        else:
            print_plan(steps)
        return 0
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(steps):  # one at a time: one audit's CPU use at most
        print(f"[{k + 1}/{len(steps)}] {s.set.name}: {', '.join(s.set.pins)}", flush=True)
        execute(s, opts)
        print(f"  {s.status}: {s.message}", flush=True)
    print_table(steps)
    rc = merge(steps, opts)
    if opts.update_registry:
        runs = [(json.loads(s.document.read_text()), s.packages) for s in steps if s.status in ("ok", "reused")]
        ranges = verified_ranges(runs, registry=opts.update_registry)
        path = Path(opts.update_registry)
        path.write_text(update_registry(path.read_text(), ranges))
        print(f"registry: {path} (observed_in/absent_in of {len(ranges)} finding parts)")
        for (fid, fw), (seen, absent) in sorted(ranges.items()):
            print(f"  {fid} [{fw}]: observed in {', '.join(seen) or '—'}; absent in {', '.join(absent) or '—'}")
        for (fid, fw), versions in sorted(mixed(runs, registry=opts.update_registry).items()):
            print(f"  {fid} [{fw}]: met in one set and not in another on {', '.join(versions)}: not recorded")
    return rc


if __name__ == "__main__":
    sys.exit(main())
