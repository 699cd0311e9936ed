"""The scripts in examples/ run, with ``--quick``, as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *args: str, timeout: float = 240) -> str:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # one thread per process: the test suite runs two pytest workers
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "remember_data" not in completed.stderr  # the examples hide that notice
    return completed.stdout


def ranked_rows(output: str) -> list[tuple[int, str, float]]:
    """(rank, model, sMAPE %) of each row of the ranked table."""
    table = output.split("Ranked candidates", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[2:]:
        match = re.match(r"\s*(\d+)\s+(\w+)\s+.*?\s(\d+\.\d+)\s+\d+\.\d+\s*$", line)
        assert match, line
        rows.append((int(match[1]), match[2], float(match[3])))
    return rows


def check_ranked_table(output: str) -> list[tuple[int, str, float]]:
    rows = ranked_rows(output)
    models = {model for _, model, _ in rows}
    assert {"pricetune", "autoarima", "naive"} <= models
    ranks = [rank for rank, _, _ in rows]
    assert ranks == sorted(ranks) and ranks[0] == 1
    smape = [score for _, _, score in rows]
    assert smape == sorted(smape)  # best first
    best = output.split("Best: ", 1)[1].split()[0]
    assert best == rows[0][1]
    forecast = output.split("forecast", 1)[1].split()[1:]
    assert len(forecast) >= 2  # a month and a value, at least
    return rows


def test_pipeline_with_covariates():
    output = run_example("pipeline_with_covariates.py", "--quick")
    for model in ("pricetune + calendar X", "pricetune, no X", "no-change"):
        assert model in output
    assert "Covariates the model reads: ['winter', 'sin_12_1', 'cos_12_1']" in output
    forecast = output.split("80% high", 1)[1].strip().splitlines()[1:]
    assert len(forecast) == 6  # the default horizon, one row per month
    for line in forecast:
        month, winter, point, low, high = line.split()
        assert re.fullmatch(r"\d{4}-\d{2}", month) and winter in {"0", "1"}
        assert 0 < float(low) <= float(high)


def test_grid_search_vs_autoarima():
    output = run_example("grid_search_vs_autoarima.py", "--quick")
    rows = check_ranked_table(output)
    assert len(rows) == 4  # autoarima, naive and two learning rates


def test_grid_search_dask():
    pytest.importorskip("distributed")
    output = run_example(
        "grid_search_dask.py", "--quick", "--compare-sequential", timeout=300
    )
    assert "Dask cluster: 2 worker processes at tcp://127.0.0.1:" in output
    assert output.count("  worker pid ") == 2
    check_ranked_table(output)
    assert "Same best parameters as the sequential run: True" in output
    difference = float(
        output.split("Largest difference of a mean score: ")[1].split()[0]
    )
    assert difference < 1e-6
