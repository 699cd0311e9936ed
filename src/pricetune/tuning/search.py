"""The Optuna search: :func:`tune` and the :class:`TuningResult` it returns.

Each trial draws its settings from the space (:mod:`pricetune.tuning.space`),
fits the forecaster at every rolling origin exactly as ``pricetune
backtest`` fits a pricetune model (one global fit per origin on every
series up to the cut-off: :mod:`pricetune.backtesting`'s splitter and
fitting) and is scored with the backtest's own summary
(:func:`pricetune.backtesting.summarise`), relMAE by default.

Pruning: every fit of a trial holds an
:class:`~pricetune.tuning.OptunaPruning` callback, which reports the
validation loss after each epoch. Origin ``i`` (oldest first, from 0)
reports epoch ``e`` at step ``i * stride + e``, where ``stride`` is the
largest ``max_epochs`` the space allows, so that steps keep increasing
over a trial and the same step means the same origin and epoch in every
trial, whatever its own ``max_epochs``. A pruned fit stops after that
epoch and the trial ends as PRUNED, without fitting the later origins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pricetune.backtesting.fitting import fit_global, quiet
from pricetune.backtesting.models import ModelSpec
from pricetune.backtesting.scoring import LEVELS, score, summarise
from pricetune.backtesting.splitter import (
    load_panel,
    make_cutoffs,
    panel_frame,
    rolling_splits,
)
from pricetune.tuning.pruning import OptunaPruning
from pricetune.tuning.space import check_space, largest, read_space, suggest

__all__ = ["METRICS", "TuningResult", "forecaster_parameters", "import_optuna", "tune"]

#: columns of the backtest's summary a search can minimise
METRICS = ("relMAE", "MASE", "sMAPE", "MSPE ratio", "wQL", "sCRPS")


def import_optuna():
    """The ``optuna`` module, or a one-line ImportError saying how to get it
    (:func:`pricetune.integrations.optional.require`)."""
    from pricetune.integrations.optional import require

    return require("optuna", "optuna", "tuning")


def forecaster_parameters() -> dict:
    """FineTunedPriceForecaster's parameters and their defaults."""
    from pricetune.estimators.forecaster import FineTunedPriceForecaster

    return FineTunedPriceForecaster().get_params(deep=False)


def _plain(value):
    """``value`` as a JSON-able text or scalar (for tables and user attrs)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


@dataclass
class TuningResult:
    """What :func:`tune` returns.

    ``best_params``: the searched settings of the best trial (what
    ``forecaster`` was refit with, on top of ``params``); ``best_value``:
    its score (``metric``, lower is better) over the rolling origins;
    ``forecaster``: a FineTunedPriceForecaster with those settings, fitted
    on all the data for ``fh = 1..horizon`` (None with ``refit=False``);
    ``study``: the Optuna study; ``trials``: one row per trial (number,
    state, score, epochs trained, seconds and the settings drawn);
    ``cutoffs``: the rolling origins; ``config``: the search's settings;
    ``notes``: series left out, and why.
    """

    best_params: dict
    best_value: float
    best_trial: int
    metric: str
    forecaster: object
    study: object = field(repr=False)
    trials: object = field(repr=False)
    cutoffs: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def to_string(self) -> str:
        """The table of trials and the best settings, as text."""
        table = self.trials.to_string(
            index=False,
            na_rep="-",
            float_format=lambda v: f"{v:.4g}",
        )
        best = ", ".join(f"{k}={v!r}" for k, v in self.best_params.items())
        return (
            f"{table}\n\nbest: trial {self.best_trial}, {self.metric} "
            f"{self.best_value:.4f}: {best}"
        )

    def save(self, directory) -> dict[str, Path]:
        """Write ``trials.csv`` (the table) and ``best.json`` (the best
        settings, their score, the fixed params, the space and the origins)
        into ``directory``; the paths written."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"trials": directory / "trials.csv", "best": directory / "best.json"}
        self.trials.to_csv(paths["trials"], index=False)
        states = self.trials["state"].value_counts().to_dict()
        best = {
            "metric": self.metric,
            "value": self.best_value,
            "trial": self.best_trial,
            "best_params": self.best_params,
            "n_trials": len(self.trials),
            "states": {str(k): int(v) for k, v in states.items()},
            "cutoffs": [str(c) for c in self.cutoffs],
            **self.config,
            "notes": self.notes,
        }
        paths["best"].write_text(json.dumps(best, indent=2, default=str) + "\n")
        return paths


def _trials_frame(study, metric: str, fixed_in_space) -> object:
    import pandas as pd

    searched = []
    for trial in study.trials:
        for name in trial.user_attrs.get("params", {}):
            if name not in fixed_in_space and name not in searched:
                searched.append(name)
    rows = []
    for trial in study.trials:
        drawn = trial.user_attrs.get("params", {})
        duration = trial.duration.total_seconds() if trial.duration else np.nan
        rows.append(
            {
                "trial": trial.number,
                "state": trial.state.name,
                # a pruned trial's value is its last report: not a score
                metric: trial.value if trial.state.name == "COMPLETE" else np.nan,
                "epochs": trial.user_attrs.get(
                    "epochs", len(trial.intermediate_values)
                ),
                "seconds": duration,
                **{name: drawn.get(name) for name in searched},
            }
        )
    return pd.DataFrame(rows)


