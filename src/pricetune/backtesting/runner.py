"""Rolling-origin backtests of many models on the same cut-offs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.backtesting.checkpoints import (
    CHECKPOINT_DIR,
    checkpoint_path,
    checkpoint_payload,
    data_digest,
    fit_fingerprint,
    read_checkpoint,
    write_checkpoint,
)
from pricetune.backtesting.fitting import (
    fit_global,
    fit_local,
    format_relmae,
    pair_relmae,
    quiet,
)
from pricetune.backtesting.models import (
    DEFAULT_MODELS,
    QUICK_MODELS,
    ModelSpec,
    ablation_models,
    fracast_available,
    get_model,
    is_global,
)
from pricetune.backtesting.scoring import LEVELS, score, summarise
from pricetune.backtesting.splitter import (
    load_panel,
    make_cutoffs,
    rolling_splits,
)
from pricetune.backtesting.units import series_units

__all__ = ["BacktestResult", "ablation", "backtest", "score", "summarise"]


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


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _add_notes(notes: list, new) -> None:
    for note in new:
        if note not in notes:
            notes.append(note)


def _common_pairs(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The forecasts of the (series, cut-off) pairs every model forecast, so
    that every model is scored on the same pairs."""
    pairs = forecasts[["model", "series", "cutoff"]].drop_duplicates()
    counts = pairs.groupby(["series", "cutoff"])["model"].transform("size")
    common = pairs[counts == pairs["model"].nunique()][["series", "cutoff"]]
    return forecasts.merge(common.drop_duplicates(), on=["series", "cutoff"])


# ------------------------------------------------------------------- API
def _check_model_params(model_params, names) -> dict:
    """``model_params`` as a dict of dicts whose keys are all in ``names``."""
    if model_params is None:
        return {}
    if not isinstance(model_params, Mapping):
        raise TypeError(
            "model_params must be a dict {model name: {parameter: value}}, got "
            f"{type(model_params).__name__}"
        )
    for name, values in model_params.items():
        if not isinstance(values, Mapping):
            raise TypeError(
                f"model_params[{name!r}] must be a dict of parameters, got "
                f"{type(values).__name__}"
            )
    unknown = [str(name) for name in model_params if name not in names]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        which = "which is" if len(unknown) == 1 else "which are"
        raise ValueError(
            f"model_params names {listed}, {which} not in this run's models: "
            + ", ".join(names)
        )
    return {str(name): dict(values) for name, values in model_params.items()}


def _with_params(spec, values):
    """A copy of a given (not named) model's spec with ``values`` set on a
    clone of its estimator."""
    from sklearn.base import clone

    estimator = clone(spec.estimator)
    try:
        estimator.set_params(**values)
    except ValueError as error:
        raise ValueError(f"model_params[{spec.name!r}]: {error}") from error
    return dataclasses.replace(
        spec, estimator=estimator, params={**spec.params, **values}
    )


