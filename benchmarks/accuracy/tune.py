"""Tuning grid for the default FineTunedPriceForecaster (docs/accuracy.md).

Runs candidate configurations through the backtest on the *validation*
origins (the five origins just before the evaluation ones) and, with
``--split eval``, on the evaluation origins; one process per job, one thread
each. Seed ensembles are formed afterwards by averaging the saved forecasts
and quantiles of single-seed runs (``--combine``).

    python benchmarks/accuracy/tune.py --data monthly --split val --jobs 2
    python benchmarks/accuracy/tune.py --data monthly --combine [--all-seeds]

Each job writes ``<out>/<data>-<split>/<config>-s<seed>.csv`` (the
backtest's forecast rows); ``--combine`` prints and writes
``summary-<data>-<split>.csv`` (with ``--all-seeds``, a row per seed too).
Jobs run one torch thread each: ``OMP_NUM_THREADS=1 pricetune backtest``
gives the same forecasts; another thread count gives another fit.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import time
from pathlib import Path

HORIZON = {"monthly": 12, "daily": 20}
STEP = {"monthly": 12, "daily": 20}

BASE = {"head": "quantile", "strategy": "full"}
# the default's context and patches (the grid's other settings change one thing)
C24 = {"context_length": 24, "patch_length": 6}


def configs(data: str) -> dict[str, dict]:
    """name -> FineTunedPriceForecaster parameters (``log``: fit on log
    prices through sktime's TransformedTargetForecaster, ``"returns"``: on
    their first differences; ``local``: one model per series instead of
    one for the panel)."""
    grid = {
        # FineTunedPriceForecaster() as shipped when the grid ran (context
        # 64, patch 8; see below); the default is now minilm-lora-c24
        "default": {},
        "minilm-lora-c24": dict(C24),
        # the default since context 24 was chosen, as a 3-member ensemble
        "minilm-lora-c24-n3": {
            **C24,
            "n_ensemble": 3,
        },
        "minilm-lora-c64-mean": {"normalization": "mean"},
        "minilm-lora-c64-log": {"log": True},
        "none-c24": {
            **BASE,
            "backbone": "none",
            **C24,
        },
        "none-c64": {**BASE, "backbone": "none"},
        "none-c64-mean": {**BASE, "backbone": "none", "normalization": "mean"},
        "none-c64-log": {**BASE, "backbone": "none", "log": True},
        "none-c24-log": {
            **BASE,
            "backbone": "none",
            **C24,
            "log": True,
        },
        "lstm-c24": {
            **BASE,
            "backbone": "lstm",
            **C24,
        },
        "lstm-c64": {**BASE, "backbone": "lstm"},
        "lstm-c64-log": {**BASE, "backbone": "lstm", "log": True},
        "gru-c64": {**BASE, "backbone": "gru"},
        "none-c64-wd": {**BASE, "backbone": "none", "weight_decay": 0.01},
        "minilm-frozen-c64": {"strategy": "frozen"},
        "minilm-layernorm-c64": {"strategy": "layernorm"},
        "minilm-lora-c64-lr3e-4": {"learning_rate": 3e-4},
        "minilm-lora-c24-log": {**C24, "log": True},
        "none-c24-e5": {
            **BASE,
            "backbone": "none",
            **C24,
            "max_epochs": 5,
        },
        "none-c24-lr1e-4": {
            **BASE,
            "backbone": "none",
            **C24,
            "learning_rate": 1e-4,
        },
        "none-c64-lr1e-4": {**BASE, "backbone": "none", "learning_rate": 1e-4},
        "lstm-c24-lr1e-4": {
            **BASE,
            "backbone": "lstm",
            **C24,
            "learning_rate": 1e-4,
        },
        "minilm-lora-c24-lr3e-4": {
            **C24,
            "learning_rate": 3e-4,
        },
        "minilm-lora-c24-v30": {
            **C24,
            "validation_fraction": 0.3,
        },
        "minilm-lora-c24-lr1e-4": {
            **C24,
            "learning_rate": 1e-4,
        },
        # exponential moving average of the weights, mean age 1 or 3 epochs
        "minilm-lora-c24-ema1": {
            **C24,
            "ema_epochs": 1,
        },
        "minilm-lora-c24-ema3": {
            **C24,
            "ema_epochs": 3,
        },
        # the rest of the list for the default, one change each
        "minilm-lora-c24-mean": {
            **C24,
            "normalization": "mean",
        },
        "minilm-lora-c24-p4": {"context_length": 24, "patch_length": 4},
        "minilm-lora-c24-p12": {"context_length": 24, "patch_length": 12},
        "minilm-lora-c24-student-t": {
            **C24,
            "head": "student_t",
        },
        # quantiles rescaled around the median on the validation windows
        "minilm-lora-c24-cal": {
            **C24,
            "calibrate_intervals": True,
        },
        "minilm-lora-c24-student-t-cal": {
            **C24,
            "head": "student_t",
            "calibrate_intervals": True,
        },
        "minilm-lora-c24-returns": {
            **C24,
            "normalization": "mean",
            "log": "returns",
        },
        "minilm-lora-c24-local": {
            **C24,
            "local": True,
        },
        "minilm-lora-c64-e5": {"max_epochs": 5},
        "gru-c24": {**BASE, "backbone": "gru", **C24},
        "lstm-c24-log": {
            **BASE,
            "backbone": "lstm",
            **C24,
            "log": True,
        },
    }
    if data == "daily":
        grid = {
            "default": {},
            "minilm-lora-c24": dict(C24),
            "minilm-lora-c24-cal": {
                **C24,
                "calibrate_intervals": True,
            },
            "minilm-lora-c24-log": {
                **C24,
                "log": True,
            },
            "minilm-lora-c128": {"context_length": 128, "patch_length": 16},
            "minilm-lora-c64-log": {"log": True},
            "none-c64": {**BASE, "backbone": "none"},
            "none-c128": {
                **BASE,
                "backbone": "none",
                "context_length": 128,
                "patch_length": 16,
            },
            "none-c64-log": {**BASE, "backbone": "none", "log": True},
            "lstm-c64": {**BASE, "backbone": "lstm"},
            "lstm-c64-log": {**BASE, "backbone": "lstm", "log": True},
            "none-c64-mean": {**BASE, "backbone": "none", "normalization": "mean"},
            "minilm-lora-c64-mean": {"normalization": "mean"},
        }
    # names say the context: "-c64" rows (and "default", as the grid ran)
    # used context 64 with patches of 8, the forecaster's default until it
    # became 24 with patches of 6
    for name, params in grid.items():
        if "-c64" in name or name == "default":
            params.setdefault("context_length", 64)
            params.setdefault("patch_length", 8)
    return grid


BASELINES = ["naive", "drift", "autoarima", "autoets", "theta", "fracast"]


def ablation_names() -> list[str]:
    """The language-model ablation's variants, as ``pricetune backtest
    --ablation`` defines them (all 6 MiniLM layers here; its pretrained
    LoRA variant is the default, ``minilm-lora-c24``)."""
    from pricetune.backtesting.models import ablation_models

    return [spec.name for spec in ablation_models()]


def build(params: dict, seed: int, device: str):
    from pricetune import FineTunedPriceForecaster
    from pricetune.backtesting.models import ModelSpec

    params = dict(params)
    log = params.pop("log", False)
    local = params.pop("local", False)
    forecaster = FineTunedPriceForecaster(
        **params, random_state=seed, verbose=0, device=device
    )
    if log:
        from sktime.forecasting.compose import TransformedTargetForecaster
        from sktime.transformations.series.boxcox import LogTransformer
        from sktime.transformations.series.difference import Differencer

        steps = [("log", LogTransformer())]
        if log == "returns":
            steps.append(("returns", Differencer()))
        forecaster = TransformedTargetForecaster([*steps, ("model", forecaster)])
    return ModelSpec("x", forecaster, not local, "tuning")


def gap(data: str, split: str) -> int:
    h, step = HORIZON[data], STEP[data]
    return h + (5 * step if split == "val" else 0)


def run_job(job):
    data, split, name, seed, out, device = job
    import torch

    torch.set_num_threads(1)
    from pricetune.backtesting import backtest
    from pricetune.backtesting.models import ModelSpec, get_model
    from pricetune.cli import DAILY_HISTORY

    path = Path(out) / f"{data}-{split}" / f"{name}-s{seed}.csv"
    if path.exists():
        return name, seed, 0.0
    started = time.time()
    if name in BASELINES:
        spec = get_model(name)
    elif name in ablation_names():
        spec = get_model(name, seed=seed, device=device)
    else:
        spec = build(configs(data)[name], seed, device)
    spec = ModelSpec(name, spec.estimator, spec.global_, spec.group)
    result = backtest(
        data,
        [spec],
        horizon=HORIZON[data],
        n_origins=5,
        step=STEP[data],
        gap=gap(data, split),
        max_history=DAILY_HISTORY if data == "daily" else None,
        raise_errors=True,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = result.forecasts
    fits = result.fits.groupby("cutoff")["seconds"].sum().mean()
    frame["fit_s"] = fits
    frame["trainable"] = result.fits["n_trainable"].max()
    frame.to_csv(path, index=False)
    return name, seed, time.time() - started


def combine(out: Path, data: str, split: str, all_seeds: bool = False):
    import pandas as pd

    from pricetune.backtesting.runner import LEVELS, score, summarise

    folder = out / f"{data}-{split}"
    frames = []
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path)
        model, seed = path.stem.rsplit("-s", 1)
        frame["model"], frame["seed"] = model, int(seed)
        frames.append(frame)
    if not frames:
        return None
    every = pd.concat(frames, ignore_index=True)
    q = [f"q{level:g}" for level in LEVELS]
    keys = ["model", "series", "cutoff", "step", "time"]
    single = every[every["seed"] == 0].copy()
    if all_seeds:  # every seed's own row too: "<model>-s<seed>"
        others = every[every["seed"] != 0].copy()
        others["model"] = others["model"] + "-s" + others["seed"].astype(str)
        single = pd.concat([single, others], ignore_index=True)
    ensembles = []
    for model, group in every.groupby("model"):
        n = group["seed"].nunique()
        if n >= 2:
            mean = group.groupby(keys, sort=False)[["forecast", *q]].mean()
            first = group[group["seed"] == group["seed"].min()].set_index(keys)
            ens = first.copy()
            ens[["forecast", *q]] = mean.loc[first.index]
            ens = ens.reset_index()
            ens["model"] = f"{model}-ens{n}"
            ens["fit_s"] = first["fit_s"].to_numpy() * n
            ensembles.append(ens)
    frame = pd.concat([single, *ensembles], ignore_index=True)
    scores = score(frame, LEVELS)
    fits = (
        frame.groupby(["model", "cutoff"])[["fit_s", "trainable"]]
        .first()
        .reset_index()
        .rename(columns={"fit_s": "seconds", "trainable": "n_trainable"})
    )
    fits["series"] = "*"
    table = summarise(frame, scores, fits, HORIZON[data])
    table.to_csv(folder.parent / f"summary-{data}-{split}.csv")
    return table


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="monthly")
    parser.add_argument("--split", default="val", choices=["val", "eval"])
    parser.add_argument("--only", default="*", help="comma-separated globs")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--baselines", action="store_true")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/accuracy/results")
    parser.add_argument("--combine", action="store_true")
    parser.add_argument(
        "--all-seeds", action="store_true", help="with --combine: a row per seed"
    )
    args = parser.parse_args()
    out = Path(args.out)
    if args.combine:
        import pandas as pd

        pd.set_option("display.width", 250)
        for split in ("val", "eval"):
            table = combine(out, args.data, split, args.all_seeds)
            if table is not None:
                print(f"\n== {args.data} {split}")
                print(table.round(3).to_string())
        return
    patterns = args.only.split(",")
    names = [
        n
        for n in [*configs(args.data), *ablation_names()]
        if any(fnmatch.fnmatch(n, p) for p in patterns)
    ]
    if args.baselines:
        names = BASELINES + names
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [
        (args.data, args.split, name, seed, str(out), args.device)
        for name in names
        for seed in (seeds if name not in BASELINES else [0])
    ]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from multiprocessing import get_context

    with get_context("spawn").Pool(args.jobs) as pool:
        for name, seed, seconds in pool.imap_unordered(run_job, jobs):
            print(f"{name} seed {seed}: {seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
