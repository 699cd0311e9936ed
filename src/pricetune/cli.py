"""The ``pricetune`` command: ``pricetune demo``, ``pricetune backtest`` and
``pricetune plugins``."""

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


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _backtest_params(args: argparse.Namespace) -> dict:
    params = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--param takes KEY=VALUE, got {item!r}")
        params[key.strip()] = _parse_value(value)
    if args.max_epochs is not None:
        params["max_epochs"] = args.max_epochs
    return params


# the runs behind docs/accuracy.md: (label, data, horizon, step)
SUITE = (
    ("monthly", "monthly", 12, 12),
    ("daily", "daily", 20, 20),
)
# daily series are long (10,000 days): every model fits on the last 4 years
# of business days at each origin, so that a CPU run stays well under an hour
DAILY_HISTORY = 1040
# the suite's ablation keeps MiniLM's first 2 of 6 layers (CPU time)
SUITE_ABLATION_LAYERS = 2


def _run_backtest(args, label, data, horizon, step, models, ablation, output):
    from pricetune.backtesting import ablation as run_ablation
    from pricetune.backtesting import backtest

    n_origins = args.origins
    gap = args.gap
    if args.validation:
        # the origins before the evaluation ones: tune there, report on these
        gap = (gap if gap is not None else horizon) + n_origins * (step or horizon)
    common = {
        "horizon": horizon,
        "n_origins": n_origins,
        "step": step,
        "gap": gap,
        "frequency": args.frequency,
        "quick": args.quick,
        "seed": args.seed,
        "device": args.device,
        "dm_loss": args.dm_loss,
        "output_dir": output,
        "plots": not args.no_plots,
        "verbose": args.verbose,
    }
    if label == "daily" or args.frequency == "daily" or data == "daily":
        common["max_history"] = DAILY_HISTORY
    params = _backtest_params(args)
    if ablation:
        backbone_kwargs = (
            {"n_layers": args.ablation_layers} if args.ablation_layers else None
        )
        if args.quick:
            backbone_kwargs = {"n_layers": 1}
        result = run_ablation(
            data,
            backbone=args.backbone,
            backbone_kwargs=backbone_kwargs,
            params=params,
            **common,
        )
    else:
        result = backtest(data, models, params=params, **common)
    cutoffs = ", ".join(str(c) for c in result.cutoffs)
    print(
        f"\n{label}: {', '.join(result.config['series'])}; horizon {horizon}; "
        f"{len(result.cutoffs)} origins ({cutoffs})\n"
    )
    print(result.to_string())
    for note in result.notes:
        print(f"note: {note}")
    if output is not None:
        print(f"results written to {output}")
    return result


def _backtest(args: argparse.Namespace) -> int:
    from pathlib import Path

    models = None
    if args.models:
        models = [name.strip() for name in args.models.split(",") if name.strip()]
    output = None if args.output_dir in ("", "-") else Path(args.output_dir)
    if args.suite:
        runs = [
            (label, data, horizon, step, False) for label, data, horizon, step in SUITE
        ]
        runs.append(("ablation", "monthly", 12, 12, True))
        if args.quick:  # a smoke run of the whole suite: two series each
            runs = [
                ("monthly", "brent,wti", 12, 12, False),
                ("daily", "brent,wti", 20, 20, False),
                ("ablation", "brent,wti", 12, 12, True),
            ]
        for label, data, horizon, step, ablation in runs:
            frequency = "daily" if label == "daily" else args.frequency
            layers = args.ablation_layers or SUITE_ABLATION_LAYERS
            args_for_run = argparse.Namespace(
                **{**vars(args), "frequency": frequency, "ablation_layers": layers}
            )
            _run_backtest(
                args_for_run,
                label,
                data,
                horizon,
                step,
                models,
                ablation,
                None if output is None else output / label,
            )
        return 0
    data = args.data
    if data is None:
        data = "brent,wti" if args.quick else "monthly"
    _run_backtest(
        args, str(data), data, args.horizon, args.step, models, args.ablation, output
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

    bt = commands.add_parser(
        "backtest",
        help="rolling-origin backtest of pricetune and baseline models",
        description=(
            "Rolling-origin (expanding window) backtest on shared cut-offs: "
            "relative MAE against no-change, MASE, sMAPE, MSPE ratio, "
            "directional accuracy, weighted quantile loss, CRPS, 80%% coverage "
            "and a Diebold-Mariano test against no-change. Writes CSV, JSON and "
            "PNG plots to --output-dir."
        ),
    )
    bt.add_argument(
        "--data",
        default=None,
        help="'monthly' (default: Brent, WTI, Henry Hub, gold), 'daily', "
        "'pinksheet' (63 World Bank commodity series, monthly, 1960-2011), "
        "dataset names ('brent,wti') or a CSV file",
    )
    bt.add_argument(
        "--frequency", default=None, help="for dataset names: monthly, weekly, daily"
    )
    bt.add_argument(
        "--models",
        default=None,
        help="comma-separated names (default: naive, drift, autoarima, autoets, "
        "theta, lstm, gru, default, fracast when installed)",
    )
    bt.add_argument("--horizon", type=int, default=12, help="steps ahead (12)")
    bt.add_argument("--origins", type=int, default=5, help="number of origins (5)")
    bt.add_argument("--step", type=int, default=None, help="default: the horizon")
    bt.add_argument(
        "--gap",
        type=int,
        default=None,
        help="steps between the last cut-off and the end of the data "
        "(default: the horizon)",
    )
    bt.add_argument(
        "--validation",
        action="store_true",
        help="use the origins just before the evaluation ones (for tuning)",
    )
    bt.add_argument(
        "--ablation",
        action="store_true",
        help="the language-model ablation: pretrained backbone (full, frozen, "
        "layernorm, lora), random weights, no backbone",
    )
    bt.add_argument("--backbone", default="minilm", help="backbone of --ablation")
    bt.add_argument(
        "--ablation-layers",
        type=int,
        default=None,
        help="keep the backbone's first N layers in --ablation (default: all; "
        "--suite uses 2 to stay well under an hour on a CPU)",
    )
    bt.add_argument(
        "--suite",
        action="store_true",
        help="the suite of docs/accuracy.md: monthly, daily and the ablation",
    )
    bt.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: tiny models, 2 series, naive/drift/theta/none/lstm",
    )
    bt.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="FineTunedPriceForecaster parameter for the pricetune models "
        "(repeatable; VALUE is JSON or a string)",
    )
    bt.add_argument("--max-epochs", type=int, default=None)
    bt.add_argument("--seed", type=int, default=0)
    bt.add_argument("--device", default="auto", help="auto, cpu, cuda...")
    bt.add_argument("--dm-loss", default="squared", choices=["squared", "absolute"])
    bt.add_argument(
        "--output-dir",
        default="pricetune-backtest",
        help="where CSV/JSON/PNG go ('-' for none)",
    )
    bt.add_argument("--no-plots", action="store_true")
    bt.add_argument("--verbose", type=int, default=1, help="1: a line per fit")
    bt.set_defaults(run=_backtest)

    plugins = commands.add_parser("plugins", help="list registered components")
    plugins.add_argument("--json", action="store_true", help="machine-readable")
    plugins.set_defaults(run=_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
