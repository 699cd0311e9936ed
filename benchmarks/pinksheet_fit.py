"""What one fit of the forecaster costs on the World Bank Pink Sheet panel
(63 monthly commodity series), and how its training loss starts.

For each configuration it fits ``FineTunedPriceForecaster`` once, at one
origin of the validation protocol (the panel up to the cut-off, horizon
12), and prints side by side: ensemble members, wall seconds, epochs and
optimiser steps run (of every member together), seconds per step, the
first epoch's training loss, the best validation loss, and why training
stopped. A member still training after ``--limit`` seconds is stopped by
a callback at the end of that epoch (the row then says "time limit" and
its seconds are a lower bound), so 0.1.0's defaults, whose epochs pass
over every window of the panel, can be measured without running for an
hour::

    PYTHONPATH=src python benchmarks/pinksheet_fit.py       # every configuration
    PYTHONPATH=src python benchmarks/pinksheet_fit.py --configs default minilm-lora
    PYTHONPATH=src python benchmarks/pinksheet_fit.py --cutoff 2010-12 --limit 600

The configurations (``--configs``; see ``CONFIGS``), side by side in one
run:

* ``default``: the forecaster's defaults as shipped (three LSTMs, their
  forecasts mixed; a step budget: at most 40 steps of 64 windows an epoch,
  validation on 1,024 spread windows, a scale floor of 1% of the level);
* ``lstm-single``: the same with one LSTM (``n_ensemble=1``, the default
  until 2026-12-07);
* ``minilm-lora``: one MiniLM with LoRA and the same settings (the default
  before the LSTM);
* ``unbudgeted``: the defaults of 0.1.0 (MiniLM and LoRA, epochs over
  every window, batch 32, all held-out windows, a floor of 1e-6): about
  90 s an epoch here, and first-epoch losses in the hundreds;
* ``fracast-tuned``: Fracast-0 fine-tuned with the shipped cost settings.

See docs/accuracy.md for what was measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import pandas as pd
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.backtesting.models import FRACAST_TUNED
from pricetune.datasets import load_pinksheet
from pricetune.training import Callback

# every configuration but the default is one network (the default mixes
# three LSTMs: ``lstm-single`` is one of them, for the ratio)
MINILM_LORA = {"backbone": "minilm", "strategy": "lora", "n_ensemble": 1}
UNBUDGETED = {
    **MINILM_LORA,
    "steps_per_epoch": None,
    "batch_size": 32,
    "max_validation_windows": None,
    "min_scale": 1e-6,
}
CONFIGS = {
    "default": {},
    "lstm-single": {"n_ensemble": 1},
    "minilm-lora": MINILM_LORA,
    "unbudgeted": UNBUDGETED,
    "fracast-tuned": {**FRACAST_TUNED, "n_ensemble": 1},
}


class TimeLimit(Callback):
    """Stops training once ``seconds`` have passed; counts the steps."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = time.perf_counter()
        self.steps = 0
        self.hit = False

    def on_train_begin(self, run):
        self.started = time.perf_counter()

    def on_step_end(self, run):
        self.steps += 1

    def on_epoch_end(self, run, metrics):
        if time.perf_counter() - self.started > self.seconds:
            self.hit = run.should_stop = True


def fit_once(name: str, params: dict, train: pd.DataFrame, limit: float, seed: int):
    limit_callback = TimeLimit(limit)
    forecaster = FineTunedPriceForecaster(
        **{
            **params,
            "random_state": seed,
            "verbose": 0,
            "device": "cpu",
            "callbacks": [limit_callback],
        }
    )
    started = time.perf_counter()
    forecaster.fit(train, fh=list(range(1, 13)))
    seconds = time.perf_counter() - started
    history = forecaster.training_history_
    max_epochs = forecaster.get_params()["max_epochs"]
    # an ensemble's history has a row per member and epoch
    per_member = (
        history.groupby("member").size() if "member" in history else [len(history)]
    )
    stopped = (
        "time limit"
        if limit_callback.hit
        else "max_epochs"
        if max(per_member) == max_epochs
        else "early stopping"
    )
    return {
        "config": name,
        "members": len(per_member),
        "fit s": seconds,
        "epochs": len(history),
        "steps": limit_callback.steps,
        "s/step": seconds / max(limit_callback.steps, 1),
        "first train loss": history["train_loss"].iloc[0],
        "best validation loss": history["validation_loss"].min(),
        "stopped by": stopped,
    }


def markdown_table(rows: list[dict]) -> str:
    def shown(value):
        return f"{value:,.3g}" if isinstance(value, float) else str(value)

    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(shown(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--cutoff", default="2001-12", help="last month trained on")
    parser.add_argument("--limit", type=float, default=600, help="seconds per fit")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    panel = load_pinksheet(form="panel")
    cutoff = pd.Period(args.cutoff, freq="M")
    train = panel[panel.index.get_level_values("date") <= cutoff]
    rows = [
        fit_once(name, CONFIGS[name], train, args.limit, args.seed)
        for name in args.configs
    ]
    n_series = train.index.get_level_values(0).nunique()
    print(
        f"## One fit on the Pink Sheet panel: {n_series} series up to {cutoff}, "
        f"horizon 12, seed {args.seed}, time limit {args.limit:.0f} s\n"
    )
    print(markdown_table(rows))
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


if __name__ == "__main__":
    main()
