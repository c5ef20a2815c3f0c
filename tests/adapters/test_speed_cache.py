"""Compiled JAX programs kept between runs: the native layers' executables in normcheck's own store
(normcheck.adapters.jax.programs: neither traced nor lowered again), the rest in JAX's persistent
compilation cache (normcheck.adapters.jax.setup). A second process with the same cache folder loads
every program the first compiled, and the records are the same; with NORMCHECK_NO_CACHE=1 nothing is
read or written, and the records are the same again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("flax")

CHECKS = """
import json
from normcheck import adapters
from normcheck.adapters import jax as ja
from normcheck.adapters.jax import programs
from normcheck.audit import Run, run_check

impl = next(i for i in adapters.get("jax").implementations() if i.id == "jax/layer_norm/linen/jit")
run = Run("quick", seed=0, max_examples=3)
records = []
for prop in ("agreement", "gradient_agreement"):
    r = run_check(impl, prop, "float32", run, explicit=()).to_json()  # its own draws only, no hunted cases
    del r["seconds"]
    records.append(r)
import jax
print(json.dumps({"compiles": dict(ja.COMPILES), "stored": dict(programs.STORED), "records": records,
                  "dir": jax.config.jax_compilation_cache_dir}))
"""


def _run(cache_home, *, no_cache: bool = False) -> dict:
    """CHECKS in a fresh process, its cache under ``cache_home``."""
    e = {k: v for k, v in os.environ.items() if k not in ("NORMCHECK_NO_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    e.update(XDG_CACHE_HOME=str(cache_home), JAX_PLATFORMS="cpu", **({"NORMCHECK_NO_CACHE": "1"} if no_cache else {}))
    out = subprocess.run([sys.executable, "-c", CHECKS], capture_output=True, text=True, env=e, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_second_process_loads_every_program_and_gets_the_same_records(tmp_path):
    folder, store = tmp_path / "normcheck" / "jax", tmp_path / "normcheck" / "jax-programs"
    cold = _run(tmp_path)
    assert cold["dir"] == str(folder)
    c, kept, shared = cold["compiles"], cold["stored"].get("kept", 0), cold["stored"].get("shared", 0)
    assert kept >= 2 and not cold["stored"].get("loaded")  # the forward pass and the VJP, at least
    assert c["compiles"] >= kept and not c.get("cache_hits")
    assert c.get("cache_misses", 0) == c["compiles"] - kept  # the store's compilations bypass JAX's cache
    in_store, in_jax = _files(store), _files(folder)
    programs = [f for f in in_store if f.startswith("by-program/")]
    assert len(programs) == kept  # every native program, as a serialized executable
    assert len(in_store) - len(programs) == kept + shared  # and every key, a link to its program's
    assert len(in_jax) == c["compiles"] - kept  # every other program, however small or quick to compile

    warm = _run(tmp_path)
    w = warm["compiles"]
    assert warm["stored"] == {"loaded": kept + shared}  # neither traced, lowered nor compiled
    assert w.get("compiles", 0) == len(in_jax) and w.get("cache_hits", 0) == len(in_jax) and not w.get("cache_misses")
    assert (_files(store), _files(folder)) == (in_store, in_jax)
    assert warm["records"] == cold["records"]
    assert [r["verdict"] for r in cold["records"]] == ["pass", "pass"] and cold["records"][0]["examples"] == 3

    off = _run(tmp_path, no_cache=True)
    o = off["compiles"]
    assert o["compiles"] == c["compiles"] and not o.get("cache_hits") and not o.get("cache_misses")
    assert not off["stored"]
    assert (_files(store), _files(folder)) == (in_store, in_jax)
    assert off["records"] == cold["records"]
