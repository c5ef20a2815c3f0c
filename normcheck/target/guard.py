"""The per-call timeout: every call of a target runs in one daemon worker thread (:class:`Guard`),
or, in a check's worker process (:func:`watch_calls`), in the calling thread with its start time
written where the supervising process reads it (that process ends a hang by killing this one)."""

from __future__ import annotations

import mmap
import os
import queue
import struct
import sys
import threading
import time

import numpy as np

from normcheck.target.errors import TargetHung, first_line

DEFAULT_TIMEOUT = 5.0
#: A call whose inputs have shapes and dtypes this process has not called a target with gets this
#: many times the per-call timeout: it is where a JIT-compiled target (``jax.jit``, ``tf.function``,
#: ``torch.compile``) compiles, and where a first call imports and initializes.
NEW_SIGNATURE_FACTOR = 12.0
_SEEN: set = set()  # the input signatures this process has called a target with


def _signature(args, kwargs) -> tuple:
    """The shapes and dtypes of a call's array arguments (the type of any other argument)."""

    def one(a):
        shape = getattr(a, "shape", None)
        if shape is None:
            return type(a).__name__
        try:
            return (tuple(int(d) for d in shape), str(getattr(a, "dtype", "")))
        except (TypeError, ValueError):  # a symbolic or unknown dimension
            return (str(shape), str(getattr(a, "dtype", "")))

    return tuple(one(a) for a in args), tuple(sorted((k, one(v)) for k, v in kwargs.items()))


def allowance(args, kwargs) -> float:
    """The factor on the per-call timeout for this call: :data:`NEW_SIGNATURE_FACTOR` the first time
    its input signature is seen in this process in its derivative mode
    (:data:`normcheck.autodiff.MODE`: a first forward-mode call of a shape already called plainly
    initializes torch.func or traces jax.jvp), else 1."""
    from normcheck.autodiff import MODE

    try:
        sig = (MODE.get(), _signature(args, kwargs))
        hash(sig)
    except Exception:  # an argument that cannot be described: no allowance beyond the first call
        sig = (MODE.get(), "?")
    if sig in _SEEN:
        return 1.0
    _SEEN.add(sig)
    return NEW_SIGNATURE_FACTOR


class CallClock:
    """When the call in progress began (``time.monotonic()``, the same clock in every process of the
    machine; 0.0: none in progress) and the factor on the timeout it is allowed (:func:`allowance`),
    in a small file both processes map."""

    SIZE = 16

    def __init__(self, path: str) -> None:
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), self.SIZE)
        self._depth = 0  # a call within a call (a gradient pass building the layer) keeps the outer start

    @classmethod
    def create(cls, path: str) -> CallClock:
        with open(path, "wb") as f:
            f.write(b"\0" * cls.SIZE)
        return cls(path)

    def start(self, factor: float = 1.0) -> None:
        self._depth += 1
        if self._depth == 1:
            self._map[:16] = struct.pack("dd", time.monotonic(), factor)

    def stop(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._map[:8] = struct.pack("d", 0.0)

    def running_for(self) -> float:
        """Seconds the call in progress has run (0.0: none)."""
        t, _ = struct.unpack("dd", self._map[:16])
        return time.monotonic() - t if t else 0.0

    def overdue(self, timeout: float) -> bool:
        """Has the call in progress outlived ``timeout`` times the factor it was allowed?"""
        t, factor = struct.unpack("dd", self._map[:16])
        return bool(t) and time.monotonic() - t > timeout * (factor or 1.0)


_clock: list[CallClock] = []  # this process is a check's worker: every call runs under this clock


def watch_calls(clock: CallClock) -> None:
    """Make every :class:`Guard` of this process (a check's worker) call the target directly, its
    start time on ``clock``: the supervising process kills this one when a call outlives the timeout.
    A ``sys.exit`` inside the target ends the process, as it would a script's."""
    _clock[:] = [clock]


def _call_watched(clock: CallClock, fn, args, kwargs):
    clock.start(allowance(args, kwargs))
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except SystemExit as e:  # the target ended its process: so it does here (no handler may swallow it)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    finally:
        clock.stop()


class _Job:
    __slots__ = ("args", "done", "error", "fn", "kwargs", "value")

    def __init__(self, fn, args, kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.done = threading.Event()
        self.value = self.error = None


class Guard:
    """Runs calls in one daemon worker thread with a per-call timeout (``None`` or 0: no thread).

    After a call times out, ``hung`` holds a message and every later call raises
    :class:`TargetHung` immediately: the abandoned thread cannot be killed, only left behind.
    """

    def __init__(self, timeout: float | None = DEFAULT_TIMEOUT):
        self.timeout = timeout
        self.hung: str | None = None
        self._queue: queue.SimpleQueue | None = None

    def _worker(self, q):
        while True:
            job = q.get()
            try:
                with np.errstate(all="ignore"):
                    job.value = job.fn(*job.args, **job.kwargs)
            except Exception as e:
                job.error = e
            except BaseException as e:  # SystemExit and the like must not escape as such
                job.error = RuntimeError(f"the target raised {first_line(e)}")
            finally:
                job.done.set()

    def call(self, fn, *args, **kwargs):
        if self.hung:
            raise TargetHung(self.hung)
        if _clock:
            return _call_watched(_clock[0], fn, args, kwargs)
        if not self.timeout:
            with np.errstate(all="ignore"):
                return fn(*args, **kwargs)
        if self._queue is None:
            self._queue = queue.SimpleQueue()
            threading.Thread(target=self._worker, args=(self._queue,), daemon=True, name="normcheck-target").start()
        job = _Job(fn, args, kwargs)
        limit = self.timeout * allowance(args, kwargs)
        self._queue.put(job)
        if not job.done.wait(limit):
            self.hung = (
                f"the target did not return within {limit:g} s (per-call timeout"
                f"{'' if limit == self.timeout else ', for inputs of a new shape'}); the call was "
                "abandoned in a background thread, which cannot be killed, and the target was not called again"
            )
            self._queue = None  # the worker is stuck: never hand it another job
            raise TargetHung(self.hung)
        if job.error is not None:
            raise job.error
        return job.value


# The frameworks a *target* (your implementation) may be written in. onnxruntime is an audited
