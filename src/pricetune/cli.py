"""The ``pricetune`` command: ``pricetune demo`` and ``pricetune plugins``."""

from __future__ import annotations

import argparse
import json
import sys


def _demo(args: argparse.Namespace) -> int:
    from pricetune.demo import plot_demo, run_demo

    params = {}
    if args.quick:
        # a smoke run: the same pipeline with a 1-layer MiniLM and few epochs
        params = {"backbone_kwargs": {"n_layers": 1}, "max_epochs": 3}
    result = run_demo(
        holdout=args.holdout,
        max_epochs=args.max_epochs,
        random_state=args.seed,
        device=args.device,
        verbose=0 if args.no_progress else 1,
        forecaster_params=params,
    )
    train, test = result.y_train.index, result.y_test.index
    print(
        f"\nBrent monthly: trained on {train[0]}..{train[-1]}, "
        f"tested on the {len(test)} months to {test[-1]}\n"
    )
    print(result.table.to_string(float_format=lambda v: f"{v:.3f}"))
    for note in result.notes:
        print(f"note: {note}")
    path = plot_demo(result, args.output)
    print(f"\nplot written to {path}")
    return 0


def _plugins(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pricetune",
        description="Fine-tune pretrained models to forecast commodity prices.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo",
        help="fine-tune on monthly Brent and compare with naive and AutoARIMA",
    )
    demo.add_argument("--holdout", type=int, default=12, help="months held out (12)")
    demo.add_argument("--max-epochs", type=int, default=None, help="default: 30")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="auto", help="auto, cpu, cuda...")
    demo.add_argument("--output", default="pricetune-demo.png", help="PNG plot path")
    demo.add_argument("--quick", action="store_true", help="1-layer MiniLM, 3 epochs")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)

    plugins = commands.add_parser("plugins", help="list registered components")
    plugins.add_argument("--json", action="store_true", help="machine-readable")
    plugins.set_defaults(run=_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
