"""Where compiled programs are kept between runs: one folder per framework under
``$XDG_CACHE_HOME/normcheck`` (by default ``~/.cache/normcheck``), off with ``NORMCHECK_NO_CACHE=1``
(``normcheck audit --no-cache``).

JAX keeps its persistent compilation cache there (``normcheck.adapters.jax.setup``), normcheck the
native layers' JAX executables (``jax-programs``: :mod:`normcheck.adapters.jax.programs`) and each
audit unit's seconds (``costs``: :mod:`normcheck.audit.costs`), TensorFlow
its XLA executables of ``tf.function(jit_compile=True)`` (``--tf_xla_persistent_cache_directory``
in ``TF_XLA_FLAGS``, set before TensorFlow is imported). A loaded program is the executable the
compiler built for the same program on the same device, so a warm run's records are a cold run's.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["NO_CACHE_ENV", "first_run", "folder", "put"]

#: Set (to 1, true, yes or on) to turn the persistent compilation caches off.
NO_CACHE_ENV = "NORMCHECK_NO_CACHE"
_TRUE = ("1", "true", "t", "yes", "y", "on")


def folder(framework: str) -> str | None:
    """``$XDG_CACHE_HOME/normcheck/<framework>`` (by default ``~/.cache/normcheck/<framework>``);
    None when :data:`NO_CACHE_ENV` is set."""
    if os.environ.get(NO_CACHE_ENV, "").strip().lower() in _TRUE:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "normcheck", framework)


def first_run(framework: str) -> bool:
    """Whether ``framework``'s cache folder is missing or empty: this run compiles its programs
    afresh and keeps them. False with the caches off (nothing is kept)."""
    d = folder(framework)
    return d is not None and not (os.path.isdir(d) and any(os.scandir(d)))


def put(path: Path, content: bytes | Path) -> None:
    """``path`` written whole or not at all (this process's temporary file, renamed over it):
    ``content``'s bytes, or for a file a hard link to it (a copy where links fail). OSError where
    the folder cannot be written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    if isinstance(content, Path):
        try:
            os.link(content, tmp)
        except OSError:
            tmp.write_bytes(content.read_bytes())
    else:
        tmp.write_bytes(content)
    os.replace(tmp, path)
