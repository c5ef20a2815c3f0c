"""`normcheck report`: render a saved result document as a self-contained HTML report."""

from __future__ import annotations

from normcheck.cli import CLIError

HELP = "render a saved --json result document as a self-contained HTML report"


def add_arguments(p) -> None:
    p.add_argument("json", metavar="RESULTS.json", help="a document written by `normcheck audit --json`")
    p.add_argument("--html", metavar="PATH", required=True, help="where to write the HTML report")
    p.add_argument(
        "--bench", metavar="BENCH.json", help="attach a saved `normcheck bench --json` document (benchmark section)"
    )


def run(args) -> int:
    from normcheck.report import main_report

    try:
        path = main_report(args.json, args.html, bench=args.bench)
    except (ValueError, ImportError, OSError) as e:
        raise CLIError(str(e)) from None
    print(f"report:  {path}")
    return 0
