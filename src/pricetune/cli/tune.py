"""``pricetune tune``: an Optuna search over FineTunedPriceForecaster's
settings, scored over rolling origins, with pruning (the work is
:func:`pricetune.tuning.tune`). Needs ``pip install 'pricetune[optuna]'``."""

from __future__ import annotations

import argparse

from pricetune.cli.errors import USAGE, CommandError
from pricetune.cli.options import add_data_file_options

#: pricetune.tuning.METRICS, spelled out: importing it would load the
#: backtest (pandas) for every command's --help
METRICS = ("relMAE", "MASE", "sMAPE", "MSPE ratio", "wQL", "sCRPS")


def _space(args):
    """The --space dict, checked before anything is fitted (a usage error)."""
    from pricetune.cli.params import forecaster_parameters
    from pricetune.tuning.space import check_space, read_space

    if args.space is None:
        return None
    try:
        space = read_space(args.space)
        check_space(space, forecaster_parameters(), default=not args.no_default_space)
    except (ValueError, TypeError) as error:
        raise CommandError(f"--space: {error}", USAGE) from None
    return space


def run_tune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pricetune.cli.params import parse_params
    from pricetune.tuning.search import import_optuna, tune

    import_optuna()  # before any work: a one-line ImportError saying how
    for name, value in (("--trials", args.trials), ("--origins", args.origins)):
        if value is not None and value < 1:
            raise CommandError(f"{name} must be at least 1, got {value}", USAGE)
    if args.timeout is not None and not args.timeout > 0:
        raise CommandError(f"--timeout must be positive, got {args.timeout}", USAGE)
    space = _space(args)
    params, per_model = parse_params(args.param)
    if per_model:
        raise CommandError("--param takes KEY=VALUE here (one model)", USAGE)
    both = sorted(set(params) & set(space or {}))
    if both:
        raise CommandError(
            f"{both[0]!r} is both in --space and a --param; keep one", USAGE
        )
    params.setdefault("device", args.device)
    result = tune(
        args.data,
        space,
        params=params,
        n_trials=args.trials,
        timeout=args.timeout,
        n_origins=args.origins,
        horizon=args.horizon,
        step=args.step,
        metric=args.metric,
        default_space=not args.no_default_space,
        seed=args.seed,
        frequency=args.frequency,
        missing=args.missing,
        refit=False,  # the command reports; a forecast is `pricetune forecast`
        verbose=args.verbose,
    )
    cutoffs = ", ".join(str(c) for c in result.cutoffs)
    series = result.config["series"]
    shown = ", ".join(series[:8]) + (
        f" and {len(series) - 8} more" if len(series) > 8 else ""
    )
    print(
        f"\n{len(series)} series ({shown}); horizon {args.horizon}; "
        f"{len(result.cutoffs)} origins ({cutoffs}); minimising {result.metric}\n"
    )
    print(result.to_string())
    for note in result.notes:
        print(f"note: {note}")
    if args.output_dir not in ("", "-"):
        paths = result.save(Path(args.output_dir))
        print(f"trials and best settings written to {paths['best'].parent}")
    return 0


def add_parser(commands) -> None:
    tune = commands.add_parser(
        "tune",
        help="search the forecaster's settings with Optuna (pruning bad trials)",
        description=(
            "An Optuna search (TPE, median pruning) over FineTunedPriceForecaster "
            "settings, each trial scored over rolling origins (expanding window) "
            "like `pricetune backtest`; a trial whose validation loss falls behind "
            "the others' is stopped early (pruned). Prints the trials and the best "
            "settings; writes trials.csv and best.json to --output-dir. Needs "
            "pip install 'pricetune[optuna]'."
        ),
    )
    tune.add_argument(
        "--data",
        default="monthly",
        help="'monthly' (default: Brent, WTI, Henry Hub, gold), 'daily', "
        "'pinksheet', dataset names ('brent,wti') or a CSV file",
    )
    add_data_file_options(tune)
    tune.add_argument("--trials", type=int, default=20, help="number of trials (20)")
    tune.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="stop starting trials after this many seconds (default: none)",
    )
    tune.add_argument("--horizon", type=int, default=12, help="steps ahead (12)")
    tune.add_argument(
        "--origins", type=int, default=3, help="rolling origins per trial (3)"
    )
    tune.add_argument("--step", type=int, default=None, help="default: the horizon")
    tune.add_argument(
        "--space",
        default=None,
        metavar="JSON_OR_FILE",
        help='the search space, JSON or a JSON file: {"learning_rate": ["log", '
        '1e-4, 1e-2], "backbone": ["lstm", "none"], "max_epochs": ["int", 5, 20, '
        '5], "batch_size": 32} (ranges "float", "log", "int"; other lists are '
        "choices; anything else is fixed); its entries replace the default "
        "space's (docs/tuning.md)",
    )
    tune.add_argument(
        "--no-default-space",
        action="store_true",
        help="search --space alone, not on top of the default space",
    )
    tune.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="a fixed FineTunedPriceForecaster parameter of every trial "
        "(repeatable; VALUE is JSON or a string)",
    )
    tune.add_argument(
        "--metric",
        default="relMAE",
        choices=METRICS,
        help="what the search minimises over the origins (relMAE)",
    )
    tune.add_argument("--seed", type=int, default=0, help="random seed (0)")
    tune.add_argument("--device", default="auto", help="auto, cpu, cuda...")
    tune.add_argument(
        "--output-dir",
        default="pricetune-tune",
        help="where trials.csv and best.json go ('-' for none)",
    )
    tune.add_argument(
        "--verbose", type=int, default=1, help="0: quiet, 1: a line per trial (default)"
    )
    tune.set_defaults(run=run_tune)
