"""Rolling-origin backtests of many models on the same cut-offs."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.backtesting import metrics as M
from pricetune.backtesting.models import (
    DEFAULT_MODELS,
    QUICK_MODELS,
    ModelSpec,
    ablation_models,
    fracast_available,
    get_model,
    is_global,
)
from pricetune.backtesting.splitter import (
    load_panel,
    make_cutoffs,
    panel_frame,
    rolling_splits,
)
from pricetune.backtesting.stats import dm_test_differential

__all__ = ["BacktestResult", "ablation", "backtest", "score", "summarise"]

#: quantile levels every probabilistic model is scored on (wQL, CRPS); the
#: 0.1 and 0.9 quantiles bound the 80% interval
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class BacktestResult:
    """What :func:`backtest` returns.

    ``table``: one row per model, ranked by ``relMAE`` (see
    :func:`summarise`); ``scores``: one row per (model, series, cut-off);
    ``forecasts``: one row per (model, series, cut-off, step) with the
    actual, the point forecast and the quantiles ``q0.1`` ... ``q0.9``
    (NaN for point models); ``fits``: seconds and trainable parameters of
    every fit; ``cutoffs``: the shared origins; ``notes``: models skipped
    or failed, and why.
    """

    table: pd.DataFrame
    scores: pd.DataFrame
    forecasts: pd.DataFrame
    fits: pd.DataFrame
    cutoffs: list
    config: dict
    history: dict = field(repr=False, default_factory=dict)
    notes: list = field(default_factory=list)

    def to_string(self, columns=None) -> str:
        """The ranked table as text."""
        table = self.table if columns is None else self.table[columns]
        formatters = {
            "trainable": lambda v: "-" if pd.isna(v) else f"{int(v):,}",
            "fit s": lambda v: "-" if pd.isna(v) else f"{v:.1f}",
            "DM p": lambda v: "-" if pd.isna(v) else f"{v:.2f}",
            "DM": lambda v: "-" if pd.isna(v) else f"{v:.2f}",
            "sMAPE": lambda v: "-" if pd.isna(v) else f"{v:.2f}",
        }
        return table.to_string(
            float_format=lambda v: f"{v:.3f}",
            na_rep="-",
            formatters={k: f for k, f in formatters.items() if k in table},
        )

    def save(self, directory, plots: bool = True) -> dict[str, Path]:
        """Write ``summary.csv``, ``scores.csv``, ``forecasts.csv``,
        ``results.json`` and (``plots``) ``error_by_horizon.png`` and one
        ``forecasts_<series>.png`` per series into ``directory``."""
        from pricetune.backtesting.report import save_result

        return save_result(self, directory, plots=plots)


# ----------------------------------------------------------------- fitting
@contextmanager
def _quiet():
    """Models' warnings (sktime notices, convergence, short series) are
    not the backtest's output. Recorded rather than only filtered: a model
    that resets the filters inside (sktime's date handling of business days
    did, once per forecast) would otherwise print through."""
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        yield


def _probabilistic(estimator) -> bool:
    try:
        return bool(estimator.get_tag("capability:pred_int"))
    except Exception:  # noqa: BLE001
        return False


def _n_trainable(estimator):
    value = getattr(estimator, "n_trainable_parameters_", None)
    if value is None:
        forecaster = getattr(estimator, "forecaster_", None)
        value = getattr(forecaster, "n_trainable_parameters_", None)
        if value is None and hasattr(estimator, "steps_"):
            for _, step in estimator.steps_:
                value = getattr(step, "n_trainable_parameters_", value)
    return np.nan if value is None else int(value)


def _quantiles(spec, estimator, fh, levels, notes):
    """The quantile forecasts, or None for a point model; a model whose
    quantiles fail is scored as a point model (and noted)."""
    if not _probabilistic(estimator):
        return None
    try:
        return estimator.predict_quantiles(fh=fh, alpha=list(levels))
    except Exception as error:  # noqa: BLE001 - e.g. a library version clash
        note = (
            f"{spec.name}: no quantiles ({type(error).__name__}: {error}); "
            "scored as a point forecast"
        )
        if note not in notes:
            notes.append(note)
        return None


def _rows(spec, split, point, quantiles, levels):
    train, test = split.train, split.test
    rows = pd.DataFrame(
        {
            "model": spec.name,
            "series": split.series,
            "cutoff": str(split.cutoff),
            "step": np.arange(1, len(test) + 1),
            "time": [str(t) for t in test.index],
            "actual": test.to_numpy(dtype=np.float64),
            "forecast": np.asarray(point, dtype=np.float64),
            "last": float(train.iloc[-1]),
            "scale": M.in_sample_naive_mae(train.to_numpy()),
        }
    )
    for j, level in enumerate(levels):
        rows[f"q{level:g}"] = np.nan if quantiles is None else quantiles[:, j]
    return rows


def _fit_local(spec, splits, fh, levels, log, notes):
    from sklearn.base import clone

    frames, fits = [], []
    for split in splits:
        started = time.perf_counter()
        with _quiet():
            estimator = clone(spec.estimator)
            train = split.train
            if spec.max_train is not None:
                train = train.iloc[-int(spec.max_train) :]
            estimator.fit(train, fh=fh)
            point = estimator.predict(fh=fh).to_numpy(dtype=np.float64)
            quantiles = _quantiles(spec, estimator, fh, levels, notes)
            if quantiles is not None:
                quantiles = quantiles.to_numpy(dtype=np.float64)
        seconds = time.perf_counter() - started
        frames.append(_rows(spec, split, point, quantiles, levels))
        fits.append(
            {
                "model": spec.name,
                "cutoff": str(split.cutoff),
                "series": split.series,
                "seconds": seconds,
                "n_trainable": _n_trainable(estimator),
            }
        )
        log(f"  {spec.name:<28} {split.series:<12} {split.cutoff}  {seconds:6.1f}s")
    return frames, fits


def _fit_global(spec, splits, fh, levels, log, notes):
    from sklearn.base import clone

    frames, fits = [], []
    by_cutoff: dict = {}
    for split in splits:
        by_cutoff.setdefault(split.cutoff, []).append(split)
    for cutoff, group in by_cutoff.items():
        trains = {
            s.series: s.train
            if spec.max_train is None
            else s.train.iloc[-int(spec.max_train) :]
            for s in group
        }
        y = panel_frame(trains)
        started = time.perf_counter()
        with _quiet():
            estimator = clone(spec.estimator)
            estimator.fit(y, fh=fh)
            point = estimator.predict(fh=fh)
            quantiles = _quantiles(spec, estimator, fh, levels, notes)
        seconds = time.perf_counter() - started
        forecast_series = set(point.index.get_level_values(0))
        for split in group:
            if split.series not in forecast_series:
                # too short for the model's context: it gives no forecast
                notes.append(
                    f"{spec.name} gave no forecast of {split.series} at {cutoff} "
                    "(too few values for its context); the pair is left out "
                    "for every model"
                )
                continue
            p = point.xs(split.series, level=0).iloc[:, 0].to_numpy(dtype=np.float64)
            q = (
                None
                if quantiles is None
                else quantiles.xs(split.series, level=0).to_numpy(dtype=np.float64)
            )
            frames.append(_rows(spec, split, p, q, levels))
        fits.append(
            {
                "model": spec.name,
                "cutoff": str(cutoff),
                "series": "*",
                "seconds": seconds,
                "n_trainable": _n_trainable(estimator),
            }
        )
        log(f"  {spec.name:<28} {'(panel)':<12} {cutoff}  {seconds:6.1f}s")
    return frames, fits


def _common_pairs(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The forecasts of the (series, cut-off) pairs every model forecast, so
    that every model is scored on the same pairs."""
    pairs = forecasts[["model", "series", "cutoff"]].drop_duplicates()
    counts = pairs.groupby(["series", "cutoff"])["model"].transform("size")
    common = pairs[counts == pairs["model"].nunique()][["series", "cutoff"]]
    return forecasts.merge(common.drop_duplicates(), on=["series", "cutoff"])


