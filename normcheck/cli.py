"""The ``normcheck`` command line. Parsing imports nothing heavy: ``normcheck --help`` loads no
framework and no NumPy; each subcommand (``normcheck/commands/<name>.py``) imports what it needs
when it runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

FRAMEWORKS = ("numpy", "torch", "jax", "tensorflow", "onnxruntime")
PROFILES = ("quick", "dev", "ci", "default", "thorough")
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


def write_text(path: str, text: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def _parser() -> argparse.ArgumentParser:
    from normcheck import __version__, commands

    p = argparse.ArgumentParser(
        prog="normcheck",
        description="Property testing and numerical audit of normalization layers "
        "(BatchNorm, LayerNorm, InstanceNorm, GroupNorm, RMSNorm) across NumPy, PyTorch, JAX and TensorFlow.",
    )
    p.add_argument("--version", action="version", version=f"normcheck {__version__}")
    p.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in commands.names():
        mod = commands.load(name)
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run)
    return p


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
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
        if args.verbose or os.environ.get("NORMCHECK_DEBUG"):
            raise
        print(
            f"normcheck {args.command}: error: {type(e).__name__}: {e} (run with --verbose for the traceback)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
