"""``pricetune backtest --quick``: the CI smoke run of the backtest."""

from __future__ import annotations

import json

import pandas as pd

from pricetune.cli import main


def test_backtest_quick_prints_the_table_and_writes_every_output(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "bt"
    assert (
        main(
            [
                "backtest",
                "--quick",
                "--origins",
                "2",
                "--output-dir",
                str(out_dir),
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    models = ["naive", "drift", "theta", "none", "lstm"]
    table = [line.split()[0] for line in out.splitlines() if line.split()]
    for model in models:
        assert model in table
    for column in ["relMAE", "MASE", "sMAPE", "MSPE", "DA", "wQL", "cov80", "DM"]:
        assert column in out
    summary = pd.read_csv(out_dir / "summary.csv", index_col="model")
    assert set(summary.index) == set(models)
    assert summary["relMAE"].is_monotonic_increasing
    assert summary.loc["naive", "relMAE"] == 1.0
    results = json.loads((out_dir / "results.json").read_text())
    assert len(results["cutoffs"]) == 2 and results["config"]["horizon"] == 12
    forecasts = pd.read_csv(out_dir / "forecasts.csv")
    pairs = forecasts.groupby("model")[["series", "cutoff"]].apply(
        lambda rows: frozenset(map(tuple, rows.drop_duplicates().to_numpy()))
    )
    # every model saw the same cut-offs, for both series
    assert pairs.nunique() == 1
    assert pairs.iloc[0] == {
        (series, cutoff) for series in ["brent", "wti"] for cutoff in results["cutoffs"]
    }
    for png in ["error_by_horizon.png", "forecasts_brent.png", "forecasts_wti.png"]:
        assert (out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backtest_quick_ablation(tmp_path, capsys):
    assert (
        main(
            [
                "backtest",
                "--quick",
                "--ablation",
                "--data",
                "brent",
                "--origins",
                "1",
                "--horizon",
                "6",
                "--output-dir",
                "-",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for variant in [
        "minilm-pretrained-full",
        "minilm-pretrained-frozen",
        "minilm-pretrained-layernorm",
        "minilm-pretrained-lora",
        "minilm-random-full",
        "minilm-random-lora",
        "no-backbone",
        "lstm",
        "fracast",  # zero-shot
        "fracast-tuned",
    ]:
        assert variant in out
    assert "trainable" in out and "fit s" in out


def test_backtest_quick_on_the_pinksheet_panel(capsys):
    """``--data pinksheet``: all 63 complete series, the last origin of the
    validation protocol (2010-12, its test year 2011)."""
    assert (
        main(
            [
                "backtest",
                "--quick",
                "--data",
                "pinksheet",
                "--models",
                "naive,drift,none",
                "--origins",
                "1",
                "--output-dir",
                "-",
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("pinksheet:"))
    # the first 8 names, then how many more
    assert "63 series (" in header and "and 55 more" in header
    assert "1 origin" in header and "(2010-12)" in header
    table = [line.split()[0] for line in out.splitlines() if line.split()]
    assert {"naive", "drift", "none"} <= set(table)


def test_max_history_caps_every_models_history(tmp_path, capsys):
    """``--max-history N`` fits every model on the last N values of each
    series at each origin; the default keeps them all for monthly data."""
    common = ["backtest", "--quick", "--data", "brent", "--models", "naive,drift"]
    common += ["--origins", "1", "--horizon", "6", "--verbose", "0", "--no-plots"]
    for extra, expected in (([], None), (["--max-history", "60"], 60)):
        out_dir = tmp_path / f"bt{expected}"
        assert main([*common, *extra, "--output-dir", str(out_dir)]) == 0
        results = json.loads((out_dir / "results.json").read_text())
        assert results["config"]["max_history"] == expected
    capsys.readouterr()
    capped = pd.read_csv(tmp_path / "bt60" / "scores.csv")
    full = pd.read_csv(tmp_path / "btNone" / "scores.csv")
    # drift's slope comes from the history it is fitted on: 60 values or all
    drift = [f.query("model == 'drift'")["MASE"].iloc[0] for f in (capped, full)]
    assert drift[0] != drift[1]
