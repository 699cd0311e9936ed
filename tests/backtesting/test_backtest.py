"""The rolling-origin splitter (no look-ahead, shared cut-offs) and the
backtest runner on tiny models."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sktime.forecasting.naive import NaiveForecaster

import pricetune
from pricetune import FineTunedPriceForecaster
from pricetune.backtesting import (
    backtest,
    load_panel,
    make_cutoffs,
    rolling_splits,
    train_test,
)
from pricetune.backtesting.models import (
    ModelSpec,
    ablation_models,
    get_model,
    is_global,
)

SEEN: list = []


class SpyNaive(NaiveForecaster):
    """A local model that records the last time point it is fitted on."""

    def _fit(self, y, X=None, fh=None):
        SEEN.append(("local", y.name, y.index[-1]))
        return super()._fit(y, X=X, fh=fh)


class SpyPricetune(FineTunedPriceForecaster):
    """A global model that records each series' last time point in fit."""

    def _fit(self, y, X=None, fh=None):
        for name, rows in y.groupby(level=0):
            SEEN.append(("global", name, rows.index.get_level_values(-1)[-1]))
        return super()._fit(y, X=X, fh=fh)


def _panel(n=60):
    index = pd.period_range("2000-01", periods=n, freq="M")
    rng = np.random.default_rng(0)
    return {
        "a": pd.Series(100 + rng.normal(size=n).cumsum(), index=index, name="a"),
        # ends one month early and starts later
        "b": pd.Series(
            50 + rng.normal(size=n - 11).cumsum(), index=index[10:-1], name="b"
        ),
    }


def test_cutoffs_end_a_horizon_before_the_first_series_to_end():
    panel = _panel()
    cutoffs = make_cutoffs(panel, horizon=6, n_origins=3, step=4)
    last_b = panel["b"].index[-1]
    assert cutoffs == [last_b - 14, last_b - 10, last_b - 6]
    assert make_cutoffs(panel, 6, 2, gap=10)[-1] == last_b - 10


def test_cutoffs_of_the_builtin_monthly_panel():
    panel = load_panel("monthly")
    assert list(panel) == ["brent", "wti", "henry_hub", "gold"]
    cutoffs = make_cutoffs(panel, horizon=12, n_origins=5)
    end = min(series.index[-1] for series in panel.values())
    assert cutoffs == [end - 12 * k for k in (5, 4, 3, 2, 1)]


def test_too_many_origins_fail():
    with pytest.raises(ValueError, match="too short"):
        make_cutoffs(_panel(), horizon=6, n_origins=20)


def test_splits_never_look_ahead():
    panel = _panel()
    cutoffs = make_cutoffs(panel, horizon=6, n_origins=3)
    splits = rolling_splits(panel, cutoffs, horizon=6)
    assert {(s.series, s.cutoff) for s in splits} == {
        (name, c) for name in panel for c in cutoffs
    }
    for split in splits:
        series = panel[split.series]
        assert split.train.index[-1] == split.cutoff
        assert split.train.index.max() < split.test.index.min()
        assert len(split.test) == 6
        # the training data are exactly the series up to the cut-off
        assert split.train.equals(series.loc[: split.cutoff])
        assert split.test.index[0] == split.cutoff + 1


def test_series_too_short_at_an_origin_is_left_out():
    panel = _panel()
    cutoffs = [panel["b"].index[3], panel["b"].index[30]]
    splits = rolling_splits(panel, cutoffs, horizon=6, min_train=10)
    assert ("b", cutoffs[0]) not in {(s.series, s.cutoff) for s in splits}
    assert ("b", cutoffs[1]) in {(s.series, s.cutoff) for s in splits}


def test_a_gap_in_the_test_window_leaves_that_pair_out():
    panel = _panel()
    cutoffs = make_cutoffs(panel, horizon=6, n_origins=2)
    # a month missing from "a" two steps after the first cut-off, as a wide
    # DataFrame with a hole gives after dropna
    hole = cutoffs[0] + 2
    panel["a"] = panel["a"].drop(hole)
    pairs = {(s.series, s.cutoff) for s in rolling_splits(panel, cutoffs, 6)}
    assert ("a", cutoffs[0]) not in pairs  # not scored against shifted actuals
    assert {("a", cutoffs[1]), ("b", cutoffs[0]), ("b", cutoffs[1])} <= pairs
    for split in rolling_splits(panel, cutoffs, 6):
        assert list(split.test.index) == [split.cutoff + k for k in range(1, 7)]


