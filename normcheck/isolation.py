"""A check's worker process, seen from the process that supervises it (:class:`Worker`).

The worker (``python -m normcheck.check_worker``, a fresh interpreter: frameworks hold threads, so
nothing is forked) reads its request from stdin, then streams messages over a pipe: each check it
is about to run, each finished record, and at the end its report. Each example's case is written,
before the target runs on it, to a file (:class:`CaseSlot`) that only a death makes anyone read
(no message per example: the worker never waits for its supervisor). Its own stdout and stderr go
to a log file, whose last lines explain a death.
Every call of the target writes its start time to a shared :class:`~normcheck.target.guard.CallClock`:
a call that outlives the timeout is ended by killing the worker. When the worker dies, its
supervisor knows the check and the case it was on (:attr:`Worker.case`, unpickled only then).
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Death", "Worker", "WorkerTraceback", "death_text", "importable_ref"]

#: Message kinds: one byte before the pickled payload. A case is kept as bytes (only a death reads it).
STAGE, RECORD, PLAN, REPORT, RAISE, RESULT = b"s", b"r", b"p", b"f", b"x", b"o"
POLL_S = 0.05


class CaseSlot:
    """The case a worker is on, pickled in a file: written (by the worker) before each example,
    cleared at each new check, read (by the supervisor) after a death."""

    HEADER = struct.Struct("Q")

    def __init__(self, path: str) -> None:
        self.path = path

    def open(self) -> CaseSlot:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self

    def write(self, case) -> None:
        data = pickle.dumps(case, protocol=pickle.HIGHEST_PROTOCOL)
        os.pwrite(self.fd, self.HEADER.pack(len(data)) + data, 0)

    def clear(self) -> None:
        os.pwrite(self.fd, self.HEADER.pack(0), 0)

    def read(self):
        """The case last written (a Case), or None (none since the check began, or unreadable)."""
        try:
            with open(self.path, "rb") as f:
                (n,) = self.HEADER.unpack(f.read(self.HEADER.size))
                return pickle.loads(f.read(n)) if n else None
        except Exception:  # no file, a torn write: no case
            return None


class WorkerTraceback(Exception):
    """The cause of an exception a worker reported: its traceback there, as text."""


@dataclass
class Death:
    """How a worker ended before it finished: ``hung`` (killed by its supervisor at the timeout),
    ``signal`` (its name, e.g. "SIGSEGV") or ``exit_code``; the last lines of its stderr."""

    hung: bool = False
    signal: str | None = None
    exit_code: int | None = None
    stderr: tuple[str, ...] = ()

    @property
    def how(self) -> str:
        if self.hung:
            return "killed at the per-call timeout"
        if self.signal:
            return f"killed by {self.signal}"
        return f"exit code {self.exit_code}"


def death_text(code: int | None) -> tuple[str | None, int | None]:
    """(signal name, None) for a negative return code, else (None, the exit code)."""
    if code is not None and code < 0:
        try:
            return signal.Signals(-code).name, None
        except ValueError:
            return f"signal {-code}", None
    return None, code


class Worker:
    """One worker process running ``request`` (a dict the worker module reads); iterate
    :meth:`messages` for what it sends. ``timeout``: the per-call limit in seconds (None: none)."""

    def __init__(self, request: dict[str, Any], timeout: float | None) -> None:
        from multiprocessing.connection import Connection

        from normcheck.target.guard import CallClock

        self.timeout = timeout
        self.dir = tempfile.mkdtemp(prefix="normcheck-worker-")
        clock_path = os.path.join(self.dir, "clock")
        self.clock = CallClock.create(clock_path)
        self.log_path = os.path.join(self.dir, "log")
        self.slot = CaseSlot(os.path.join(self.dir, "case"))
        r, w = os.pipe()
        request = {**request, "fd": w, "clock": clock_path, "case_slot": self.slot.path}
        request.update(path=list(sys.path), parent=os.getpid())
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        env.setdefault("PYTHONFAULTHANDLER", "1")  # a fatal signal prints the Python stack to the log
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "normcheck.check_worker"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(w,),
                env=env,
                process_group=0,  # a Ctrl-C reaches the supervisor alone (the foreground group); it ends the worker
            )
        os.close(w)
        self.conn = Connection(r, writable=False)
        self.last_case = None
        self.stage: tuple[str, str] | None = None  # (dtype, property) or (what, "") it is on
        self.death: Death | None = None
        try:
            self.proc.stdin.write(pickle.dumps(request))
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # it died at once: messages() says how

    @property
    def case(self):
        """The case the worker was on in its current check when it ended (a Case), or None."""
        return self.last_case

    def messages(self):
        """Yield (kind, payload) as the worker sends them until it ends; afterwards :attr:`death` is
        None if it finished (it sent its last message and exited), else how it died."""
        while True:
            try:
                ready = self.conn.poll(POLL_S)
            except (EOFError, OSError):
                ready = True
            if ready:
                try:
                    data = self.conn.recv_bytes()
                except (EOFError, OSError):
                    self._ended()
                    return
                kind, msg = data[:1], pickle.loads(data[1:])
                if kind == STAGE:
                    self.stage = msg
                yield kind, msg
                if kind in (REPORT, RAISE, RESULT):
                    self._finish()
                    return
                continue
            if self.timeout and self.clock.overdue(self.timeout):
                self.kill()
                self.last_case = self.slot.read()
                self.death = Death(hung=True, stderr=self.stderr_tail())
                return
            if self.proc.poll() is not None and not self.conn.poll(0):
                self._ended()
                return

    def _ended(self) -> None:
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its pipe closed but it lives on: end it
            self.kill()
            code = self.proc.returncode
        sig, exit_code = death_text(code)
        self.last_case = self.slot.read()
        self.death = Death(signal=sig, exit_code=exit_code, stderr=self.stderr_tail())

    def _finish(self) -> None:
        """Its work is done: it exits by itself, or is killed (a call it abandoned may still run)."""
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        self.close()

    def stderr_tail(self, n: int = 10) -> tuple[str, ...]:
        """The worker's last ``n`` lines of output; after a fatal signal, from Python's "Fatal Python
        error" line on (the innermost frames first), the list of extension modules left out."""
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ()
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        fatal = [k for k, line in enumerate(lines) if line.startswith("Fatal Python error")]
        if fatal:
            after = lines[fatal[-1] + 1 :]
            current = next((k for k, line in enumerate(after) if line.startswith("Current thread")), 0)
            lines = [lines[fatal[-1]], *(x for x in after[current:] if not x.startswith("Extension modules"))][:n]
        return tuple(line[:300] for line in lines[-n:])

    def kill(self) -> None:
        """End the worker and anything it started (its process group), and wait for it."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        self.kill()
        self.conn.close()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)


def importable_ref(fn) -> tuple[str | None, str]:
    """(a ``module:attr`` or ``file.py:attr`` reference a fresh process loads ``fn`` by, or None;
    why not, when None)."""
    if isinstance(fn, str):
        return fn, ""
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not mod or not qual:
        return None, "it has no module and name to be loaded by"
    if "<" in qual:
        return None, f"{qual} is defined inside a function"
    module = sys.modules.get(mod)
    if mod == "__main__" or module is None:
        return None, "it is defined in the main script"
    obj = module
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    if obj is not fn:
        return None, f"{mod}.{qual} is not the object given"
    if mod.startswith("_normcheck_target_"):  # loaded from a file by path
        path = getattr(module, "__file__", None)
        return (f"{path}:{qual}", "") if path else (None, "its file is unknown")
    return f"{mod}:{qual}", ""
