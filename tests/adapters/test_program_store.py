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
    monkeypatch.setattr(programs, "_BY_PROGRAM", {})  # each test a fresh process's table
    return tmp_path / "normcheck" / "jax-programs"


def _f(x, eps):
    return (x - x.mean()) / (x.var() + eps) ** 0.5


def _g(x, eps):
    return x / (x.var() + eps) ** 0.5


def _files(folder):
    """The key files (each a link to its program's file in ``by-program``)."""
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and "by-program" not in p.parts)


def _executables(folder):
    """The distinct executables written (files counted by inode)."""
    return len({p.stat().st_ino for p in folder.rglob("*") if p.is_file()}) if folder.exists() else 0


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
    programs.jit(_g, ("test", "g"))(x, 1e-5)  # and a new key of another program
    assert programs.STORED["kept"] == 4 and len(_files(store)) == _executables(store) == 4


def test_keys_of_one_program_share_its_executable_and_its_bits(store, monkeypatch):
    x = np.linspace(-3, 5, 7, dtype=np.float32)
    one = programs.jit(_f, ("test", "one"))(x, 1e-5)
    two = programs.jit(_f, ("test", "two"))(x, 1e-5)  # another key, the same lowered program
    assert programs.STORED == {"kept": 1, "shared": 1}
    assert len(_files(store)) == 2 and _executables(store) == 1
    monkeypatch.setattr(programs, "_BY_PROGRAM", {})  # a later process finds it on disk
    three = programs.jit(_f, ("test", "three"))(x, 1e-5)
    assert programs.STORED == {"kept": 1, "shared": 2} and _executables(store) == 1
    assert np.asarray(one).tobytes() == np.asarray(two).tobytes() == np.asarray(three).tobytes()


def test_programs_of_one_text_that_keep_different_arguments_are_not_shared(store):
    x, y = np.arange(3, dtype=np.float32), np.arange(10, 13, dtype=np.float32)
    # Each drops its unused argument, so both lower to `return 2 * %arg0`.
    first = programs.jit(lambda a, b: 2 * a, ("test", "first"))(x, y)
    second = programs.jit(lambda a, b: 2 * b, ("test", "second"))(x, y)
    assert np.array_equal(first, 2 * x) and np.array_equal(second, 2 * y)
    assert programs.STORED == {"kept": 2} and _executables(store) == 2


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
    entry.write_bytes(b"not an executable")  # the key's file and its program's (one inode)
    monkeypatch.setattr(programs, "_BY_PROGRAM", {})
    assert np.asarray(programs.jit(_f, ("test", "h"))(x, 1e-3)).tobytes() == want
    assert programs.STORED == {"kept": 2} and entry.read_bytes() != b"not an executable"
    env = programs._environment()
    monkeypatch.setattr(programs, "_environment", lambda: (*env[:3], "other adapter source", *env[4:]))
    programs.jit(_f, ("test", "h"))(x, 1e-3)
    assert programs.STORED == {"kept": 3} and len(_files(store)) == _executables(store) == 2