def test_train_test_by_label():
    series = _panel()["a"]
    train, test = train_test(series, series.index[9], 3)
    assert len(train) == 10 and list(test.index) == list(series.index[10:13])


def test_models_only_see_data_up_to_the_cutoff_and_share_cutoffs():
    SEEN.clear()
    panel = _panel()
    tiny = FineTunedPriceForecaster.get_test_params()[1]
    models = {
        "spy-local": SpyNaive(strategy="last"),
        "spy-global": SpyPricetune(**{**tiny, "context_length": 8}),
    }
    result = backtest(panel, models, horizon=6, n_origins=3, step=6)
    cutoffs = result.cutoffs
    # every fit saw each series exactly up to one of the cut-offs
    seen = pd.DataFrame(SEEN, columns=["kind", "series", "last"])
    assert set(seen["last"]) <= set(cutoffs)
    for kind in ("local", "global"):
        rows = seen[seen["kind"] == kind]
        assert sorted(map(str, rows["last"])) == sorted(
            str(c) for c in cutoffs for _ in panel
        )
    # and every model was scored on the same (series, cut-off) pairs
    pairs = result.forecasts.groupby("model")[["series", "cutoff"]].apply(
        lambda rows: frozenset(map(tuple, rows.drop_duplicates().to_numpy()))
    )
    assert pairs.nunique() == 1 and len(pairs.iloc[0]) == 2 * 3
    assert list(result.table.index) == sorted(
        result.table.index, key=lambda m: result.table.loc[m, "relMAE"]
    )
    assert result.config["models"]["spy-global"]["global"] is True
    assert result.config["models"]["spy-local"]["global"] is False


def test_naive_scores_one_and_forecast_rows_are_complete():
    panel = _panel()
    result = backtest(panel, ["naive", "drift"], horizon=4, n_origins=2)
    naive = result.table.loc["naive"]
    assert naive["relMAE"] == pytest.approx(1.0)
    assert naive["MSPE ratio"] == pytest.approx(1.0)
    assert np.isnan(naive["DM"]) and np.isnan(naive["DA"])
    rows = result.forecasts[result.forecasts["model"] == "naive"]
    np.testing.assert_allclose(rows["forecast"], rows["last"])
    assert len(result.forecasts) == 2 * 2 * 2 * 4  # models, series, origins, steps
    # naive is probabilistic in sktime: it has quantiles and a coverage
    assert 0 <= naive["cov80"] <= 1 and naive["wQL"] > 0


def test_scores_match_the_metrics_on_one_forecast():
    from pricetune.backtesting import metrics as M

    panel = _panel()
    result = backtest(panel, ["drift"], horizon=4, n_origins=1)
    row = result.scores.iloc[0]
    split = rolling_splits(panel, result.cutoffs, 4)[0]
    forecast = result.forecasts.query(
        "series == @split.series and cutoff == @row.cutoff"
    )["forecast"]
    assert row["MASE"] == pytest.approx(
        M.mase(split.test, forecast, split.train.to_numpy())
    )
    assert row["relMAE"] == pytest.approx(
        M.relative_mae(split.test, forecast, split.train)
    )


def test_a_failing_model_is_noted_not_fatal():
    class Broken(NaiveForecaster):
        def _fit(self, y, X=None, fh=None):
            raise RuntimeError("boom")

    result = backtest(
        _panel(),
        {"naive": NaiveForecaster(), "broken": Broken()},
        horizon=4,
        n_origins=1,
    )
    assert list(result.table.index) == ["naive"]
    assert any("broken failed" in note for note in result.notes)
    with pytest.raises(RuntimeError, match="boom"):
        backtest(
            _panel(), {"broken": Broken()}, horizon=4, n_origins=1, raise_errors=True
        )


