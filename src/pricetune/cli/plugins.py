"""``pricetune plugins``: every registered component and the distribution
that provides it."""

from __future__ import annotations

import argparse
import json


def run_plugins(args: argparse.Namespace) -> int:
    from pricetune.plugins import broken_plugins, list_components

    rows = [
        {
            "kind": info.kind,
            "name": info.name,
            "distribution": info.distribution,
            "version": info.version,
            "class": info.class_path,
        }
        for info in list_components()
    ]
    broken = [vars(plugin) for plugin in broken_plugins()]
    if args.json:
        print(json.dumps({"components": rows, "broken": broken}, indent=2))
        return 0
    columns = ["kind", "name", "distribution", "version", "class"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    for plugin in broken:
        print(
            f"skipped plugin {plugin['name']!r} ({plugin['distribution']}) at "
            f"{plugin['stage']}: {plugin['error']}"
        )
    return 0


def add_parser(commands) -> None:
    plugins = commands.add_parser("plugins", help="list registered components")
    plugins.add_argument("--json", action="store_true", help="machine-readable")
    plugins.set_defaults(run=run_plugins)
