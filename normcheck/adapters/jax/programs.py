"""The native layers' compiled programs kept between runs as serialized executables, so that a later
run neither traces nor lowers them (JAX's persistent cache saves only the compilation, and its key
needs the lowered program: tracing and lowering were some two thirds of a warm audit's JAX time).

:func:`jit` is ``jax.jit(fn)`` for a function normcheck builds from a key that determines it: the
norm, the module configuration, the derivative taken, everything the function closes over. Each
call's executable is found by that key, the arguments' tree and abstract values (shape, dtype, weak
type), and what makes an executable differ: the jax, jaxlib and flax versions, the source of
normcheck's JAX adapter, ``XLA_FLAGS``, the device and the CPU. It is loaded from
``$XDG_CACHE_HOME/normcheck/jax-programs`` when it is there (``deserialize_and_load``: the same
executable, so the same bits), else compiled afresh, kept, and used. A key whose text holds an
object's address (a user's class), a folder that cannot be read or written, or an executable that
does not serialize fall back to ``jax.jit``; ``NORMCHECK_NO_CACHE`` turns the store off.

Two keys can build one program (a layer's parameter dtype where it has no parameters, the channel
layout of a rank-2 input): an executable missing under its key is looked up by its lowered program
(:func:`_program_digest`: the StableHLO text with the module's name left out, the arguments it keeps,
their trees and abstract values) in this process and in the store's ``by-program`` folder, and the
key's file is a hard link to the program's. XLA compiles one program to one executable, so the bits
are those of compiling it again; a lowering whose kept arguments cannot be read is not shared.

A fresh compilation bypasses JAX's persistent cache (an executable loaded from there does not
serialize whole on CPU): it is compiled with an XLA option set to its default value, which makes a
key JAX's cache never holds, and with JAX's minimum compile time for writing raised, so it never
does. ``xla_cpu_enable_fast_math`` is false by default; the program is the one ``jax.jit`` builds
(``tests/adapters/test_speed_cache.py``: records with the store cold, warm and off are identical).
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any

from normcheck import compile_cache

__all__ = ["STORED", "jit", "store"]

#: This process's executables from the store: ``loaded``, ``kept`` (compiled and written),
#: ``unkept`` (compiled, not written: no key, or it would not serialize), ``shared`` (another key's:
#: the same lowered program, neither compiled nor written again).
STORED: Counter[str] = Counter()

#: This process's executables by lowered program (:func:`_program_digest`).
_BY_PROGRAM: dict[str, Any] = {}

#: The XLA option a fresh compilation is made with: its default value, a cache key of its own.
_FRESH = {"xla_cpu_enable_fast_math": False}


def store() -> Path | None:
    """The folder of kept executables (None with the caches off)."""
    folder = compile_cache.folder("jax-programs")
    return None if folder is None else Path(folder)


def jit(fn, key: tuple | None):
    """``jax.jit(fn)``, its executables kept between runs under ``key`` (None: never kept)."""
    import jax

    jitted = jax.jit(fn)
    if key is None or " at 0x" in repr(key):  # an address is no key across processes
        return jitted
    return _Program(jitted, repr(key))


class _Program:
    def __init__(self, jitted, key: str) -> None:
        self._jitted, self._key = jitted, key
        self._execs: dict[Any, Any] = {}

    def __call__(self, *args):
        folder = store()
        if folder is None:
            return self._jitted(*args)
        import jax

        leaves, tree = jax.tree_util.tree_flatten(args)
        sig = (tree, tuple(_aval(leaf) for leaf in leaves))
        ex = self._execs.get(sig)
        if ex is None:
            if len(self._execs) > 256:
                self._execs.clear()
            ex = self._execs[sig] = _load_or_compile(self._jitted, args, folder, self._key, sig)
        return ex(*args)


def _aval(leaf) -> tuple:
    import jax

    a = jax.typeof(leaf)
    return tuple(a.shape), str(a.dtype), bool(getattr(a, "weak_type", False))


def _load_or_compile(jitted, args, folder: Path, key: str, sig):
    import jax

    digest = hashlib.sha256(repr((key, str(sig[0]), sig[1], _environment())).encode()).hexdigest()
    path = folder / digest[:2] / digest
    ex = _load(path)
    if ex is not None:
        STORED["loaded"] += 1
        return ex
    lowered = jitted.lower(*args)
    program = _program_digest(lowered, sig)
    shared = None if program is None else folder / "by-program" / program[:2] / program
    ex = None if program is None else _BY_PROGRAM.get(program)
    if ex is None:
        ex = _load(shared)
    if ex is not None:
        STORED["shared"] += 1
        _link(shared, path)
    else:
        before = jax.config.jax_persistent_cache_min_compile_time_secs
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1e9)
        try:
            ex = lowered.compile(compiler_options=_FRESH)
        finally:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", before)
        target = shared or path
        kept = _keep(ex, target) and (target == path or _link(target, path))
        STORED["kept" if kept else "unkept"] += 1
    if program is not None:
        if len(_BY_PROGRAM) > 1024:
            _BY_PROGRAM.clear()
        _BY_PROGRAM[program] = ex
    return ex


def _load(path: Path | None):
    """The executable serialized at ``path`` (None when it is not there or cannot be loaded)."""
    if path is None:
        return None
    from jax.experimental.serialize_executable import deserialize_and_load

    try:
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        return deserialize_and_load(payload, in_tree, out_tree)
    except Exception:  # not there, or unreadable: compiled afresh
        return None


def _keep(compiled, path: Path) -> bool:
    """``compiled`` serialized at ``path``; False where it does not serialize or cannot be written."""
    from jax.experimental.serialize_executable import serialize

    try:
        compile_cache.put(path, pickle.dumps(serialize(compiled), protocol=pickle.HIGHEST_PROTOCOL))
        return True
    except Exception:  # an executable that does not serialize, or a folder that cannot be written
        return False


def _link(shared: Path, path: Path) -> bool:
    """The key's file ``path`` made a hard link to the program's ``shared`` (a copy where links fail)."""
    try:
        compile_cache.put(path, shared)
        return True
    except OSError:
        return False


_MODULE_NAME = re.compile(r"^module @\S+", re.MULTILINE)


def _program_digest(lowered, sig) -> str | None:
    """What determines the executable of a lowering: its StableHLO text with the module's name left
    out (it names the Python function), the arguments it keeps (unused ones are dropped from the
    program, so their indices tell programs of one text apart), the trees and abstract values of the
    arguments and outputs, and the environment. None where the kept arguments cannot be read or the
    program calls back into Python."""
    try:
        compile_args = lowered._lowering.compile_args  # JAX's lowering; private, so read defensively
        kept = sorted(compile_args["kept_var_idx"])
        if compile_args.get("host_callbacks"):
            return None
        text = _MODULE_NAME.sub("module @program", lowered.as_text(), count=1)
    except Exception:
        return None
    identity = (text, kept, str(lowered.in_tree), str(lowered.out_tree), sig[1], _environment())
    return hashlib.sha256(repr(identity).encode()).hexdigest()


@functools.cache
def _environment() -> tuple:
    """What makes an executable differ beyond its program: versions, normcheck's JAX adapter source,
    XLA's flags, the device and the CPU."""
    import jax
    import jaxlib

    from normcheck import installed

    here = Path(__file__).parent
    source = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(here.glob("*.py")))).hexdigest()
    device = jax.devices()[0]
    return (
        jax.__version__,
        jaxlib.__version__,
        installed.version("flax"),
        source,
        os.environ.get("XLA_FLAGS", ""),
        device.platform,
        getattr(device, "device_kind", ""),
        getattr(device.client, "platform_version", ""),
        _cpu(),
    )


def _cpu() -> str:
    """The CPU's model and feature flags (an executable compiled for one CPU may not run on another)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
        return hashlib.sha256("".join(lines).encode()).hexdigest()
    except OSError:
        import platform

        return platform.processor() or platform.machine()
