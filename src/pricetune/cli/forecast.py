"""``pricetune forecast``, ``fit`` and ``predict``: forecast the future of a
user's own file.

* ``forecast --data FILE --horizon N``: fit on all of FILE, write
  ``forecast.csv`` and ``forecast.png`` to ``--output``, print a table;
  ``--save-model DIR`` keeps the fitted model.
* ``fit --data FILE --horizon N --save-model DIR``: the same fit, saved.
* ``predict --model DIR [--data NEW_FILE]``: forecast with a saved model;
  with new data, the model is first updated with the values after its
  cut-off (appended values only; ``--refit`` also continues fine-tuning on
  them, otherwise the weights stay as saved).

Every output is written to a temporary name and renamed into place once
complete, so a failure leaves no half-written file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pricetune.cli.errors import USAGE, CommandError
from pricetune.cli.options import add_missing_option
from pricetune.cli.params import parse_params

SAVE_FILE = "pricetune-cli.json"
HISTORY_FILE = "history.csv"
COVERAGE = 0.8


# ----------------------------------------------------------------- parsers
def _data_arguments(parser, required: bool) -> None:
    parser.add_argument(
        "--data",
        required=required,
        metavar="FILE",
        help="CSV or Parquet file: wide (date, then one column per series), "
        "long (unique_id,ds,y or series,date,value) or Date,Price",
    )
    parser.add_argument(
        "--freq",
        "--frequency",
        dest="freq",
        default=None,
        help="monthly, quarterly, yearly, weekly, daily (business days unless "
        "the file has weekends), B or D (default: inferred from the dates)",
    )
    add_missing_option(parser)
    parser.add_argument("--date-column", default=None, help="default: guessed")
    parser.add_argument("--value-column", default=None, help="default: guessed")
    parser.add_argument("--series-column", default=None, help="long files only")


def _output_argument(parser) -> None:
    parser.add_argument(
        "--output",
        default="pricetune-forecast",
        metavar="DIR",
        help="where forecast.csv and forecast.png go (default: pricetune-forecast)",
    )
    parser.add_argument("--no-plot", action="store_true", help="no forecast.png")
    parser.add_argument(
        "--coverage",
        type=float,
        default=COVERAGE,
        help="interval coverage in forecast.csv and the plot (default: 0.8)",
    )


def _model_arguments(parser) -> None:
    parser.add_argument(
        "--horizon", type=int, required=True, help="steps ahead to forecast"
    )
    parser.add_argument(
        "--model",
        default="default",
        help="a model name of `pricetune backtest` (default: the "
        "FineTunedPriceForecaster defaults; also lstm, combined, theta, "
        "naive...)",
    )
    parser.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="FineTunedPriceForecaster parameter (repeatable; VALUE is JSON "
        "or a string)",
    )
    parser.add_argument("--max-epochs", type=int, default=None, help="cap on epochs")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda...")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def add_parsers(commands) -> None:
    forecast = commands.add_parser(
        "forecast",
        help="fit on a file and forecast its future (forecast.csv, forecast.png)",
        description="Fit a model on every value of FILE and forecast the "
        "next --horizon steps of each series.",
    )
    _data_arguments(forecast, required=True)
    _model_arguments(forecast)
    _output_argument(forecast)
    forecast.add_argument(
        "--save-model", metavar="DIR", default=None, help="also save the model"
    )
    forecast.set_defaults(run=run_forecast)

    fit = commands.add_parser(
        "fit",
        help="fit on a file and save the model for `pricetune predict`",
        description="Fit a model on every value of FILE and save it to DIR.",
    )
    _data_arguments(fit, required=True)
    _model_arguments(fit)
    fit.add_argument("--save-model", metavar="DIR", required=True)
    fit.set_defaults(run=run_fit)

    predict = commands.add_parser(
        "predict",
        help="forecast with a model saved by `pricetune fit` or `forecast`",
        description="Forecast with a saved model. With --data, the model is "
        "first updated with the values after its cut-off (appended values "
        "only); --refit also continues training on them.",
    )
    predict.add_argument("--model", required=True, metavar="DIR")
    predict.add_argument(
        "--data", default=None, metavar="FILE", help="new data (the same series)"
    )
    predict.add_argument(
        "--refit",
        action="store_true",
        help="with --data: continue fine-tuning on the new values",
    )
    predict.add_argument("--quiet", action="store_true", help="no progress output")
    _output_argument(predict)
    predict.set_defaults(run=run_predict)


# ----------------------------------------------------------------- steps
def _say(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, flush=True)


def read_data(path, freq, missing, args=None):
    """A file through the reader, or a built-in dataset by name (``brent``,
    ``wti,henry_hub``, ``pinksheet``) when no such file exists."""
    from pricetune.reading import read_prices

    if not Path(path).exists() and _is_dataset(path):
        return _dataset_frame(path, freq)
    return read_prices(
        path,
        freq=freq,
        missing=missing,
        date_column=getattr(args, "date_column", None),
        value_column=getattr(args, "value_column", None),
        series_column=getattr(args, "series_column", None),
    )


def _is_dataset(text) -> bool:
    from pricetune.datasets import list_datasets

    names = set(list_datasets()["name"]) | {"pinksheet", "henryhub"}
    wanted = [n.strip().lower() for n in str(text).split(",") if n.strip()]
    return bool(wanted) and all(n.replace("-", "_") in names for n in wanted)


def _dataset_frame(text, freq):
    import pandas as pd

    from pricetune.backtesting.splitter import load_panel
    from pricetune.backtesting.units import shared_unit
    from pricetune.reading.calendars import canonical_frequency

    frequency = {"M": "monthly", "W": "weekly", "daily": "daily", "B": "daily"}.get(
        canonical_frequency(freq), freq
    )
    panel = load_panel(str(text), frequency)
    frame = pd.DataFrame(panel)
    frame.index.name = "date"
    first = next(iter(panel.values()))
    frame.attrs = {
        "frequency": first.index.freqstr,
        "source": str(text),
        "notes": [],
        "unit": shared_unit(panel),
    }
    return frame


def _describe(frame) -> str:
    names = list(frame.columns)
    shown = ", ".join(map(str, names[:5])) + (", ..." if len(names) > 5 else "")
    first, last = frame.index[0], frame.index[-1]
    from pricetune.reading import frequency_name
    from pricetune.reading.calendars import label_text

    return (
        f"{len(names)} series ({shown}), {frequency_name(frame.attrs['frequency'])}, "
        f"{label_text(first)} to {label_text(last)}"
    )


def _check_horizon(horizon: int) -> None:
    if horizon < 1:
        raise CommandError(f"--horizon must be at least 1, got {horizon}", USAGE)


def _build_model(args):
    from pricetune.backtesting.models import available_models, get_model

    shared, _ = parse_params(args.param)
    if args.max_epochs is not None:
        shared["max_epochs"] = args.max_epochs
    if not args.quiet:
        shared.setdefault("verbose", 1)
    try:
        return get_model(args.model, False, args.seed, args.device, shared)
    except ValueError as error:
        if args.model not in available_models():
            raise CommandError(
                f"unknown model {args.model!r}; known: {', '.join(available_models())}",
                USAGE,
            ) from error
        raise


def _fit_model(args):
    from pricetune.reading import to_sktime

    _check_horizon(args.horizon)
    spec = _build_model(args)  # bad settings fail before the file is read
    frame = read_data(args.data, args.freq, args.missing, args)
    _say(args, f"read {args.data}: {_describe(frame)}")
    for note in frame.attrs["notes"]:
        _say(args, f"note: {note}")
    y = to_sktime(frame)
    _say(
        args, f"fitting {spec.name} ({spec.description}) for {args.horizon} steps ahead"
    )
    started = time.perf_counter()
    estimator = spec.estimator
    estimator.fit(y, fh=list(range(1, args.horizon + 1)))
    _say(args, f"fitted in {time.perf_counter() - started:.1f} s")
    settings = {
        "model": spec.name,
        "horizon": args.horizon,
        "frequency": frame.attrs["frequency"],
        "missing": args.missing,
        "data": str(args.data),
        "series": [str(c) for c in frame.columns],
        "columns": {
            "date": args.date_column,
            "value": args.value_column,
            "series": args.series_column,
        },
    }
    return estimator, frame, settings


def _atomic(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    write(temporary)
    os.replace(temporary, path)


def write_forecast(estimator, frame, horizon, output, coverage, plot, title) -> tuple:
    """Write ``forecast.csv`` (and ``forecast.png``); returns the table."""
    from pricetune.plotting import forecast_frame, plot_forecasts, split_forecasts
    from pricetune.reading import to_panel_dict

    if not 0 < coverage < 1:
        raise CommandError(f"--coverage must be between 0 and 1, got {coverage}", USAGE)
    table = forecast_frame(estimator, list(range(1, horizon + 1)), coverage)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = [output / "forecast.csv"]
    figure = None
    if plot:
        history = to_panel_dict(frame)
        figure = plot_forecasts(
            history,
            split_forecasts(table, history),
            coverage=coverage,
            unit=frame.attrs.get("unit"),
            title=title,
        )
    _atomic(paths[0], lambda p: table.to_csv(p, index=False, float_format="%.6g"))
    if figure is not None:
        paths.append(output / "forecast.png")
        _atomic(paths[1], lambda p: figure.savefig(p, dpi=110, format="png"))
    return table, paths


def print_table(table, frame, coverage: float, limit: int = 20) -> None:
    from pricetune.reading.calendars import label_text

    rows = []
    for name, group in table.groupby("series", sort=False):
        last = frame[name].dropna()
        end = group.iloc[-1]
        row = {
            "series": name,
            "last date": label_text(last.index[-1]),
            "last": last.iloc[-1],
            f"{group['date'].iloc[0]}": group["median"].iloc[0],
            f"{end['date']}": end["median"],
        }
        if "lower" in group:
            row[f"{coverage:.0%} interval at the end"] = (
                f"[{end['lower']:.4g}, {end['upper']:.4g}]"
            )
        rows.append(row)
    import pandas as pd

    shown = pd.DataFrame(rows[:limit])
    if frame.shape[1] > 1:
        # one date pair per series would misalign: name the steps instead
        steps = table.groupby("series", sort=False).size().iloc[0]
        shown.columns = [
            *shown.columns[:3],
            "step 1",
            f"step {steps}",
            *shown.columns[5:],
        ]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if len(rows) > limit:
        print(f"... and {len(rows) - limit} more series in forecast.csv")


def _save(estimator, settings, frame, directory) -> Path:
    import joblib

    from pricetune.backtesting.models import is_global
    from pricetune.estimators.forecaster import FineTunedPriceForecaster
    from pricetune.reading.calendars import label_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(estimator, FineTunedPriceForecaster):
        estimator.save(directory / "model", serialization_format="safetensors")
        settings = {**settings, "format": "safetensors", "path": "model"}
    else:
        # other sktime forecasters (and pipelines that hold a pricetune
        # model) have no safe format: joblib, which unpickles when loaded
        path = directory / "model.joblib"
        _atomic(path, lambda p: joblib.dump(estimator, p))
        settings = {**settings, "format": "joblib", "path": path.name}
    settings["global"] = bool(is_global(estimator))
    settings["cutoff"] = str(_cutoff(estimator))
    # the data the model was fitted on, for `predict`'s table and plot (a
    # safe-format save keeps the model's inputs, not sktime's copy of y)
    history = frame.copy()
    history.index = [label_text(label) for label in history.index]
    history.index.name = "date"
    _atomic(directory / HISTORY_FILE, lambda p: history.to_csv(p))
    text = json.dumps(settings, indent=2)
    _atomic(directory / SAVE_FILE, lambda p: p.write_text(text))
    return directory


def _cutoff(estimator):
    cutoff = estimator.cutoff
    return cutoff[0] if hasattr(cutoff, "__len__") and len(cutoff) else cutoff


def _load(directory):
    directory = Path(directory)
    settings_path = directory / SAVE_FILE
    if not settings_path.is_file():
        raise CommandError(
            f"{directory}: not a model saved by `pricetune fit` (no {SAVE_FILE})"
        )
    settings = json.loads(settings_path.read_text())
    if settings["format"] == "safetensors":
        from pricetune.persistence import load

        return load(directory / settings["path"]), settings
    import joblib

    return joblib.load(directory / settings["path"]), settings


# ---------------------------------------------------------------- commands
def run_forecast(args) -> int:
    estimator, frame, settings = _fit_model(args)
    table, paths = write_forecast(
        estimator,
        frame,
        args.horizon,
        args.output,
        args.coverage,
        not args.no_plot,
        f"{settings['model']}: {args.horizon} steps ahead",
    )
    print_table(table, frame, args.coverage)
    if args.save_model:
        print(f"model saved to {_save(estimator, settings, frame, args.save_model)}")
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def run_fit(args) -> int:
    estimator, frame, settings = _fit_model(args)
    print(f"model saved to {_save(estimator, settings, frame, args.save_model)}")
    return 0


def run_predict(args) -> int:
    from pricetune.reading import to_sktime

    estimator, settings = _load(args.model)
    frame = None
    if args.data is not None:
        frame = read_data(
            args.data,
            settings["frequency"],
            settings["missing"],
            argparse_columns(settings),
        )
        _say(args, f"read {args.data}: {_describe(frame)}")
        unknown = sorted(set(map(str, frame.columns)) - set(settings["series"]))
        if unknown:
            raise CommandError(
                f"{args.data}: series the model was not fitted on: {', '.join(unknown)}"
            )
        frame = frame[[c for c in settings["series"] if c in frame.columns]]
        frame.attrs["notes"] = list(frame.attrs.get("notes", []))
        new = _after_cutoff(frame, settings["cutoff"])
        if new == 0:
            _say(
                args,
                f"no values after the model's cut-off {settings['cutoff']}: "
                "forecasting from it",
            )
        else:
            _say(
                args,
                f"updating with {new} new values after {settings['cutoff']}"
                + (" (refit)" if args.refit else ""),
            )
            estimator.update(to_sktime(frame), update_params=bool(args.refit))
    if frame is None:
        frame = _history(args.model, settings)
    table, paths = write_forecast(
        estimator,
        frame,
        settings["horizon"],
        args.output,
        args.coverage,
        not args.no_plot,
        f"{settings['model']}: {settings['horizon']} steps ahead",
    )
    print_table(table, frame, args.coverage)
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def argparse_columns(settings):
    import argparse

    columns = settings.get("columns") or {}
    return argparse.Namespace(
        date_column=columns.get("date"),
        value_column=columns.get("value"),
        series_column=columns.get("series"),
    )


def _after_cutoff(frame, cutoff) -> int:
    """How many values of ``frame`` come after the saved cut-off."""
    import pandas as pd

    index = frame.index
    if isinstance(index, pd.PeriodIndex):
        after = index > pd.Period(cutoff, freq=index.freq)
    else:
        after = index > pd.Timestamp(cutoff)
    return int(frame.loc[after].notna().sum().sum())


def _history(directory, settings):
    """The data the saved model was fitted on (``history.csv``)."""
    from pricetune.reading import read_prices

    frame = read_prices(Path(directory) / HISTORY_FILE, freq=settings["frequency"])
    return frame.rename(columns=str)