# ----------------------------------------------------------------- scoring
def score(forecasts: pd.DataFrame, levels=LEVELS) -> pd.DataFrame:
    """One row per (model, series, cut-off) of ``forecasts``: MASE, sMAPE,
    relative MAE, squared errors of the model and of no-change (for the
    MSPE ratio), directional accuracy, wQL, scaled CRPS, 80% coverage."""
    q_columns = [f"q{level:g}" for level in levels]
    records = []
    for (model, series, cutoff), rows in forecasts.groupby(
        ["model", "series", "cutoff"], sort=False
    ):
        actual = rows["actual"].to_numpy()
        point = rows["forecast"].to_numpy()
        last = rows["last"].iloc[0]
        scale = rows["scale"].iloc[0]
        naive = np.full_like(actual, last)
        history = np.array([last])  # the last value is all relMAE/DA need
        record = {
            "model": model,
            "series": series,
            "cutoff": cutoff,
            "MASE": M.mae(actual, point) / scale if scale > 0 else np.nan,
            "sMAPE": M.smape(actual, point),
            "relMAE": M.relative_mae(actual, point, history),
            "SSE": float(np.sum((actual - point) ** 2)),
            "SSE_naive": float(np.sum((actual - naive) ** 2)),
            "DA": M.directional_accuracy(actual, point, history),
        }
        quantiles = rows[q_columns].to_numpy()
        if np.isfinite(quantiles).all():
            record["wQL"] = M.weighted_quantile_loss(actual, quantiles, levels)
            record["sCRPS"] = M.crps_from_quantiles(actual, quantiles, levels) / scale
            record["coverage80"] = M.coverage(
                actual, quantiles[:, levels.index(0.1)], quantiles[:, levels.index(0.9)]
            )
        else:
            record["wQL"] = record["sCRPS"] = record["coverage80"] = np.nan
        records.append(record)
    return pd.DataFrame(records)


