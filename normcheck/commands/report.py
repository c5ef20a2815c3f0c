"""`normcheck report`: render saved result documents as a self-contained HTML report, merging the
shards of one audit or comparing audits of other versions and machines side by side."""

from __future__ import annotations

import json

from normcheck.cli import CLIError, write_text

HELP = "render saved --json result documents as an HTML report (shards merged, other runs side by side)"


def add_arguments(p) -> None:
    p.add_argument(
        "json",
        metavar="RESULTS.json",
        nargs="+",
        help="documents written by `normcheck audit --json`: one, the n shards of one audit "
        "(`--shard i/n`), or audits of other versions or machines to compare",
    )
    p.add_argument("--html", metavar="PATH", help="where to write the HTML report")
    p.add_argument("--json-out", "--merged-json", dest="json_out", metavar="PATH", help="write the merged document")
    p.add_argument(
        "--bench", metavar="BENCH.json", help="attach a saved `normcheck bench --json` document (benchmark section)"
    )


def _comparison_lines(doc) -> list[str]:
    runs = doc["run"]["runs"]
    lines = [f"  {r['label']}" for r in runs]
    differ = {k: v for k, v in doc["compare"].items() if len({str(c) for c in v if c is not None}) > 1}
    lines.append(f"{len(differ)} of {len(doc['compare'])} checks differ between the runs")
    for key, cells in list(differ.items())[:40]:
        lines.append(f"  {key}: " + "  ".join(f"[{k + 1}] {c or '—'}" for k, c in enumerate(cells)))
    for fid, fws in doc["finding_versions"].items():
        lines.append(f"  finding {fid} observed in " + "; ".join(f"{fw} {', '.join(v)}" for fw, v in fws.items()))
    return lines


def run(args) -> int:
    from normcheck import audit
    from normcheck.report import load_audit

    if not args.html and not args.json_out:
        raise CLIError("nothing to write: give --html PATH and/or --json-out PATH")
    try:
        doc = audit.merge([load_audit(p) for p in args.json])
        if args.bench:
            from normcheck.bench.run import load, report_section

            doc["bench"] = report_section(load(args.bench))
    except ValueError as e:
        raise CLIError(str(e)) from None
    if "compare" in doc:
        print("\n".join(["compared:", *_comparison_lines(doc)]))
    elif len(args.json) > 1:
        print(f"merged {len(args.json)} shards: {len(doc['records'])} records, summary {doc['summary']}")
    if args.json_out:
        write_text(args.json_out, json.dumps(doc, indent=1, allow_nan=False))
        print(f"results: {args.json_out}")
    if args.html:
        from normcheck.report import write_html

        try:
            path = write_html(doc, args.html)
        except (ImportError, OSError, ValueError) as e:
            raise CLIError(str(e)) from None
        print(f"report:  {path}")
    return 0
