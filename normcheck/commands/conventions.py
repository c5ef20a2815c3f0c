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
    from normcheck.adapters import FRAMEWORKS
    from normcheck.cli import csv_choices

    p.add_argument(
        "--frameworks", type=csv_choices(FRAMEWORKS), metavar="LIST", help="comma-separated subset (default: installed)"
    )
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")


#: Columns whose cells are names (never wrapped while the width allows); the first one present is
#: repeated in each part when a table is split to fit the width.
NAMES = ("api", "framework")
GAP = "  "
#: Headers up to this long stay on one line.
SHORT_HEADER = 12


def terminal_width() -> int:
    """The terminal's width (``COLUMNS`` wins); 100 when the output is not a terminal."""
    import shutil

    return max(40, shutil.get_terminal_size((100, 24)).columns)


def _words(text: str) -> list[str]:
    return text.split() or [""]


def _min_width(header: str, cells: list[str], name: bool) -> int:
    natural = max([len(header), *map(len, cells)])
    if name:
        return natural
    longest = max(len(w) for t in cells for w in _words(t)) if cells else 0
    head = len(header) if len(header) <= SHORT_HEADER else max(map(len, _words(header)))
    return min(natural, max(longest, head))


def _widths(natural: list[int], minimum: list[int], room: int) -> list[int]:
    """Column widths that fill ``room``: each its natural width if they all fit, else its minimum
    plus a share of what is left, the widest columns served first."""
    if sum(natural) <= room:
        return natural
    widths = list(minimum)
    spare = room - sum(widths)
    while spare > 0:
        grow = [i for i, w in enumerate(widths) if w < natural[i]]
        if not grow:
            break
        share = max(1, spare // len(grow))
        for i in sorted(grow, key=lambda i: widths[i] - natural[i]):
            step = min(share, natural[i] - widths[i], spare)
            widths[i] += step
            spare -= step
            if spare <= 0:
                break
    return widths


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def _render(cells: list[list[str]], headers: list[str], widths: list[int]) -> list[str]:
    def block(row: list[str]) -> list[str]:
        wrapped = [_wrap(c, w) for c, w in zip(row, widths)]
        height = max(map(len, wrapped))
        return [
            GAP.join((w[k] if k < len(w) else "").ljust(width) for w, width in zip(wrapped, widths)).rstrip()
            for k in range(height)
        ]

    out = [*block(headers), GAP.join("-" * w for w in widths)]
    for row in cells:
        out += block(row)
    return out


def table(rows, columns, width: int | None = None) -> str:
    """A plain-text table of ``rows`` (dicts) with ``columns`` ((key, header) pairs), no line
    longer than ``width`` (default: the terminal's, see :func:`terminal_width`): long cells wrap
    at spaces; a table whose columns cannot all fit is split into parts that repeat the name
    column (the layer)."""
    width = width or terminal_width()
    keys = [k for k, _ in columns]
    headers = [h for _, h in columns]
    cells = [[str(r.get(k, "")) for k in keys] for r in rows]
    cols = [[c[i] for c in cells] for i in range(len(keys))]
    natural = [max([len(h), *map(len, col)]) for h, col in zip(headers, cols)]
    minimum = [_min_width(h, col, k in NAMES) for k, h, col in zip(keys, headers, cols)]
    # the name columns are kept whole only while they leave room for one more column beside them
    for i, k in enumerate(keys):
        if k in NAMES and minimum[i] > width // 2:
            minimum[i] = min(natural[i], max(len(w) for t in [headers[i], *cols[i]] for w in _words(t)), width // 2)
    anchor = next((i for i, k in enumerate(keys) if k in NAMES[:1]), 0)
    parts: list[list[int]] = []
    part: list[int] = []
    for i in range(len(keys)):
        trial = [*part, i]
        if part and sum(minimum[j] for j in trial) + len(GAP) * (len(trial) - 1) > width:
            parts.append(part)
            part = [anchor, i] if i != anchor else [i]
        else:
            part = trial
    parts.append(part)
    out: list[str] = []
    for n, part in enumerate(parts):
        room = width - len(GAP) * (len(part) - 1)
        mins = [
            min(minimum[i], max(1, room // len(part))) if sum(minimum[j] for j in part) > room else minimum[i]
            for i in part
        ]
        ws = _widths([natural[i] for i in part], mins, room)
        if n:
            out.append("")
        out += _render([[row[i] for i in part] for row in cells], [headers[i] for i in part], ws)
    return "\n".join(out)


def _notes(rows, width: int) -> list[str]:
    import textwrap

    out = []
    for r in rows:
        if r.get("notes"):
            out += textwrap.wrap(
                f"{r['api']}: {r['notes']}", width, subsequent_indent="    ", break_on_hyphens=False
            ) or [""]
    return out


def run(args) -> int:
    from normcheck import conventions
    from normcheck.cli import write_text

    width = terminal_width()
    rows = conventions.measure_all(args.frameworks)
    print(table(rows, MAIN, width))
    stateful = [r for r in rows if r.get("norm") in ("batch_norm", "instance_norm") and r.get("momentum_none") != "—"]
    if stateful:
        print()
        print(table(stateful, EDGES, width))
    notes = _notes(rows, width)
    if notes:
        print()
        print("\n".join(notes))
    if args.json:
        write_text(args.json, json.dumps(rows, indent=2, ensure_ascii=False))
    return 0
