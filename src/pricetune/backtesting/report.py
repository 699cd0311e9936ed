"""Backtest output: CSV, JSON and PNG plots (matplotlib's Agg backend)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from pricetune.persistence.codec import json_value

__all__ = ["plot_error_by_horizon", "plot_forecasts", "save_result"]

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


def plot_error_by_horizon(result, path) -> Path:
    """Mean absolute error scaled by the in-sample no-change MAE (MASE) at
    each step ahead, one line per model."""
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
    order = [m for m in result.table.index if m in by_step.columns]
    for model, color in zip(order, _PALETTE * 3, strict=False):
        ax.plot(
            by_step.index, by_step[model], marker="o", ms=3, color=color, label=model
        )
    if "naive" not in order:
        ax.plot(reference.index, reference, color="black", ls="--", label="no change")
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("MAE / in-sample no-change MAE (MASE)")
    ax.set_title("Error by horizon (mean over series and origins)")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_forecasts(result, series: str, path, max_models: int = 5) -> Path:
    """Actuals of ``series`` around the cut-offs and the point forecasts of
    the best ``max_models`` models (by the table's rank) at every origin;
    the best probabilistic model's 80% interval is shaded."""
    plt = _pyplot()
    frame = result.forecasts[result.forecasts["series"] == series]
    models = [m for m in result.table.index if m in set(frame["model"])][:max_models]
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
    probabilistic = [
        m for m in models if frame.loc[frame["model"] == m, "q0.1"].notna().all()
    ]
    for model, color in zip(models, _PALETTE, strict=False):
        rows = frame[frame["model"] == model]
        for k, (_, group) in enumerate(rows.groupby("cutoff", sort=False)):
            x = [x_of.get(t, np.nan) for t in group["time"]]
            ax.plot(
                x, group["forecast"], color=color, lw=1, label=model if k == 0 else None
            )
            if probabilistic and model == probabilistic[0]:
                ax.fill_between(
                    x,
                    group["q0.1"],
                    group["q0.9"],
                    color=color,
                    alpha=0.15,
                    label=f"{model} 80% interval" if k == 0 else None,
                )
    for cutoff in result.cutoffs:
        if str(cutoff) in x_of:
            ax.axvline(x_of[str(cutoff)], color="gray", lw=0.6, ls=":")
    ticks = list(x_of)[:: max(1, len(x_of) // 8)]
    ax.set_xticks([x_of[t] for t in ticks], ticks, fontsize="small")
    ax.set_title(f"{series}: forecasts at each origin (dotted lines: cut-offs)")
    ax.legend(fontsize="small", ncol=3)
    fig.tight_layout()
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
