"""`normcheck frameworks`: installed frameworks, versions, devices and supported norms."""

from __future__ import annotations

import json
from pathlib import Path

HELP = "installed frameworks, versions, devices and supported norms"


def add_arguments(p) -> None:
    p.add_argument("--json", metavar="PATH", help="also write the listing as JSON")


def run(args) -> int:
    from normcheck import adapters, spec

    rows = []
    for name in adapters.FRAMEWORKS:
        a = adapters.get(name)
        if not a.available():
            rows.append({"framework": name, "installed": False})
            print(f"{name:<11} not installed (pip install 'normcheck[{name}]')")
            continue
        impls = a.implementations()
        devices = a.devices()
        forms: dict[str, list[str]] = {}
        for i in impls:
            forms.setdefault(i.norm, []).append(
                i.form
                + ("" if i.layout == "channels_first" else f"[{i.layout}]")
                + ("" if i.mode == "eager" else f"[{i.mode}]")
                + ("*" if i.extended else "")
            )
        rows.append({"framework": name, "installed": True, "version": a.version(), "devices": devices, "norms": forms})
        print(f"{name:<11} {a.version() or '?':<12} devices: {', '.join(devices)}")
        for norm in spec.names():
            print(f"    {norm:<14} {', '.join(dict.fromkeys(forms.get(norm, []))) or 'unsupported'}")
    print("* extended variant: audited by the thorough profile or `normcheck audit --all-forms`")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0
