"""Checkpoints of a backtest under ``output_dir``: each finished (model,
origin) is written at once and reused by the next run with the same
settings, so that an interrupted run started again goes on; a changed
setting refits. And the progress lines."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from sktime.forecasting.naive import NaiveForecaster

from pricetune.backtesting import backtest
from pricetune.backtesting.models import ModelSpec

FITS: list = []
#: cut-offs at which Flaky raises (module state, not a parameter: a
#: parameter would change the fingerprint)
FAIL_AT: set = set()


class Counting(NaiveForecaster):
    """Records every fit: (series, last time point)."""

    def _fit(self, y, X=None, fh=None):
        FITS.append((y.name, y.index[-1]))
        return super()._fit(y, X=X, fh=fh)


class Flaky(Counting):
    """Fails at the cut-offs in FAIL_AT, as an interrupted run would."""

    def _fit(self, y, X=None, fh=None):
        if y.index[-1] in FAIL_AT:
            raise RuntimeError("interrupted")
        return super()._fit(y, X=X, fh=fh)


class DropsShort(NaiveForecaster):
    """A panel model that gives no forecast of the series "short" (as a
    pricetune model does for a series shorter than its context)."""

    @staticmethod
    def _without_short(frame):
        return frame[frame.index.get_level_values(0) != "short"]

    def predict(self, fh=None, X=None):
        return self._without_short(super().predict(fh=fh, X=X))

    def predict_quantiles(self, fh=None, X=None, alpha=None):
        return self._without_short(super().predict_quantiles(fh=fh, X=X, alpha=alpha))


@pytest.fixture(autouse=True)
def _clear():
    FITS.clear()
    FAIL_AT.clear()
    yield
    FITS.clear()
    FAIL_AT.clear()


def _panel(n=60):
    index = pd.period_range("2000-01", periods=n, freq="M")
    rng = np.random.default_rng(0)
    return {
        "a": pd.Series(100 + rng.normal(size=n).cumsum(), index=index, name="a"),
        "b": pd.Series(50 + rng.normal(size=n).cumsum(), index=index, name="b"),
    }


RUN = {"horizon": 4, "n_origins": 3, "plots": False}


def _models(cls=Counting, **params):
    return {
        "naive": NaiveForecaster(),
        "count": cls(**params),
        "drift": NaiveForecaster(strategy="drift"),
    }


def _checkpoints(directory):
    return sorted((directory / "checkpoint").rglob("*.json"))


def test_a_second_run_reuses_every_checkpoint_and_gives_the_same_table(tmp_path):
    models = ["naive", "drift", "theta"]
    first = backtest(_panel(), [*models, Counting()], **RUN, output_dir=tmp_path)
    assert len(FITS) == 2 * 3  # series x origins
    summary = (tmp_path / "summary.csv").read_text()
    # one file per (model, origin), nothing half-written left behind
    files = _checkpoints(tmp_path)
    assert len(files) == 4 * 3
    assert not [p for p in (tmp_path / "checkpoint").rglob("*") if p.suffix == ".tmp"]
    assert {p.parent.name for p in files} == {"naive", "drift", "theta", "Counting"}
    payload = json.loads(files[0].read_text())
    assert {"fingerprint", "rows", "fits", "notes", "cutoff", "model"} <= set(payload)
    assert re.fullmatch(r"\d{4}-\d{2}-[0-9a-f]{16}\.json", files[0].name)

    FITS.clear()
    second = backtest(_panel(), [*models, Counting()], **RUN, output_dir=tmp_path)
    assert FITS == []  # nothing refitted
    pd.testing.assert_frame_equal(first.table, second.table)
    pd.testing.assert_frame_equal(first.forecasts, second.forecasts)
    pd.testing.assert_frame_equal(first.scores, second.scores)
    pd.testing.assert_frame_equal(first.fits, second.fits)
    assert (tmp_path / "summary.csv").read_text() == summary
    assert second.notes == first.notes


def test_a_changed_setting_refits(tmp_path):
    backtest(_panel(), _models(), **RUN, output_dir=tmp_path)
    FITS.clear()
    # a parameter of the estimator
    backtest(_panel(), _models(strategy="mean"), **RUN, output_dir=tmp_path)
    assert len(FITS) == 6
    FITS.clear()
    # back to the first setting: its checkpoints are still there
    backtest(_panel(), _models(), **RUN, output_dir=tmp_path)
    assert FITS == []
    # the history cap
    backtest(_panel(), _models(), **RUN, output_dir=tmp_path, max_history=30)
    assert len(FITS) == 6
    FITS.clear()
    # the horizon
    backtest(_panel(), _models(), **{**RUN, "horizon": 3}, output_dir=tmp_path)
    assert len(FITS) == 6


def test_changed_data_refit_only_the_origins_that_see_them(tmp_path):
    panel = _panel()
    first = backtest(panel, _models(), **RUN, output_dir=tmp_path)
    cutoffs = first.cutoffs
    FITS.clear()
    revised = {name: series.copy() for name, series in panel.items()}
    # a revised value after the second cut-off, inside its test window
    revised["a"].loc[cutoffs[1] + 1] += 1.0
    backtest(revised, _models(), **RUN, output_dir=tmp_path)
    # the first origin does not see it (its test window ends before)
    assert cutoffs[0] + RUN["horizon"] < cutoffs[1] + 1
    assert sorted(cutoff for _, cutoff in FITS) == sorted(
        [cutoffs[1], cutoffs[1], cutoffs[2], cutoffs[2]]
    )


def test_an_interrupted_run_goes_on_where_it_stopped(tmp_path):
    panel = _panel()
    cutoffs = backtest(panel, ["naive"], **RUN).cutoffs
    FAIL_AT.add(cutoffs[1])
    with pytest.raises(RuntimeError, match="interrupted"):
        backtest(panel, _models(Flaky), **RUN, output_dir=tmp_path, raise_errors=True)
    # naive finished; the flaky model finished its first origin only
    assert len(list((tmp_path / "checkpoint" / "naive").glob("*.json"))) == 3
    assert len(list((tmp_path / "checkpoint" / "count").glob("*.json"))) == 1
    assert not (tmp_path / "summary.csv").exists()
    FAIL_AT.clear()
    FITS.clear()
    resumed = backtest(panel, _models(Flaky), **RUN, output_dir=tmp_path)
    # only the missing origins are fitted
    assert sorted(cutoff for _, cutoff in FITS) == sorted(
        [cutoffs[1], cutoffs[1], cutoffs[2], cutoffs[2]]
    )
    whole = backtest(panel, _models(Flaky), **RUN)
    pd.testing.assert_frame_equal(resumed.forecasts, whole.forecasts)
    columns = [c for c in whole.table.columns if c != "fit s"]
    pd.testing.assert_frame_equal(resumed.table[columns], whole.table[columns])


def test_a_noted_failure_keeps_the_finished_origins(tmp_path):
    panel = _panel()
    cutoffs = backtest(panel, ["naive"], **RUN).cutoffs
    FAIL_AT.add(cutoffs[2])
    result = backtest(panel, _models(Flaky), **RUN, output_dir=tmp_path)
    assert "count" not in result.table.index
    assert any("count failed" in note for note in result.notes)
    assert len(list((tmp_path / "checkpoint" / "count").glob("*.json"))) == 2
    FAIL_AT.clear()
    FITS.clear()
    result = backtest(panel, _models(Flaky), **RUN, output_dir=tmp_path)
    assert "count" in result.table.index
    assert sorted(cutoff for _, cutoff in FITS) == [cutoffs[2], cutoffs[2]]


def test_resume_false_refits_and_a_broken_checkpoint_is_refitted(tmp_path):
    backtest(_panel(), _models(), **RUN, output_dir=tmp_path)
    FITS.clear()
    backtest(_panel(), _models(), **RUN, output_dir=tmp_path, resume=False)
    assert len(FITS) == 6
    # overwritten in place, not added
    assert len(_checkpoints(tmp_path)) == 3 * 3
    FITS.clear()
    broken = sorted((tmp_path / "checkpoint" / "count").glob("*.json"))[0]
    broken.write_text('{"format": 1, "fingerp')
    backtest(_panel(), _models(), **RUN, output_dir=tmp_path)
    assert len(FITS) == 2  # that origin's two series
    json.loads(broken.read_text())  # rewritten whole


def test_the_notes_of_a_fit_come_back_with_its_checkpoint(tmp_path):
    panel = _panel()
    panel["short"] = panel["b"].rename("short") + 10
    models = [
        "naive",
        ModelSpec("drops", DropsShort(), global_=True, group="custom"),
    ]
    first = backtest(panel, models, **RUN, output_dir=tmp_path)
    assert "short" not in set(first.forecasts["series"])
    dropped = [
        note for note in first.notes if "drops gave no forecast of short" in note
    ]
    assert len(dropped) == 3
    second = backtest(panel, models, **RUN, output_dir=tmp_path, verbose=1)
    assert [n for n in second.notes if "gave no forecast" in n] == dropped
    assert second.notes == first.notes
    pd.testing.assert_frame_equal(first.table, second.table)


# ------------------------------------------------------------------ progress
NUMBER = r"\d+\.\d s, relMAE (\d\.\d{3}|-)"


def test_progress_lines_of_a_local_model(capsys):
    result = backtest(_panel(), ["naive", "theta"], **RUN, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    c = [str(cutoff) for cutoff in result.cutoffs]
    assert lines[0] == "[naive] 6 fits (2 series x 3 origins)"
    assert re.fullmatch(rf"\[naive\] origin 1/3 {c[0]} 2 series: {NUMBER}", lines[1])
    assert lines[1].endswith("relMAE 1.000")
    assert re.fullmatch(rf"\[naive\] origin 3/3 {c[2]} 2 series: {NUMBER}", lines[3])
    assert lines[4] == "[theta] 6 fits (2 series x 3 origins)"
    # one line per (model, origin), one per model start
    assert len(lines) == 2 * (1 + 3)
    # the origin's relMAE is the geometric mean over its series
    scores = result.scores[result.scores["model"] == "theta"]
    first = scores[scores["cutoff"] == c[0]]["relMAE"]
    expected = float(np.exp(np.log(first).mean()))
    assert lines[5].endswith(f"relMAE {expected:.3f}")


def test_progress_lines_per_series_at_verbose_2(capsys):
    result = backtest(_panel(), ["drift"], **{**RUN, "n_origins": 1}, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    c = str(result.cutoffs[0])
    assert lines[0] == "[drift] 2 fits (2 series x 1 origin)"
    assert re.fullmatch(rf"\[drift\] origin 1/1 {c} a: {NUMBER}", lines[1])
    assert re.fullmatch(rf"\[drift\] origin 1/1 {c} b: {NUMBER}", lines[2])
    assert re.fullmatch(rf"\[drift\] origin 1/1 {c} 2 series: {NUMBER}", lines[3])


def test_progress_lines_of_a_panel_model_and_of_reused_origins(tmp_path, capsys):
    panel = _panel()
    spec = ModelSpec("panelnaive", NaiveForecaster(), global_=True, group="custom")
    result = backtest(panel, [spec], **RUN, output_dir=tmp_path, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    c = [str(cutoff) for cutoff in result.cutoffs]
    assert lines[0] == "[panelnaive] 3 fits (one per origin, panel of 2 series)"
    assert re.fullmatch(
        rf"\[panelnaive\] origin 2/3 {c[1]} panel \(2 series\): {NUMBER}", lines[2]
    )
    backtest(panel, [spec], **RUN, output_dir=tmp_path, verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "[panelnaive] 3 fits (one per origin, panel of 2 series); "
        "3 of 3 from the checkpoint"
    )
    assert lines[1] == (
        f"[panelnaive] origin 1/3 {c[0]}: reused from checkpoint (relMAE 1.000)"
    )
    assert len(lines) == 4


def test_nothing_is_printed_at_verbose_0(capsys):
    backtest(_panel(), ["naive"], **RUN)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------- fingerprint
FINGERPRINT = """
import json
from pricetune.backtesting.models import get_model
from pricetune.backtesting.checkpoints import _canonical
print(json.dumps(_canonical(get_model("combined", quick=True).estimator)))
"""


def test_the_estimator_fingerprint_is_complete_and_the_same_in_a_new_process():
    import os
    import subprocess
    import sys

    from pricetune.backtesting.checkpoints import _canonical
    from pricetune.backtesting.models import get_model

    def text(**overrides):
        spec = get_model("combined", quick=True, overrides=overrides or None)
        return json.dumps(_canonical(spec.estimator))

    # a parameter of a nested estimator (the combination's LSTM) counts
    assert text() == text() != text(max_epochs=3)
    assert "0x" not in text()
    env = {**os.environ, "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", FINGERPRINT],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    ).stdout
    assert out.strip().splitlines()[-1] == text()