def _dm(forecasts: pd.DataFrame, model: str, horizon: int, loss: str):
    """DM test of ``model`` against no-change on the panel: the loss
    differential at each (cut-off, step) is averaged over series, after
    scaling each series' errors by its in-sample no-change MAE."""
    rows = forecasts[forecasts["model"] == model]
    if rows.groupby(["series", "time"])["cutoff"].nunique().max() > 1:
        # origins closer than the horizon: forecasts of the same date from
        # several origins are correlated beyond the h - 1 lags the test
        # allows for, so its p-value would be too small
        return np.nan, np.nan
    error = (rows["actual"] - rows["forecast"]) / rows["scale"]
    naive = (rows["actual"] - rows["last"]) / rows["scale"]
    power = 2 if loss == "squared" else 1
    # cut-offs are stored as text: order integer ones as numbers
    numeric = pd.to_numeric(rows["cutoff"], errors="coerce")
    order = rows["cutoff"] if numeric.isna().any() else numeric
    d = (
        (error.abs() ** power - naive.abs() ** power)
        .groupby([order, rows["step"]], sort=True)
        .mean()
    )
    if len(d) <= horizon or not np.any(d.to_numpy()):
        return np.nan, np.nan
    result = dm_test_differential(d.to_numpy(), h=horizon)
    return result.statistic, result.p_value


def summarise(
    forecasts: pd.DataFrame,
    scores: pd.DataFrame,
    fits: pd.DataFrame,
    horizon: int,
    dm_loss: str = "squared",
) -> pd.DataFrame:
    """The ranked table, one row per model.

    * ``relMAE``: geometric mean over (series, origin) of the model's MAE
      over no-change's MAE on the same actuals (the ranking; < 1 beats
      no-change);
    * ``MASE``, ``sMAPE``: arithmetic means over (series, origin); MASE is
      scaled by the in-sample one-step no-change MAE up to each cut-off;
    * ``MSPE ratio``: per series, the model's summed squared errors over
      no-change's (all origins and steps), then the geometric mean over
      series;
    * ``DA``: directional accuracy, mean over (series, origin);
    * ``wQL``: weighted quantile loss at levels 0.1..0.9 of each forecast
      (GluonTS's formula on one series), mean over (series, origin),
      ``sCRPS``: the quantile-approximated CRPS scaled like MASE, and
      ``cov80``: share of actuals inside the 0.1-0.9 interval (probabilistic
      models only);
    * ``DM``/``DM p``: HLN-corrected Diebold-Mariano statistic against
      no-change (negative: the model's loss is smaller) and its two-sided
      p-value;
    * ``fit s``: mean seconds per origin (all series), ``trainable``:
      trainable parameters (pricetune models).
    """
    records = []
    for model, rows in scores.groupby("model", sort=False):
        per_series = rows.groupby("series")[["SSE", "SSE_naive"]].sum()
        ratio = per_series["SSE"] / per_series["SSE_naive"]
        statistic, p_value = _dm(forecasts, model, horizon, dm_loss)
        model_fits = fits[fits["model"] == model]
        records.append(
            {
                "model": model,
                "relMAE": M.geometric_mean(rows["relMAE"]),
                "MASE": rows["MASE"].mean(),
                "sMAPE": rows["sMAPE"].mean(),
                "MSPE ratio": M.geometric_mean(ratio),
                "DA": rows["DA"].mean(),
                "wQL": rows["wQL"].mean(),
                "sCRPS": rows["sCRPS"].mean(),
                "cov80": rows["coverage80"].mean(),
                "DM": statistic,
                "DM p": p_value,
                "fit s": model_fits.groupby("cutoff")["seconds"].sum().mean(),
                "trainable": model_fits["n_trainable"].max(),
            }
        )
    table = pd.DataFrame(records).set_index("model")
    return table.sort_values("relMAE", kind="stable")


