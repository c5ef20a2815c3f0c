"""The per-call timeout: every call of a target runs in one daemon worker thread (:class:`Guard`)."""

from __future__ import annotations

import queue
import threading

import numpy as np

from normcheck.target.errors import TargetHung, first_line

DEFAULT_TIMEOUT = 5.0


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
        if not self.timeout:
            with np.errstate(all="ignore"):
                return fn(*args, **kwargs)
        if self._queue is None:
            self._queue = queue.SimpleQueue()
            threading.Thread(target=self._worker, args=(self._queue,), daemon=True, name="normcheck-target").start()
        job = _Job(fn, args, kwargs)
        self._queue.put(job)
        if not job.done.wait(self.timeout):
            self.hung = (
                f"the target did not return within {self.timeout:g} s (per-call timeout); the call was "
                "abandoned in a background thread, which cannot be killed, and the target was not called again"
            )
            self._queue = None  # the worker is stuck: never hand it another job
            raise TargetHung(self.hung)
        if job.error is not None:
            raise job.error
        return job.value


# The frameworks a *target* (your implementation) may be written in. onnxruntime is an audited
