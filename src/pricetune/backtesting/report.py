"""Backtest output: CSV, JSON and PNG plots (matplotlib's Agg backend)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.persistence.codec import json_value

__all__ = [
    "error_by_horizon_figure",
    "forecasts_figure",
    "interval_model",
    "plot_error_by_horizon",
    "plot_forecasts",
    "save_result",
    "unit_of",
]

_PALETTE = [
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
    "tab:gray",
]


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {key: json_value(value, key, lenient=True) for key, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: line styles and markers of the error-by-horizon lines: 4 and 7 are
#: coprime, so the first 28 models each get their own (style, marker) pair
_LINESTYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
#: the groups of pricetune's own models (see ModelSpec.group)
PRICETUNE_GROUPS = ("pricetune", "ablation")


def _style(i: int, n: int) -> dict:
    """The look of the ``i``-th of ``n`` lines drawn in order: its own
    colour, line style and (hollow) marker, and a width and marker size
    that shrink along the order, so that a line drawn over an equal one
    (no-change and a model that equals it) leaves the one below showing
    around it."""
    shrink = (n - 1 - i) / max(n - 1, 1)
    return {
        "color": _PALETTE[i % len(_PALETTE)],
        "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
        "marker": _MARKERS[i % len(_MARKERS)],
        "lw": 1.0 + 1.6 * shrink,
        "ms": 4.0 + 4.0 * shrink,
        "mfc": "none",
        "mew": 1.2,
        "zorder": 2 + i,
    }


def error_by_horizon_figure(result):
    """The figure of :func:`plot_error_by_horizon` (the caller closes it:
    ``matplotlib.pyplot.close(fig)``)."""
    plt = _pyplot()
    frame = result.forecasts
    scaled = (frame["actual"] - frame["forecast"]).abs() / frame["scale"]
    by_step = scaled.groupby([frame["model"], frame["step"]]).mean().unstack(0)
    naive = (
        ((frame["actual"] - frame["last"]).abs() / frame["scale"])
        .groupby([frame["model"], frame["step"]])
        .mean()
    )
    reference = naive.xs(frame["model"].iloc[0], level=0)
    fig, ax = plt.subplots(figsize=(9, 5))
    # a fixed order (the table's ranking, then any model it lacks, by name)
    ranked = [m for m in result.table.index if m in by_step.columns]
    order = ranked + sorted(set(by_step.columns) - set(ranked))
    for i, model in enumerate(order):
        ax.plot(by_step.index, by_step[model], label=model, **_style(i, len(order)))
    if "naive" not in order:
        ax.plot(
            reference.index,
            reference,
            color="black",
            ls="--",
            zorder=1,
            label="no change",
        )
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("MAE / in-sample no-change MAE (MASE)")
    ax.set_title("Error by horizon (mean over series and origins)")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def plot_error_by_horizon(result, path) -> Path:
    """Mean absolute error scaled by the in-sample no-change MAE (MASE) at
    each step ahead, one line per model (each its own colour, line style
    and marker, drawn in the table's order)."""
    plt = _pyplot()
    fig = error_by_horizon_figure(result)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _group(result, model) -> str | None:
    return (result.config.get("models", {}).get(model) or {}).get("group")


def interval_model(result, series: str | None = None) -> str | None:
    """Whose 80% interval the forecast plots shade: the best-ranked
    pricetune model (group ``pricetune`` or ``ablation``) with quantiles
    (of ``series``, when given), else the best-ranked model with quantiles;
    None when no model has them."""
    frame = result.forecasts
    if series is not None:
        frame = frame[frame["series"] == series]
    present = set(frame["model"])
    ranked = [m for m in result.table.index if m in present]
    probabilistic = [
        m for m in ranked if frame.loc[frame["model"] == m, "q0.1"].notna().all()
    ]
    pricetune = [m for m in probabilistic if _group(result, m) in PRICETUNE_GROUPS]
    if pricetune:
        return pricetune[0]
    return probabilistic[0] if probabilistic else None


def unit_of(result, series: str) -> str | None:
    """The unit of ``series``: its history's ``attrs`` (``"unit"``, or
    ``"units"`` by name), else ``result.config["units"]``; None when
    unknown."""
    from pricetune.backtesting.units import series_unit

    unit = series_unit(result.history.get(series), series)
    if unit is None:
        unit = (result.config.get("units") or {}).get(series)
    return unit


def forecasts_figure(result, series: str, max_models: int = 5):
    """The figure of :func:`plot_forecasts` (the caller closes it)."""
    plt = _pyplot()
    frame = result.forecasts[result.forecasts["series"] == series]
    models = [m for m in result.table.index if m in set(frame["model"])][:max_models]
    shaded = interval_model(result, series)
    if shaded is not None and shaded not in models:
        models.append(shaded)  # its interval is shown with its forecast
    history = result.history.get(series)
    first_cutoff = str(result.cutoffs[0])
    fig, ax = plt.subplots(figsize=(11, 4.5))
    if history is not None:
        labels = [str(t) for t in history.index]
        # from a little before this series' own first origin (it may have
        # missed the panel's first one)
        positions = [
            labels.index(cutoff)
            for cutoff in {*frame["cutoff"].astype(str), first_cutoff}
            if cutoff in labels
        ]
        start = 0
        if positions:
            start = max(0, min(positions) - 3 * result.config["horizon"])
        end = min(
            len(labels),
            labels.index(frame["time"].iloc[-1]) + 1
            if frame["time"].iloc[-1] in labels
            else len(labels),
        )
        shown = history.iloc[start:end]
        x_of = {label: i for i, label in enumerate(labels[start:end])}
        ax.plot(
            range(len(shown)), shown.to_numpy(), color="black", lw=1.2, label="actual"
        )
    else:
        times = sorted(set(frame["time"]))
        x_of = {label: i for i, label in enumerate(times)}
    for model, color in zip(models, _PALETTE, strict=False):
        rows = frame[frame["model"] == model]
        for k, (_, group) in enumerate(rows.groupby("cutoff", sort=False)):
            x = [x_of.get(t, np.nan) for t in group["time"]]
            ax.plot(
                x, group["forecast"], color=color, lw=1, label=model if k == 0 else None
            )
            if model == shaded:
                ax.fill_between(
                    x,
                    group["q0.1"],
                    group["q0.9"],
                    color=color,
                    alpha=0.15,
                    label=f"80% interval of {model}" if k == 0 else None,
                )
    for cutoff in result.cutoffs:
        if str(cutoff) in x_of:
            ax.axvline(x_of[str(cutoff)], color="gray", lw=0.6, ls=":")
    ticks = list(x_of)[:: max(1, len(x_of) // 8)]
    ax.set_xticks([x_of[t] for t in ticks], ticks, fontsize="small")
    unit = unit_of(result, series)
    ax.set_ylabel(f"price ({unit})" if unit else "price")
    ax.set_title(f"{series}: forecasts at each origin (dotted lines: cut-offs)")
    ax.legend(fontsize="small", ncol=3)
    fig.tight_layout()
    return fig


def plot_forecasts(result, series: str, path, max_models: int = 5) -> Path:
    """Actuals of ``series`` around the cut-offs and the point forecasts of
    the best ``max_models`` models (by the table's rank) at every origin;
    the 80% interval of the best pricetune model (else of the best
    probabilistic model: :func:`interval_model`) is shaded and named in the
    legend; the y axis is in the series' unit when it is known."""
    plt = _pyplot()
    fig = forecasts_figure(result, series, max_models)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_result(result, directory, plots: bool = True) -> dict[str, Path]:
    """Write the result's files into ``directory`` (created); returns their
    paths by kind."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "summary": directory / "summary.csv",
        "scores": directory / "scores.csv",
        "forecasts": directory / "forecasts.csv",
        "fits": directory / "fits.csv",
        "json": directory / "results.json",
    }
    result.table.to_csv(paths["summary"])
    result.scores.to_csv(paths["scores"], index=False)
    result.forecasts.to_csv(paths["forecasts"], index=False)
    result.fits.to_csv(paths["fits"], index=False)
    payload = {
        "config": result.config,
        "cutoffs": [str(c) for c in result.cutoffs],
        "table": _records(result.table.reset_index()),
        "scores": _records(result.scores),
        "fits": _records(result.fits),
        "notes": list(result.notes),
    }
    paths["json"].write_text(json.dumps(payload, indent=2, default=str))
    if plots:
        paths["error_by_horizon"] = plot_error_by_horizon(
            result, directory / "error_by_horizon.png"
        )
        for series in result.forecasts["series"].unique():
            paths[f"forecasts_{series}"] = plot_forecasts(
                result, series, directory / f"forecasts_{_safe(series)}.png"
            )
    return paths
