"""The ``normcheck`` command line. Parsing imports nothing heavy: ``normcheck --help`` loads no
framework and no NumPy; each subcommand (``normcheck/commands/<name>.py``) imports what it needs
when it runs."""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from normcheck.profiles import PROFILES as _PROFILES

PROFILES = tuple(_PROFILES)
DTYPES = ("float64", "float32", "float16", "bfloat16")


class CLIError(Exception):
    """A one-line error for the user (exit status 2)."""


def csv_choices(choices):
    """argparse type: a comma-separated subset of ``choices``."""

    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(bad)}; choose from {', '.join(choices)}")
        return items

    return parse


def name_value(text: str) -> tuple[str, object]:
    """argparse type: NAME=VALUE, the value a Python literal or else a plain word (a string:
    data_format=channels_first)."""
    import ast

    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    try:
        return name, ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return name, value.strip()


def write_text(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


#: NumPy's floating-point RuntimeWarnings (the code under test computing on NaN, Inf, zero
#: variance, ...: the checks judge the values, the warnings only repeat them).
NUMPY_FP_WARNINGS = (
    "invalid value encountered",
    "divide by zero encountered",
    "overflow encountered",
    "underflow encountered",
    "Mean of empty slice",
    "Degrees of freedom <= 0",
)


def quiet_environment() -> None:
    """Set the frameworks' logging defaults (:func:`normcheck.adapters.log_env`; an explicit setting
    wins): they only change what is logged. Call before any framework import; workers inherit them."""
    from normcheck import adapters

    for k, v in adapters.log_env().items():
        os.environ.setdefault(k, v)


@contextmanager
def numpy_warnings_silenced():
    """NumPy's floating-point RuntimeWarnings ignored, in this process and (through
    ``PYTHONWARNINGS``) in the worker processes it starts meanwhile; the previous filters after."""
    ours = ",".join(f"ignore:{m}:RuntimeWarning" for m in NUMPY_FP_WARNINGS)
    before = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ours + ("," + before if before else "")  # the user's own settings win
    try:
        with warnings.catch_warnings():
            for m in NUMPY_FP_WARNINGS:
                warnings.filterwarnings("ignore", message=re.escape(m), category=RuntimeWarning)
            yield
    finally:
        if before is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = before


class _NativeLogFilter:
    """File descriptor 2 (what native code and child processes write to) through a pipe whose
    lines the frameworks' native log pattern (:func:`normcheck.adapters.native_log_line`) does not
    match are copied to the real stderr; Python's own ``sys.stderr`` writes straight to the real
    stderr (progress bars stay live)."""

    def __init__(self) -> None:
        from normcheck import adapters

        self.native = adapters.native_log_line()
        sys.stderr.flush()
        self.saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.read = read
        self.stderr = sys.stderr
        self.direct = None
        try:
            direct = sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):  # a replaced sys.stderr (pytest's capsys, ...)
            direct = False
        if direct:
            self.direct = sys.stderr = open(  # closed in close(); the descriptor stays open
                self.saved,
                "w",
                buffering=1,
                encoding=getattr(self.stderr, "encoding", None) or "utf-8",
                errors="backslashreplace",
                closefd=False,
            )
        self.thread = threading.Thread(target=self._pump, name="normcheck-stderr-filter", daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self.read, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            self._write(b"".join(line + b"\n" for line in lines if not self.native.match(line)))
        if pending and not self.native.match(pending):
            self._write(pending)
        os.close(self.read)

    def _write(self, data: bytes) -> None:
        while data:
            try:
                n = os.write(self.saved, data)
            except OSError:
                return
            data = data[n:]

    def close(self) -> None:
        if self.direct is not None:
            try:
                self.direct.close()  # flushes; closefd=False keeps the descriptor
            finally:
                if sys.stderr is self.direct:
                    sys.stderr = self.stderr
        os.dup2(self.saved, 2)  # closes this process's end of the pipe: the pump sees EOF
        self.thread.join(timeout=2.0)  # unless a leftover child process still holds the pipe
        os.close(self.saved)


@contextmanager
def native_logs_filtered(enabled: bool = True):
    """Drop the frameworks' native log lines (:func:`normcheck.adapters.native_log_line`) from stderr meanwhile."""
    f = None
    if enabled:
        try:
            f = _NativeLogFilter()
        except OSError:  # no file descriptor 2 to redirect: nothing to filter either
            f = None
    try:
        yield
    finally:
        if f is not None:
            f.close()


def _parser() -> argparse.ArgumentParser:
    from normcheck import __version__, commands

    p = argparse.ArgumentParser(
        prog="normcheck",
        description="Property testing and numerical audit of normalization layers "
        "(BatchNorm, LayerNorm, InstanceNorm, GroupNorm, RMSNorm) across NumPy, PyTorch, JAX, TensorFlow "
        "and ONNX Runtime.",
    )
    p.add_argument("--version", action="version", version=f"normcheck {__version__}")
    p.add_argument(
        "--verbose", action="store_true", help="show tracebacks on errors and the frameworks' native log lines"
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands.names():
        mod = commands.load(name)
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


def main(argv=None) -> int:
    quiet_environment()  # before anything imports a framework (the workers inherit it)
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    verbose = args.verbose or bool(os.environ.get("NORMCHECK_DEBUG"))
    try:
        with native_logs_filtered(not verbose):
            return args._run(args)
    except CLIError as e:
        print(f"normcheck {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as e:
        if verbose:
            raise
        print(
            f"normcheck {args.command}: error: {type(e).__name__}: {e} (run with --verbose for the traceback)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
