"""normcheck's store of the native layers' compiled JAX programs (normcheck.adapters.jax.programs):
an executable is kept under its builder's key, the arguments' abstract values and the environment,
loaded instead of traced, lowered and compiled, and gives the bits ``jax.jit`` gives; what cannot be
keyed is never kept."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from normcheck.adapters.jax import programs, setup


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("NORMCHECK_NO_CACHE", raising=False)
    setup()
    programs.STORED.clear()
    return tmp_path / "normcheck" / "jax-programs"


def _f(x, eps):
    return (x - x.mean()) / (x.var() + eps) ** 0.5


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_an_executable_is_kept_then_loaded_and_gives_jax_jit_s_bits(store):
    import jax

    x = np.linspace(-3, 5, 7, dtype=np.float32)
    first = programs.jit(_f, ("test", "f"))(x, 1e-5)
    assert programs.STORED == {"kept": 1} and len(_files(store)) == 1
    again = programs.jit(_f, ("test", "f"))(x, 1e-5)  # another builder of the same key: from the store
    assert programs.STORED == {"kept": 1, "loaded": 1}
    plain = jax.jit(_f)(x, 1e-5)
    assert np.asarray(first).tobytes() == np.asarray(again).tobytes() == np.asarray(plain).tobytes()
    programs.jit(_f, ("test", "f"))(x[:5], 1e-5)  # a new shape is a new executable
    programs.jit(_f, ("test", "f"))(x.astype(np.float16), 1e-5)  # and a new dtype
    programs.jit(_f, ("test", "g"))(x, 1e-5)  # and a new key
    assert programs.STORED["kept"] == 4 and len(_files(store)) == 4


def test_what_cannot_be_keyed_is_never_kept(store, monkeypatch):
    x = np.ones(3, np.float32)

    class UserLayer:
        pass

    programs.jit(_f, None)(x, 1e-5)
    programs.jit(_f, ("linen", UserLayer()))(x, 1e-5)  # an address in the key's text
    assert not programs.STORED and not _files(store)
    monkeypatch.setenv("NORMCHECK_NO_CACHE", "1")
    programs.jit(_f, ("test", "off"))(x, 1e-5)
    assert not programs.STORED and not _files(store)


def test_a_damaged_entry_is_compiled_afresh_and_another_environment_never_reads_it(store, monkeypatch):
    x = np.arange(4, dtype=np.float32)
    want = np.asarray(programs.jit(_f, ("test", "h"))(x, 1e-3)).tobytes()
    (entry,) = _files(store)
    entry.write_bytes(b"not an executable")
    assert np.asarray(programs.jit(_f, ("test", "h"))(x, 1e-3)).tobytes() == want
    assert programs.STORED == {"kept": 2} and entry.read_bytes() != b"not an executable"
    env = programs._environment()
    monkeypatch.setattr(programs, "_environment", lambda: (*env[:3], "other adapter source", *env[4:]))
    programs.jit(_f, ("test", "h"))(x, 1e-3)
    assert programs.STORED == {"kept": 3} and len(_files(store)) == 2
