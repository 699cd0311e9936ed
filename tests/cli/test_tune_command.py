"""``pricetune tune``: the search from the command line, its files, and its
one-line errors."""

from __future__ import annotations

import json
import re
import sys

import pandas as pd
import pytest

from pricetune.cli import main

SPACE = {
    "backbone": ["none", "lstm"],
    "learning_rate": ["log", 1e-3, 1e-2],
    "max_epochs": 2,
    "steps_per_epoch": 2,
}
TINY = [
    "--data", "brent", "--horizon", "3", "--origins", "2", "--trials", "2",
    "--no-default-space", "--param", "context_length=12",
    "--param", "patch_length=4", "--param", "batch_size=16", "--device", "cpu",
]  # fmt: skip


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pricetune: error: "), err
    return err


def test_tune_prints_the_trials_and_writes_them(tmp_path, capsys):
    pytest.importorskip("optuna")
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    out_dir = tmp_path / "out"
    argv = ["tune", *TINY, "--space", str(space), "--output-dir", str(out_dir)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 series (brent); horizon 3; 2 origins" in out
    assert "trial 0: complete, relMAE" in out  # --verbose 1: a line per trial
    assert "best: trial" in out
    trials = pd.read_csv(out_dir / "trials.csv")
    assert trials["trial"].tolist() == [0, 1]
    assert set(trials["backbone"]) <= {"none", "lstm"}
    assert ((trials["learning_rate"] >= 1e-3) & (trials["learning_rate"] <= 1e-2)).all()
    # the median pruner waits for 5 finished trials: none is pruned here
    assert trials["state"].tolist() == ["COMPLETE", "COMPLETE"]
    assert (trials["epochs"] == 2 * 2).all()  # 2 origins of 2 epochs
    best = json.loads((out_dir / "best.json").read_text())
    row = trials.loc[trials["relMAE"].idxmin()]
    assert best["trial"] == row["trial"]
    assert best["value"] == pytest.approx(row["relMAE"])
    assert best["best_params"]["backbone"] == row["backbone"]
    assert best["best_params"]["learning_rate"] == pytest.approx(row["learning_rate"])
    assert best["best_params"]["strategy"] == "full"  # trained from scratch
    assert best["params"]["context_length"] == 12
    assert best["space"]["max_epochs"] == 2
    assert best["series"] == ["brent"] and len(best["cutoffs"]) == 2
    assert f"best: trial {best['trial']}, relMAE" in out


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ('{"lerning_rate": [0.001]}', "'lerning_rate'.*did you mean 'learning_rate'"),
        ('{"learning_rate": ["log", 0, 1]}', "log range needs low > 0"),
        ("{not json", "neither a JSON object nor a JSON file"),
        ('["lstm"]', "must be a JSON object"),
    ],
)
def test_a_bad_space_is_a_one_line_usage_error(space, message, tmp_path, capsys):
    pytest.importorskip("optuna")
    argv = ["tune", *TINY, "--space", space, "--output-dir", str(tmp_path / "o")]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "--space: " in err
    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()


def test_a_setting_both_searched_and_fixed_is_a_usage_error(tmp_path, capsys):
    pytest.importorskip("optuna")
    argv = ["tune", *TINY, "--space", '{"context_length": [12, 24]}']
    assert main(argv) == 2
    assert "'context_length' is both in --space and a --param" in _one_line_error(
        capsys
    )


def test_bad_counts_are_usage_errors(capsys):
    pytest.importorskip("optuna")
    assert main(["tune", "--trials", "0"]) == 2
    assert "--trials must be at least 1" in _one_line_error(capsys)
    assert main(["tune", "--timeout", "-1"]) == 2
    assert "--timeout must be positive" in _one_line_error(capsys)


def test_without_optuna_the_command_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    assert "tune" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    assert "--space" in capsys.readouterr().out
    assert main(["tune", "--trials", "1"]) == 1
    assert "pip install 'pricetune[optuna]'" in _one_line_error(capsys)
