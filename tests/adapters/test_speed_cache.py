"""JAX's persistent compilation cache (normcheck.adapters.jax.setup): a second process with the same
cache folder loads every program the first compiled, and the records are the same; with
NORMCHECK_NO_CACHE=1 nothing is read or written, and the records are the same again."""

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
from normcheck.audit import Run, run_check

impl = next(i for i in adapters.get("jax").implementations() if i.id == "jax/layer_norm/linen/jit")
run = Run("quick", seed=0, max_examples=3)
records = []
for prop in ("agreement", "gradient_agreement"):
    r = run_check(impl, prop, "float32", run, explicit=()).to_json()  # its own draws only, no hunted cases
    del r["seconds"]
    records.append(r)
import jax
print(json.dumps({"compiles": dict(ja.COMPILES), "records": records, "dir": jax.config.jax_compilation_cache_dir}))
"""


def _run(cache_home, *, no_cache: bool = False) -> dict:
    """CHECKS in a fresh process, its cache under ``cache_home``."""
    e = {k: v for k, v in os.environ.items() if k not in ("NORMCHECK_NO_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    e.update(XDG_CACHE_HOME=str(cache_home), JAX_PLATFORMS="cpu", **({"NORMCHECK_NO_CACHE": "1"} if no_cache else {}))
    out = subprocess.run([sys.executable, "-c", CHECKS], capture_output=True, text=True, env=e, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_every_program_and_gets_the_same_records(tmp_path):
    folder = tmp_path / "normcheck" / "jax"
    cold = _run(tmp_path)
    assert cold["dir"] == str(folder)
    c = cold["compiles"]
    assert c["compiles"] >= 2 and c.get("cache_misses") == c["compiles"] and not c.get("cache_hits")
    written = sorted(os.listdir(folder))
    assert len(written) == c["compiles"]  # every program, however small or quick to compile

    warm = _run(tmp_path)
    w = warm["compiles"]
    assert w["compiles"] == c["compiles"] and w.get("cache_hits") == w["compiles"] and not w.get("cache_misses")
    assert sorted(os.listdir(folder)) == written
    assert warm["records"] == cold["records"]
    assert [r["verdict"] for r in cold["records"]] == ["pass", "pass"] and cold["records"][0]["examples"] == 3

    off = _run(tmp_path, no_cache=True)
    o = off["compiles"]
    assert o["compiles"] == c["compiles"] and not o.get("cache_hits") and not o.get("cache_misses")
    assert sorted(os.listdir(folder)) == written
    assert off["records"] == cold["records"]