def test_warnings_of_models_stay_out_of_the_output():
    class Noisy(NaiveForecaster):
        def _fit(self, y, X=None, fh=None):
            warnings.simplefilter("always")  # as some libraries do inside
            warnings.warn("noisy fit", FutureWarning, stacklevel=1)
            return super()._fit(y, X=X, fh=fh)

        def _predict(self, fh=None, X=None):
            warnings.warn("noisy predict", UserWarning, stacklevel=1)
            return super()._predict(fh=fh, X=X)

    with warnings.catch_warnings(record=True) as shown:  # what would print
        warnings.simplefilter("default")
        result = backtest(_panel(), {"noisy": Noisy()}, horizon=4, n_origins=2)
    assert result.table.loc["noisy", "relMAE"] == 1.0
    assert [str(w.message) for w in shown if "noisy" in str(w.message)] == []
    # and the caller's warning filters are as they were
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warnings.warn("after", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["after"]


def test_named_models_and_global_detection():
    from sktime.forecasting.compose import TransformedTargetForecaster
    from sktime.transformations.series.boxcox import LogTransformer

    spec = get_model("lstm", quick=True)
    assert isinstance(spec, ModelSpec) and spec.global_
    assert spec.estimator.get_params()["backbone"] == "lstm"
    assert not get_model("theta").global_
    assert get_model("minilm-random-lora").params["backbone_kwargs"] == {
        "pretrained": False
    }
    wrapped = TransformedTargetForecaster(
        [("log", LogTransformer()), ("model", FineTunedPriceForecaster())]
    )
    assert is_global(wrapped) and not is_global(NaiveForecaster())
    with pytest.raises(ValueError, match="unknown model"):
        get_model("prophet")


def test_pricetune_backtest_is_exported():
    assert pricetune.backtest is backtest


def test_csv_data_and_saved_outputs(tmp_path):
    panel = _panel()
    wide = pd.DataFrame(panel)
    wide.index = wide.index.to_timestamp()
    wide.index.name = "date"
    wide.to_csv(tmp_path / "prices.csv")
    loaded = load_panel(str(tmp_path / "prices.csv"))
    assert list(loaded) == ["a", "b"] and loaded["a"].index.freqstr == "M"
    result = backtest(
        str(tmp_path / "prices.csv"),
        ["naive", "theta"],
        horizon=3,
        n_origins=2,
        output_dir=tmp_path / "out",
    )
    for name in ["summary.csv", "scores.csv", "forecasts.csv", "results.json"]:
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert (tmp_path / "out" / "error_by_horizon.png").read_bytes()[:4] == b"\x89PNG"
    assert set(result.config["series"]) == {"a", "b"}


def test_max_history_caps_what_models_fit_on_but_not_the_scale():
    lengths = []

    class LengthSpy(NaiveForecaster):
        def _fit(self, y, X=None, fh=None):
            lengths.append(len(y))
            return super()._fit(y, X=X, fh=fh)

    panel = _panel()
    full = backtest(panel, {"spy": LengthSpy()}, horizon=4, n_origins=2)
    assert max(lengths) > 20
    lengths.clear()
    capped = backtest(
        panel, {"spy": LengthSpy()}, horizon=4, n_origins=2, max_history=20
    )
    assert lengths == [20] * 4
    pd.testing.assert_series_equal(full.forecasts["scale"], capped.forecasts["scale"])


def test_fracast_reference_runs_zero_shot_in_the_backtest():
    # fracast is in the test extra; it ships its weights in the wheel
    from pricetune.backtesting.models import FracastForecaster

    panel = _panel()
    result = backtest(panel, ["naive", "fracast"], horizon=4, n_origins=2)
    row = result.table.loc["fracast"]
    assert np.isfinite(row["relMAE"]) and 0.0 <= row["cov80"] <= 1.0
    series = panel[next(iter(panel))]
    forecaster = FracastForecaster().fit(series, fh=[1, 2, 3])
    quantiles = forecaster.predict_quantiles(alpha=[0.1, 0.5, 0.9]).to_numpy()
    assert quantiles.shape == (3, 3) and np.all(np.diff(quantiles, axis=1) >= 0)


def test_the_combination_is_global_and_learns_its_weights_before_each_cut_off():
    from pricetune.backtesting.models import get_model

    spec = get_model("combined", quick=True)
    assert spec.global_  # its LSTM trains one model on every series
    members = dict(spec.estimator.forecasters)
    assert set(members) == {"naive", "drift", "theta", "lstm"}
    assert members["lstm"].get_params()["backbone"] == "lstm"
    panel = _panel(80)
    result = backtest(panel, ["naive", spec], horizon=3, n_origins=1, quick=True)
    row = result.table.loc["combined"]
    assert np.isfinite(row["relMAE"]) and 0.0 <= row["cov80"] <= 1.0
    assert set(result.forecasts["series"]) == set(panel)


def test_named_networks_are_single_and_default_is_the_shipped_ensemble():
    """The named variants are the one unshrunk network the tables in
    docs/accuracy.md measured; ``default`` is the forecaster as constructed
    (three members, shrinkage 0.75); ``--param n_ensemble=...`` or
    ``shrinkage=...`` reaches either."""
    for name in ["lstm", "gru", "none", "lstm-log", "lstm-theta", "combined"]:
        params = get_model(name, quick=True).params
        assert (params["n_ensemble"], params["shrinkage"]) == (1, 0.0), name
    for spec in ablation_models(quick=True):
        assert spec.params["n_ensemble"] == 1, spec.name
        assert spec.params["shrinkage"] == 0.0, spec.name
    default = get_model("default")
    assert "n_ensemble" not in default.params and "shrinkage" not in default.params
    assert default.estimator.get_params()["n_ensemble"] == 3
    assert default.estimator.get_params()["shrinkage"] == 0.75
    assert get_model("lstm", overrides={"n_ensemble": 3}).params["n_ensemble"] == 3
    assert get_model("default", overrides={"n_ensemble": 1}).params["n_ensemble"] == 1
    assert get_model("lstm", overrides={"shrinkage": 0.5}).params["shrinkage"] == 0.5


def test_lstm_theta_is_the_plain_mean_of_its_two_members():
    from pricetune.backtesting.models import get_model

    spec = get_model("lstm-theta", quick=True, overrides={"max_epochs": 1})
    assert spec.global_ and spec.params["max_epochs"] == 1
    assert spec.estimator.get_params()["n_origins"] == 0
    lstm = get_model("lstm", quick=True, overrides={"max_epochs": 1})
    models = ["naive", "theta", lstm, spec]
    result = backtest(_panel(80), models, horizon=3, n_origins=1, quick=True)
    point = {
        name: frame.set_index(["series", "step"])["forecast"]
        for name, frame in result.forecasts.groupby("model")
    }
    # the same seed fits the same LSTM: the mean is exactly the two halves'
    pd.testing.assert_series_equal(
        point["lstm-theta"], (point["lstm"] + point["theta"]) / 2, check_names=False
    )


def test_the_log_price_lstm_trains_on_logs_and_forecasts_prices():
    spec = get_model("lstm-log", quick=True, overrides={"max_epochs": 1})
    assert spec.global_
    steps = dict(spec.estimator.steps)
    assert type(steps["log"]).__name__ == "LogTransformer"
    assert steps["lstm"].get_params()["min_scale"] == 0.001
    assert spec.params["max_epochs"] == 1  # overrides reach the network
    panel = _panel(80)
    result = backtest(panel, ["naive", spec], horizon=3, n_origins=1, quick=True)
    forecasts = result.forecasts[result.forecasts["model"] == "lstm-log"]
    # prices near 100 and 50 come back, not their logs (4.6 and 3.9)
    assert forecasts["q0.5"].between(20, 200).all()
    assert set(forecasts["series"]) == set(panel)


def test_fracast_fine_tuned_runs_in_the_backtest():
    result = backtest(
        _panel(), ["naive", "fracast-tuned"], horizon=3, n_origins=1, quick=True
    )
    row = result.table.loc["fracast-tuned"]
    assert np.isfinite(row["relMAE"]) and row["trainable"] == 59465  # its head


def test_plots_of_a_series_that_joins_after_the_first_origin(tmp_path):
    index = pd.period_range("2000-01", periods=60, freq="M")
    rng = np.random.default_rng(1)
    panel = {
        "a": pd.Series(100 + rng.normal(size=60).cumsum(), index=index),
        # starts at position 48, after the first cut-off (position 47)
        "late": pd.Series(50 + rng.normal(size=12).cumsum(), index=index[48:]),
    }
    result = backtest(
        panel, ["naive"], horizon=4, n_origins=3, min_train=2, output_dir=tmp_path
    )
    assert "late" in set(result.forecasts["series"])
    assert str(result.cutoffs[0]) not in {str(t) for t in panel["late"].index}
    assert (tmp_path / "forecasts_late.png").is_file()


def test_dm_is_blank_when_origins_overlap_and_loss_is_checked():
    panel = _panel()
    apart = backtest(panel, ["naive", "drift"], horizon=4, n_origins=3, step=4)
    assert np.isfinite(apart.table.loc["drift", "DM"])
    overlapping = backtest(panel, ["naive", "drift"], horizon=4, n_origins=3, step=1)
    assert np.isnan(overlapping.table.loc["drift", "DM"])
    with pytest.raises(ValueError, match="dm_loss must be"):
        backtest(panel, ["naive"], horizon=4, n_origins=2, dm_loss="abs")


def test_the_callers_model_specs_are_left_as_they_were():
    from pricetune.backtesting.models import get_model

    spec = get_model("drift")
    backtest(_panel(), [spec], horizon=4, n_origins=2, max_history=20)
    assert spec.max_train is None


def test_a_series_a_global_model_cannot_forecast_is_left_out_for_every_model():
    index = pd.period_range("2000-01", periods=60, freq="M")
    rng = np.random.default_rng(2)
    panel = {
        "long": pd.Series(100 + rng.normal(size=60).cumsum(), index=index),
        # 10 values by the cut-off: enough to join (3 x horizon), fewer than
        # the quick LSTM's context of 12
        "short": pd.Series(50 + rng.normal(size=13).cumsum(), index=index[-13:]),
    }
    result = backtest(panel, ["naive", "lstm"], horizon=3, n_origins=1, quick=True)
    assert set(result.forecasts["series"]) == {"long"}
    assert set(result.scores["series"]) == {"long"}
    assert any("lstm gave no forecast of short" in note for note in result.notes)
    assert result.table.loc["naive", "relMAE"] == 1.0


# ------------------------------------------------------------ model_params
def test_model_params_reach_only_the_model_they_name():
    from pricetune.backtesting.runner import _resolve_models

    specs = _resolve_models(
        ["naive", "lstm", "none"],
        True,
        0,
        "cpu",
        {"batch_size": 16},
        [],
        {"lstm": {"max_epochs": 1}},
    )
    params = {spec.name: spec.params for spec in specs}
    assert params["lstm"]["max_epochs"] == 1 and params["lstm"]["batch_size"] == 16
    assert params["none"]["max_epochs"] == 2 and params["none"]["batch_size"] == 16
    lstm = next(spec for spec in specs if spec.name == "lstm")
    assert lstm.estimator.get_params()["max_epochs"] == 1
    # a model given as an object gets them by set_params on a clone
    given = ModelSpec("mine", NaiveForecaster(), group="custom")
    (spec,) = _resolve_models(
        [given], False, 0, "cpu", None, [], {"mine": {"strategy": "mean"}}
    )
    assert spec.estimator.get_params()["strategy"] == "mean"
    assert given.estimator.get_params()["strategy"] == "last"


def test_model_params_in_a_backtest_and_an_unknown_name():
    result = backtest(
        _panel(),
        ["naive", "lstm", "none"],
        horizon=3,
        n_origins=1,
        quick=True,
        model_params={"lstm": {"max_epochs": 1}},
    )
    models = result.config["models"]
    assert models["lstm"]["params"]["max_epochs"] == 1
    assert "max_epochs=1" in models["lstm"]["estimator"]
    assert models["none"]["params"]["max_epochs"] == 2
    assert "max_epochs=1" not in models["none"]["estimator"]
    assert result.config["model_params"] == {"lstm": {"max_epochs": 1}}
    with pytest.raises(
        ValueError,
        match="model_params names 'gru', which is not in this run's models: "
        "naive, lstm",
    ):
        backtest(_panel(), ["naive", "lstm"], horizon=3, model_params={"gru": {}})


def test_the_ablation_forwards_model_params(monkeypatch):
    from pricetune.backtesting import runner

    seen = {}

    def fake_backtest(data, specs, **kwargs):
        seen.update({spec.name: spec for spec in specs})

    monkeypatch.setattr(runner, "backtest", fake_backtest)
    runner.ablation(
        _panel(),
        baselines=("naive", "lstm"),
        quick=True,
        params={"batch_size": 16},
        model_params={
            "minilm-pretrained-lora": {"max_epochs": 1},
            "lstm": {"learning_rate": 0.1},
        },
    )
    assert seen["minilm-pretrained-lora"].params["max_epochs"] == 1
    assert seen["minilm-pretrained-lora"].params["strategy"] == "lora"
    assert seen["minilm-pretrained-full"].params["max_epochs"] == 2
    assert seen["lstm"].params["learning_rate"] == 0.1
    assert "learning_rate" not in seen["no-backbone"].params
    assert {spec.params["batch_size"] for spec in seen.values() if spec.params} == {16}
    with pytest.raises(ValueError, match="model_params names 'nope'"):
        runner.ablation(_panel(), quick=True, model_params={"nope": {}})


# ------------------------------------------------------------------- plots
def _plotted(models, panel=None, **kwargs):
    return backtest(
        panel or _panel(), models, horizon=4, n_origins=2, plots=False, **kwargs
    )


def test_the_forecast_plot_shades_the_best_pricetune_models_interval():
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from pricetune.backtesting.report import forecasts_figure, interval_model

    pricetune_like = ModelSpec(
        "tuned", NaiveForecaster(strategy="mean"), group="pricetune"
    )
    result = _plotted(["naive", "drift", pricetune_like])
    assert result.table.index[0] != "tuned"  # not the top-ranked model
    assert interval_model(result, "a") == "tuned"
    fig = forecasts_figure(result, "a")
    ax = fig.axes[0]
    fills = [c for c in ax.collections if isinstance(c, PolyCollection)]
    labels = [c.get_label() for c in fills if not c.get_label().startswith("_")]
    assert labels == ["80% interval of tuned"]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "80% interval of tuned" in legend
    assert ax.get_ylabel() == "price"  # no unit known
    plt.close(fig)
    # without a pricetune model: the best-ranked probabilistic one
    result = _plotted(["drift", "naive"])
    assert interval_model(result, "a") == result.table.index[0]


def test_the_forecast_plot_has_the_series_unit():
    import matplotlib.pyplot as plt

    from pricetune.backtesting.report import forecasts_figure

    panel = _panel()
    panel["a"].attrs["unit"] = "USD/barrel"
    result = _plotted(["naive"], panel)
    assert result.config["units"] == {"a": "USD/barrel"}
    fig = forecasts_figure(result, "a")
    assert fig.axes[0].get_ylabel() == "price (USD/barrel)"
    plt.close(fig)
    fig = forecasts_figure(result, "b")
    assert fig.axes[0].get_ylabel() == "price"
    plt.close(fig)
    # a unit known only from the config (a result read back, say)
    result.history = {}
    fig = forecasts_figure(result, "a")
    assert fig.axes[0].get_ylabel() == "price (USD/barrel)"
    plt.close(fig)
    # or from the history's attrs, as the built-in datasets set them
    result.config["units"] = {}
    history = panel["b"].copy()
    history.attrs = {"units": {"b": "USD/mt"}}  # the Pink Sheet's form
    result.history = {"b": history}
    fig = forecasts_figure(result, "b")
    assert fig.axes[0].get_ylabel() == "price (USD/mt)"
    plt.close(fig)


def test_every_line_of_the_error_by_horizon_plot_is_visible():
    import matplotlib.pyplot as plt

    from pricetune.backtesting.report import error_by_horizon_figure

    # "copy" equals no-change: its line lies exactly on naive's
    models = {
        "naive": NaiveForecaster(),
        "copy": NaiveForecaster(),
        "drift": NaiveForecaster(strategy="drift"),
        "mean": NaiveForecaster(strategy="mean"),
        "spy": SpyNaive(),
    }
    result = _plotted(models)
    fig = error_by_horizon_figure(result)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == set(models)
    styles = {(line.get_linestyle(), line.get_marker()) for line in lines.values()}
    assert len(styles) == len(models)
    # drawn in the table's order, each later line thinner than the one below
    drawn = [line.get_label() for line in fig.axes[0].get_lines()]
    assert drawn == list(result.table.index)
    widths = [lines[m].get_linewidth() for m in drawn]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)
    np.testing.assert_allclose(lines["naive"].get_ydata(), lines["copy"].get_ydata())
    plt.close(fig)