def _resolve_models(models, quick, seed, device, overrides, notes, model_params=None):
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
    given = []
    for model in models:
        if isinstance(model, ModelSpec | str):
            given.append(model)
        else:
            name = type(model).__name__
            given.append(ModelSpec(name, model, is_global(model), "custom"))
    names = [m if isinstance(m, str) else m.name for m in given]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"model names must be unique; repeated: {sorted(duplicated)}")
    per_model = _check_model_params(model_params, names)
    specs = []
    for model in given:
        if isinstance(model, ModelSpec):
            values = per_model.get(model.name)
            specs.append(model if values is None else _with_params(model, values))
            continue
        merged = {**(overrides or {}), **per_model.get(model, {})}
        try:
            specs.append(get_model(model, quick, seed, device, merged or None))
        except ModuleNotFoundError as error:
            notes.append(f"{model} skipped: {error}")
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
    missing: str = "fill",
    min_train: int | None = None,
    quick: bool = False,
    seed: int = 0,
    device: str = "auto",
    params: dict | None = None,
    model_params: dict[str, dict] | None = None,
    dm_loss: str = "squared",
    output_dir=None,
    plots: bool = True,
    resume: bool = True,
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
        (``"brent"``, ``"brent,wti"``; at ``frequency``), a CSV or Parquet
        path (read by :func:`pricetune.reading.read_prices`: ``frequency``
        overrides the inferred one, ``missing`` is its policy), or the data
        (see :func:`pricetune.backtesting.splitter.to_panel`).
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
    model_params : dict, optional
        ``{model name: {FineTunedPriceForecaster parameter: value}}``: merged
        over ``params`` for that model only (``{"lstm": {"max_epochs": 1}}``).
        A model given as an object (estimator or :class:`ModelSpec`) gets
        them by ``set_params`` on a clone of its estimator. A name that is
        not one of this run's models is a ``ValueError``.
    dm_loss : {"squared", "absolute"}
    output_dir : path, optional
        write the CSV/JSON files (and PNG plots, unless ``plots=False``).
        Each finished (model, origin) is also written at once, as
        ``checkpoint/<model>/<cut-off>-<fingerprint>.json``: its forecast
        rows, fit records and notes, keyed by a fingerprint of the model's
        name and every parameter of its estimator, its history cap, the
        horizon, the quantile levels, the cut-off and the data (every
        series' values up to the cut-off and its actuals).
    resume : bool, default True
        with ``output_dir``, reuse every checkpoint whose fingerprint
        matches instead of fitting again (an interrupted run started again
        goes on where it stopped; a changed setting refits; a reused fit
        keeps the seconds it took). False: fit everything and overwrite the
        checkpoints. Code changes inside a
        model are not in the fingerprint: run with ``resume=False`` after
        one.
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
        1 prints a line when a model starts and one per (model, origin):
        ``[lstm] origin 3/10 2003-12 panel (63 series): 41.2 s, relMAE
        0.981`` (a local model: the seconds summed over the origin's series,
        ``[theta] origin 3/10 2003-12 63 series: ...``; the relMAE is the
        geometric mean over the origin's series); 2 adds a line per series
        of a local model.
    """
    if dm_loss not in ("squared", "absolute"):
        raise ValueError(f"dm_loss must be 'squared' or 'absolute', got {dm_loss!r}")
    notes: list[str] = []
    panel = load_panel(data, frequency, missing, notes)
    if cutoffs is None:
        cutoffs = make_cutoffs(panel, horizon, n_origins, step, gap)
    splits = rolling_splits(panel, cutoffs, horizon, min_train, notes)
    if not splits:
        raise ValueError("no (series, origin) pair has enough data")
    with quiet():
        specs = _resolve_models(
            models, quick, seed, device, params, notes, model_params
        )
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

    def log(message, level=1):
        if verbose >= level:
            print(message, flush=True)

    by_cutoff: dict = {}
    for split in splits:
        by_cutoff.setdefault(split.cutoff, []).append(split)
    origins = [
        (k, cutoff, by_cutoff[cutoff])
        for k, cutoff in enumerate(cutoffs, 1)
        if cutoff in by_cutoff
    ]
    n_origins_total = len(cutoffs)
    n_series = len({split.series for split in splits})
    checkpoints = None
    digests: dict = {}
    if output_dir is not None:
        checkpoints = Path(output_dir) / CHECKPOINT_DIR
        digests = {cutoff: data_digest(group) for _, cutoff, group in origins}

    frames, fits = [], []
    for spec in specs:
        fit = fit_global if spec.global_ else fit_local
        # the checkpoints of this model's origins: path, fingerprint and,
        # when resuming and it matches, what it holds
        stored: dict = {}
        for k, cutoff, _ in origins:
            if checkpoints is None:
                continue
            fingerprint = fit_fingerprint(
                spec, cutoff, digests[cutoff], horizon, levels
            )
            path = checkpoint_path(checkpoints, spec, cutoff, fingerprint)
            loaded = read_checkpoint(path, fingerprint) if resume else None
            stored[k] = (path, fingerprint, loaded)
        n_reused = sum(1 for *_, loaded in stored.values() if loaded is not None)
        if spec.global_:
            counts = (
                f"{_count(len(origins), 'fit')} (one per origin, panel of "
                f"{n_series} series)"
            )
        else:
            n_fits = sum(len(group) for *_, group in origins)
            joiner = " x " if n_fits == n_series * len(origins) else ", "
            counts = (
                f"{_count(n_fits, 'fit')} ({n_series} series"
                f"{joiner}{_count(len(origins), 'origin')})"
            )
        if n_reused:
            counts += f"; {n_reused} of {len(origins)} from the checkpoint"
        log(f"[{spec.name}] {counts}")
        model_frames, model_fits = [], []
        try:
            for k, cutoff, group in origins:
                label = f"[{spec.name}] origin {k}/{n_origins_total} {cutoff}"
                path, fingerprint, loaded = stored.get(k, (None, None, None))
                if loaded is not None:
                    unit_frames, unit_fits, unit_notes = loaded
                    _add_notes(notes, unit_notes)
                    model_frames += unit_frames
                    model_fits += unit_fits
                    log(
                        f"{label}: reused from checkpoint "
                        f"(relMAE {format_relmae(pair_relmae(unit_frames))})"
                    )
                    continue
                unit_notes: list[str] = []
                unit_frames, unit_fits = fit(
                    spec, group, fh, levels, log, unit_notes, label
                )
                _add_notes(notes, unit_notes)
                model_frames += unit_frames
                model_fits += unit_fits
                seconds = sum(record["seconds"] for record in unit_fits)
                where = f"{len(group)} series"
                if spec.global_:
                    where = f"panel ({where})"
                log(
                    f"{label} {where}: {seconds:.1f} s, "
                    f"relMAE {format_relmae(pair_relmae(unit_frames))}"
                )
                if path is not None:
                    write_checkpoint(
                        path,
                        checkpoint_payload(
                            spec,
                            k,
                            cutoff,
                            fingerprint,
                            unit_frames,
                            unit_fits,
                            unit_notes,
                        ),
                    )
        except Exception as error:  # noqa: BLE001 - one model's failure is noted
            if raise_errors:
                raise
            failure = f"{spec.name} failed: {type(error).__name__}: {error}"
            log(f"[{spec.name}] failed: {type(error).__name__}: {error}")
            notes.append(failure)
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
                "params": dict(s.params),
                "max_train": s.max_train,
            }
            for s in specs
        },
        "model_params": {str(k): dict(v) for k, v in (model_params or {}).items()},
        "levels": list(levels),
        "quick": bool(quick),
        "seed": seed,
        "dm_loss": dm_loss,
        "max_history": max_history,
        "units": series_units(panel, data),
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
    model_params: dict[str, dict] | None = None,
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
    too); ``model_params`` (``{name: {parameter: value}}``, names of the
    baselines or of the variants, e.g. ``"minilm-pretrained-lora"``) are
    merged over them for one model. The table's ``trainable`` and ``fit s``
    columns show what each variant costs. Other arguments go to
    :func:`backtest`."""
    requested = list(baselines)
    if not fracast_available():
        baselines = [b for b in baselines if not b.startswith("fracast")]
    variant_args = (backbone, backbone_kwargs, strategies, tuple(random_init))

    def variants(overrides):
        return ablation_models(
            *variant_args,
            no_backbone,
            quick=quick,
            seed=seed,
            device=device,
            overrides=overrides,
        )

    def merged(name):
        return {**(params or {}), **per_model.get(name, {})} or None

    with quiet():
        specs = variants(params)
        per_model = _check_model_params(
            model_params, requested + [spec.name for spec in specs]
        )
        for i, spec in enumerate(specs):
            if spec.name in per_model:
                rebuilt = variants(merged(spec.name))
                specs[i] = next(s for s in rebuilt if s.name == spec.name)
        specs = [
            get_model(name, quick, seed, device, merged(name)) for name in baselines
        ] + specs
    return backtest(data, specs, quick=quick, seed=seed, device=device, **kwargs)