def _check_params(params, known, space) -> dict:
    if params is not None and not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    params = dict(params or {})
    unknown = [name for name in params if name not in known]
    if unknown:
        raise ValueError(
            f"params names {unknown[0]!r}, not a FineTunedPriceForecaster parameter"
        )
    both = sorted(set(params) & set(space or {}))
    if both:
        raise ValueError(
            f"{both[0]!r} is both searched (space) and fixed (params); keep one"
        )
    return params


def _refit_data(data, panel):
    import pandas as pd

    if isinstance(data, pd.Series | pd.DataFrame):
        return data  # the user's own object: what they will predict from
    if len(panel) == 1:
        return next(iter(panel.values()))
    return panel_frame(panel)


def tune(
    data="monthly",
    space=None,
    *,
    params: dict | None = None,
    n_trials: int | None = 20,
    timeout: float | None = None,
    n_origins: int = 3,
    horizon: int = 12,
    step: int | None = None,
    gap: int | None = None,
    metric: str = "relMAE",
    default_space: bool = True,
    seed: int = 0,
    sampler=None,
    pruner=None,
    study=None,
    frequency: str | None = None,
    missing: str = "fill",
    refit: bool = True,
    verbose: int = 0,
) -> TuningResult:
    """Search FineTunedPriceForecaster's settings with Optuna, scored over
    rolling origins, with pruning; refit the best on all the data.

    Parameters
    ----------
    data : str, Series, DataFrame or dict, default "monthly"
        What :func:`pricetune.backtesting.load_panel` reads: "monthly",
        "daily", "pinksheet", dataset names ("brent,wti"), a CSV or
        Parquet file, a Series, a dict of Series or a panel DataFrame.
    space : dict, JSON text or path, optional
        ``{parameter: entry}``, on top of
        :data:`~pricetune.tuning.DEFAULT_SPACE` (its entries replace the
        default ones); the format is that of :mod:`pricetune.tuning.space`:
        ``("log", 1e-4, 1e-2)``, ``("int", 10, 30, 10)``, a list of choices,
        or a fixed value.
    params : dict, optional
        Fixed forecaster settings of every trial and of the refit (they
        take a parameter out of the default space); ``callbacks`` here run
        besides the pruning. ``random_state`` defaults to ``seed`` and
        ``verbose`` to 0.
    n_trials, timeout : int and float (seconds), optional
        When to stop: after ``n_trials`` trials or once ``timeout`` seconds
        have passed (a trial running then finishes), whichever is first.
    n_origins, horizon, step, gap : int
        The rolling origins (expanding window), as in
        :func:`pricetune.backtesting.make_cutoffs`: ``n_origins`` cut-offs
        ``step`` apart (default ``horizon``), the last ``gap`` (default
        ``horizon``) before the end of the data; each scores the
        ``horizon`` values after it.
    metric : str, default "relMAE"
        The column of :func:`pricetune.backtesting.summarise` to minimise:
        "relMAE", "MASE", "sMAPE", "MSPE ratio", "wQL" or "sCRPS".
    default_space : bool, default True
        False searches ``space`` alone.
    seed : int, default 0
        Seeds the default sampler (TPE) and the forecasters.
    sampler, pruner : optional
        Optuna's sampler and pruner; by default ``TPESampler(seed=seed)``
        and ``MedianPruner(n_startup_trials=5, n_warmup_steps=3)``.
        ``optuna.pruners.NopPruner()`` turns pruning off.
    study : optuna.Study, optional
        A study to continue (its sampler and pruner are used); it must
        minimise.
    frequency, missing : optional
        How a file or dataset names are read (as ``pricetune backtest``).
    refit : bool, default True
        Fit the best settings on all the data.
    verbose : int, default 0
        1 prints a line per finished trial.

    Returns
    -------
    TuningResult

    Raises
    ------
    ImportError
        Without Optuna (``pip install 'pricetune[optuna]'``).
    ValueError
        An unknown parameter or a bad entry in ``space``, a trial whose
        settings the forecaster refuses, or no trial that finished.
    """
    optuna = import_optuna()
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    space = None if space is None else read_space(space)
    defaults = forecaster_parameters()
    params = _check_params(params, defaults, space)
    dimensions = check_space(space, defaults, default=default_space)
    for name in params:
        dimensions.pop(name, None)  # fixed: out of the default space
    fixed_in_space = [name for name, d in dimensions.items() if d.kind == "fixed"]
    fixed = {"random_state": seed, "verbose": 0, **params}
    user_callbacks = list(fixed.pop("callbacks", None) or [])
    stride = int(
        largest(
            dimensions, "max_epochs", fixed.get("max_epochs", defaults["max_epochs"])
        )
    )

    notes: list = []
    panel = load_panel(data, frequency=frequency, missing=missing, notes=notes)
    cutoffs = make_cutoffs(panel, horizon, n_origins, step, gap)
    splits = rolling_splits(panel, cutoffs, horizon, notes=notes)
    groups = [[s for s in splits if s.cutoff == c] for c in cutoffs]
    groups = [group for group in groups if group]
    if not groups:
        raise ValueError("no (series, origin) pair to score: the series are too short")
    fh = np.arange(1, int(horizon) + 1)
    drawn: dict[int, dict] = {}

    def objective(trial):
        from pricetune.estimators.forecaster import FineTunedPriceForecaster

        settings = suggest(trial, dimensions, fixed=params)
        drawn[trial.number] = settings
        trial.set_user_attr("params", {k: _plain(v) for k, v in settings.items()})
        pruning = OptunaPruning(trial)
        name = f"trial {trial.number}"
        frames, fits = [], []
        for index, group in enumerate(groups):
            pruning.step_offset = index * stride
            estimator = FineTunedPriceForecaster(
                **{**fixed, **settings, "callbacks": [*user_callbacks, pruning]}
            )
            spec = ModelSpec(name, estimator, True, "tuning", params=settings)
            try:
                new_frames, new_fits = fit_global(
                    spec, group, fh, LEVELS, lambda *a, **k: None, notes, name
                )
            except (ValueError, TypeError) as error:
                described = ", ".join(f"{k}={v!r}" for k, v in settings.items())
                first = str(error).strip().splitlines()[0] if str(error) else ""
                raise ValueError(f"{name} ({described}): {first}") from error
            trial.set_user_attr("epochs", len(pruning.history))
            if pruning.pruned:
                raise optuna.TrialPruned()
            frames += new_frames
            fits += new_fits
        if not frames:
            raise ValueError(f"{name} forecast no series (too short for its context)")
        import pandas as pd

        forecasts = pd.concat(frames, ignore_index=True)
        with quiet():
            table = summarise(forecasts, score(forecasts), pd.DataFrame(fits), horizon)
        return float(table.loc[name, metric])

    def report(study_, trial) -> None:
        value = f"{trial.value:.4f}" if trial.state.name == "COMPLETE" else "-"
        epochs = trial.user_attrs.get("epochs", 0)
        drawn_ = trial.user_attrs.get("params", {})
        settings = ", ".join(
            f"{k}={v!r}" for k, v in drawn_.items() if k not in fixed_in_space
        )
        print(
            f"trial {trial.number}: {trial.state.name.lower()}, {metric} {value}, "
            f"{epochs} epoch{'' if epochs == 1 else 's'} ({settings})",
            flush=True,
        )

    verbosity = optuna.logging.get_verbosity()
    # Optuna's own log (a line per trial, a failed trial's traceback) is not
    # the search's output: ``verbose`` and the exception raised say it once
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        if study is not None and study.direction.name != "MINIMIZE":
            raise ValueError("study must minimise: the metrics are errors")
        if study is None:
            study = optuna.create_study(
                direction="minimize",
                sampler=sampler or optuna.samplers.TPESampler(seed=seed),
                pruner=pruner or optuna.pruners.MedianPruner(5, n_warmup_steps=3),
            )
        with quiet():
            study.optimize(
                objective,
                n_trials=n_trials,
                timeout=timeout,
                callbacks=[report] if verbose else None,
            )
    finally:
        optuna.logging.set_verbosity(verbosity)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        states = ", ".join(sorted({t.state.name.lower() for t in study.trials}))
        raise ValueError(
            f"no trial finished ({len(study.trials)} trials: {states or 'none run'}); "
            "run more trials, a longer timeout or a milder pruner"
        )
    best = study.best_trial
    settings = drawn.get(best.number)
    if settings is None:  # a trial of an earlier call on the same study
        settings = suggest(optuna.trial.FixedTrial(best.params), dimensions, params)
    best_params = {k: v for k, v in settings.items() if k not in fixed_in_space}
    forecaster = None
    if refit:
        from pricetune.estimators.forecaster import FineTunedPriceForecaster

        forecaster = FineTunedPriceForecaster(
            **{**fixed, **settings},
            callbacks=user_callbacks or None,
        )
        with quiet():
            forecaster.fit(_refit_data(data, panel), fh=fh)
    config = {
        "data": data if isinstance(data, str | Path) else type(data).__name__,
        "series": list(panel),
        "horizon": int(horizon),
        "n_origins": len(groups),
        "params": {k: _plain(v) for k, v in fixed.items()},
        "space": {name: d.describe() for name, d in dimensions.items()},
        "pruning_stride": stride,
    }
    return TuningResult(
        best_params=best_params,
        best_value=float(best.value),
        best_trial=best.number,
        metric=metric,
        forecaster=forecaster,
        study=study,
        trials=_trials_frame(study, metric, fixed_in_space),
        cutoffs=[group[0].cutoff for group in groups],
        config=config,
        notes=notes,
    )