# ------------------------------------------------------------------- API
def _resolve_models(models, quick, seed, device, overrides, notes):
    if models is None:
        models = QUICK_MODELS if quick else DEFAULT_MODELS
        models = [m for m in models if m != "fracast" or fracast_available()]
    if isinstance(models, Mapping):
        models = [
            value
            if isinstance(value, ModelSpec)
            else ModelSpec(str(key), value, is_global(value), "custom")
            for key, value in models.items()
        ]
    specs = []
    for model in models:
        if isinstance(model, ModelSpec):
            specs.append(model)
        elif isinstance(model, str):
            try:
                specs.append(get_model(model, quick, seed, device, overrides))
            except ModuleNotFoundError as error:
                notes.append(f"{model} skipped: {error}")
        else:
            name = type(model).__name__
            specs.append(ModelSpec(name, model, is_global(model), "custom"))
    names = [spec.name for spec in specs]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"model names must be unique; repeated: {sorted(duplicated)}")
    return specs


def backtest(
    data="monthly",
    models=None,
    *,
    horizon: int = 12,
    n_origins: int = 5,
    step: int | None = None,
    gap: int | None = None,
    cutoffs: Sequence | None = None,
    frequency: str | None = None,
    min_train: int | None = None,
    quick: bool = False,
    seed: int = 0,
    device: str = "auto",
    params: dict | None = None,
    dm_loss: str = "squared",
    output_dir=None,
    plots: bool = True,
    raise_errors: bool = False,
    statistical_history: int | None = None,
    max_history: int | None = None,
    verbose: int = 0,
) -> BacktestResult:
    """Rolling-origin backtest (expanding window) of several models on the
    same cut-offs.

    Parameters
    ----------
    data : str, Series, DataFrame or dict, default "monthly"
        ``"monthly"`` (Brent, WTI, Henry Hub, gold from 1960), ``"daily"``
        (Brent, WTI, Henry Hub on business days), built-in dataset names
        (``"brent"``, ``"brent,wti"``; at ``frequency``), a CSV path, or
        the data (see :func:`pricetune.backtesting.splitter.to_panel`).
    models : list or dict, optional
        names (see :func:`pricetune.backtesting.models.available_models`),
        sktime forecasters, :class:`ModelSpec` objects, or a dict
        ``{name: forecaster}``. Default: naive, drift, AutoARIMA, AutoETS,
        Theta, LSTM, GRU, the default FineTunedPriceForecaster and, when
        installed, Fracast-0 (``quick``: naive, drift, Theta and tiny
        no-backbone and LSTM models). Pricetune forecasters (and pipelines
        that contain one) are *global*: fitted once per origin on every
        series up to the cut-off; other models are fitted per series.
    horizon : int, default 12
        steps ahead scored at each origin.
    n_origins, step, gap : int
        ``n_origins`` cut-offs ``step`` steps apart (default ``horizon``),
        the last one ``gap`` steps (default ``horizon``) before the end of
        the series that ends first. ``cutoffs`` gives them explicitly.
    min_train : int, optional
        a series joins an origin when it has this many values up to the
        cut-off (default ``3 * horizon``).
    quick : bool
        tiny pricetune models (2 epochs, context 12) for a smoke run.
    seed, device : passed to the pricetune models.
    params : dict, optional
        FineTunedPriceForecaster parameters applied to the named pricetune
        models (e.g. ``{"max_epochs": 10}``).
    dm_loss : {"squared", "absolute"}
    output_dir : path, optional
        write the CSV/JSON files (and PNG plots, unless ``plots=False``).
    raise_errors : bool
        re-raise a model's failure instead of noting it and going on.
    statistical_history : int, optional
        fit the named AutoARIMA and AutoETS on the last this-many values
        only (they are slow on long daily series); the cut-offs, actuals
        and MASE scale stay the same.
    max_history : int, optional
        every model (local and global) is fitted on at most the last
        this-many values of each series up to the cut-off (a sliding
        window, for long daily series); MASE still scales by the whole
        history's no-change error.
    verbose : int
        1 prints a line per fit.
    """
    if dm_loss not in ("squared", "absolute"):
        raise ValueError(f"dm_loss must be 'squared' or 'absolute', got {dm_loss!r}")
    notes: list[str] = []
    panel = load_panel(data, frequency)
    if cutoffs is None:
        cutoffs = make_cutoffs(panel, horizon, n_origins, step, gap)
    splits = rolling_splits(panel, cutoffs, horizon, min_train)
    if not splits:
        raise ValueError("no (series, origin) pair has enough data")
    with _quiet():
        specs = _resolve_models(models, quick, seed, device, params, notes)
    capped = []
    for spec in specs:
        max_train = spec.max_train
        if spec.name in ("autoarima", "autoets") and max_train is None:
            max_train = statistical_history
        if max_history is not None:
            max_train = min(max_train or max_history, max_history)
        # a copy: the caller's specs keep their own setting
        capped.append(dataclasses.replace(spec, max_train=max_train))
    specs = capped
    fh = np.arange(1, horizon + 1)
    levels = LEVELS

    def log(message):
        if verbose:
            print(message, flush=True)

    frames, fits = [], []
    for spec in specs:
        fit = _fit_global if spec.global_ else _fit_local
        try:
            model_frames, model_fits = fit(spec, splits, fh, levels, log, notes)
        except Exception as error:  # noqa: BLE001 - one model's failure is noted
            if raise_errors:
                raise
            notes.append(f"{spec.name} failed: {type(error).__name__}: {error}")
            continue
        frames += model_frames
        fits += model_fits
    if not frames:
        raise RuntimeError("every model failed: " + "; ".join(notes))
    forecasts = _common_pairs(pd.concat(frames, ignore_index=True))
    fits_frame = pd.DataFrame(fits)
    scores = score(forecasts, levels)
    table = summarise(forecasts, scores, fits_frame, horizon, dm_loss)
    config = {
        "data": data if isinstance(data, str) else type(data).__name__,
        "series": list(panel),
        "horizon": int(horizon),
        "n_origins": len(cutoffs),
        "step": step if step is not None else int(horizon),
        "gap": gap if gap is not None else int(horizon),
        "cutoffs": [str(c) for c in cutoffs],
        "models": {
            s.name: {
                "global": s.global_,
                "group": s.group,
                "description": s.description,
                "estimator": repr(s.estimator),
                "max_train": s.max_train,
            }
            for s in specs
        },
        "levels": list(levels),
        "quick": bool(quick),
        "seed": seed,
        "dm_loss": dm_loss,
        "max_history": max_history,
    }
    history = {name: series for name, series in panel.items()}
    result = BacktestResult(
        table, scores, forecasts, fits_frame, list(cutoffs), config, history, notes
    )
    if output_dir is not None:
        result.save(output_dir, plots=plots)
    return result


