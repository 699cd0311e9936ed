"""``pricetune backtest``: the rolling-origin backtest of the command
line, and ``--suite``, the runs behind docs/accuracy.md."""

from __future__ import annotations

import argparse

from pricetune.cli.options import add_data_file_options
from pricetune.cli.params import parse_params

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
        "missing": args.missing,
        "quick": args.quick,
        "seed": args.seed,
        "device": args.device,
        "dm_loss": args.dm_loss,
        "output_dir": output,
        "resume": not args.fresh,
        "plots": not args.no_plots,
        "verbose": args.verbose,
    }
    if args.max_history is not None:
        common["max_history"] = args.max_history
    elif label == "daily" or args.frequency == "daily" or data == "daily":
        common["max_history"] = DAILY_HISTORY
    params, model_params = parse_params(args.param, models)
    if args.max_epochs is not None:
        params["max_epochs"] = args.max_epochs
    if model_params:
        common["model_params"] = model_params
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
    series = result.config["series"]
    shown = ", ".join(series[:8]) + (
        f" and {len(series) - 8} more" if len(series) > 8 else ""
    )
    n = len(result.cutoffs)
    print(
        f"\n{label}: {len(series)} series ({shown}); horizon {horizon}; "
        f"{n} origin{'s' if n != 1 else ''} ({cutoffs})\n"
    )
    print(result.to_string())
    for note in result.notes:
        print(f"note: {note}")
    if output is not None:
        print(f"results written to {output}")
    return result


def run_backtest(args: argparse.Namespace) -> int:
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


def add_parser(commands) -> None:
    bt = commands.add_parser(
        "backtest",
        help="rolling-origin backtest of pricetune and baseline models",
        description=(
            "Rolling-origin (expanding window) backtest on shared cut-offs: "
            "relative MAE against no-change, MASE, sMAPE, MSPE ratio, "
            "directional accuracy, weighted quantile loss, CRPS, 80% coverage "
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
    add_data_file_options(bt)
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
        help="FineTunedPriceForecaster parameter for every pricetune model, "
        "or MODEL:KEY=VALUE for one (repeatable; VALUE is JSON or a string)",
    )
    bt.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="cap on the pricetune models' epochs",
    )
    bt.add_argument(
        "--max-history",
        type=int,
        default=None,
        help="fit every model on the last N values of each series at each "
        f"origin (default: all of them; {DAILY_HISTORY} for daily data)",
    )
    bt.add_argument("--seed", type=int, default=0, help="random seed (0)")
    bt.add_argument("--device", default="auto", help="auto, cpu, cuda...")
    bt.add_argument(
        "--dm-loss",
        default="squared",
        choices=["squared", "absolute"],
        help="loss of the Diebold-Mariano test (squared)",
    )
    bt.add_argument(
        "--output-dir",
        default="pricetune-backtest",
        help="where CSV/JSON/PNG go ('-' for none)",
    )
    bt.add_argument("--no-plots", action="store_true", help="no PNG plots")
    bt.add_argument(
        "--fresh",
        action="store_true",
        help="refit everything: ignore the finished fits checkpointed in "
        "--output-dir (by default a run started again with the same output "
        "directory continues where it stopped)",
    )
    bt.add_argument(
        "--verbose", type=int, default=1, help="0: quiet, 1: a line per fit (default)"
    )
    bt.set_defaults(run=run_backtest)
