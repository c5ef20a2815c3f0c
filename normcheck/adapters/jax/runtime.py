"""JAX's set-up for normcheck's runs: the persistent compilation cache and the compile counters
(:func:`setup`, run before normcheck's first JAX call; :mod:`normcheck.adapters.jax` re-exports it)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from normcheck import compile_cache

__all__ = ["COMPILES", "cache_dir", "put", "setup"]

#: From ``jax.monitoring``, in this process: ``compiles`` (XLA compilations, cache loads included)
#: and ``compile_s`` their seconds, ``cache_hits``/``cache_misses`` of the persistent cache,
#: ``trace_s`` and ``lower_s`` (tracing to a jaxpr, lowering to MLIR; never cached).
COMPILES: Counter[str] = Counter()

_EVENTS = {
    "/jax/core/compile/backend_compile_duration": ("compiles", "compile_s"),
    "/jax/core/compile/jaxpr_trace_duration": (None, "trace_s"),
    "/jax/core/compile/jaxpr_to_mlir_module_duration": (None, "lower_s"),
    "/jax/compilation_cache/cache_hits": ("cache_hits", None),
    "/jax/compilation_cache/cache_misses": ("cache_misses", None),
}
_SET_UP = False


def cache_dir() -> str | None:
    """The persistent compilation cache folder: ``$XDG_CACHE_HOME/normcheck/jax`` (by default
    ``~/.cache/normcheck/jax``); None when ``NORMCHECK_NO_CACHE`` is set (:mod:`normcheck.compile_cache`)."""
    return compile_cache.folder("jax")


def setup():
    """``jax``, imported; on the first call in a process, the persistent compilation cache set to
    :func:`cache_dir` (every program cached; off with ``NORMCHECK_NO_CACHE``; a folder the user set
    is kept) and :data:`COMPILES` counting. Runs before normcheck's first JAX call (:func:`put`)."""
    global _SET_UP
    import jax

    if _SET_UP:
        return jax
    _SET_UP = True
    folder = cache_dir()
    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
    elif jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: no minimum size

    def count(event, seconds=None, **_):
        n, s = _EVENTS.get(event, (None, None))
        if n is not None:
            COMPILES[n] += 1
        if s is not None and seconds is not None:
            COMPILES[s] += seconds

    jax.monitoring.register_event_listener(count)
    jax.monitoring.register_event_duration_secs_listener(count)
    return jax


def put(a):
    """A host array onto JAX's default device, copied: ``jax.device_put``. (``jnp.asarray`` of a
    NumPy array runs a compiled identity program, built anew for every shape: ~17 ms each here.)"""
    return setup().device_put(np.asarray(a))