def ablation(
    data="monthly",
    backbone: str = "minilm",
    backbone_kwargs: dict | None = None,
    strategies=("full", "frozen", "layernorm", "lora"),
    random_init=("full", "lora"),
    no_backbone: bool = True,
    baselines=("naive", "lstm", "fracast", "fracast-tuned"),
    params: dict | None = None,
    quick: bool = False,
    seed: int = 0,
    device: str = "auto",
    **kwargs,
) -> BacktestResult:
    """The language-model ablation as one backtest: the same architecture
    with the pretrained ``backbone`` under each of ``strategies``, the same
    backbone randomly initialised (trained with each of ``random_init``),
    and no backbone, plus ``baselines``: by default no-change, the LSTM and
    Fracast-0 zero-shot and fine-tuned (both left out when ``fracast`` is
    not installed), so that the table answers whether the pretrained
    language model earns its cost against a small pretrained time-series
    model and a network trained from scratch. ``params`` are shared
    FineTunedPriceForecaster settings (the pricetune baselines get them
    too). The table's ``trainable`` and ``fit s`` columns show what each
    variant costs. Other arguments go to :func:`backtest`."""
    if not fracast_available():
        baselines = [b for b in baselines if not b.startswith("fracast")]
    with _quiet():
        specs = [get_model(name, quick, seed, device, params) for name in baselines]
        specs += ablation_models(
            backbone,
            backbone_kwargs,
            strategies,
            tuple(random_init),
            no_backbone,
            quick=quick,
            seed=seed,
            device=device,
            overrides=params,
        )
    return backtest(data, specs, quick=quick, seed=seed, device=device, **kwargs)
