"""`normcheck conventions`: default eps, momentum convention, stored variance, channel axis and the
train/eval switch of every installed framework's norm layers, each cell measured by running them."""

from __future__ import annotations

import json

HELP = (
    "conventions table (eps, momentum, stored variance, channel axis, train/eval), measured by running each framework"
)

#: (column, header) of the main table and of the state edge-case table.
MAIN = (
    ("framework", "framework"),
    ("api", "layer"),
    ("default_eps", "default eps"),
    ("momentum", "momentum convention"),
    ("momentum_default", "default momentum"),
    ("stored_variance", "stored running var"),
    ("channel_axis", "channel axis"),
    ("train_eval", "train/eval switch"),
)
EDGES = (
    ("api", "layer"),
    ("momentum_none", "momentum=None"),
    ("one_value_training", "one value per channel, training"),
    ("untracked_eval", "eval without tracked statistics"),
)


def add_arguments(p) -> None:
    from normcheck.cli import FRAMEWORKS, csv_choices

    p.add_argument(
        "--frameworks", type=csv_choices(FRAMEWORKS), metavar="LIST", help="comma-separated subset (default: installed)"
    )
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")


def table(rows, columns) -> str:
    """A plain-text table of ``rows`` (dicts) with ``columns`` ((key, header) pairs)."""
    cells = [[str(r.get(k, "")) for k, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
    line = "  ".join(h.ljust(w) for (_, h), w in zip(columns, widths)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(out)


def run(args) -> int:
    from normcheck import conventions
    from normcheck.cli import write_text

    rows = conventions.measure_all(args.frameworks)
    print(table(rows, MAIN))
    stateful = [r for r in rows if r.get("norm") in ("batch_norm", "instance_norm") and r.get("momentum_none") != "—"]
    if stateful:
        print()
        print(table(stateful, EDGES))
    notes = [f"{r['api']}: {r['notes']}" for r in rows if r.get("notes")]
    if notes:
        print()
        print("\n".join(notes))
    if args.json:
        write_text(args.json, json.dumps(rows, indent=2, ensure_ascii=False))
    return 0
