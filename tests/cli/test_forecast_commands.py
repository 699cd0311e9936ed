"""``pricetune forecast``, ``fit`` and ``predict`` end to end on temporary
files of each shape, and the one-line errors of bad files and flags."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pricetune.cli import main

TINY_LSTM = [
    "--model",
    "lstm",
    "--max-epochs",
    "1",
    "--param",
    'backbone_kwargs={"hidden_size": 8}',
    "--param",
    "context_length=12",
    "--param",
    "patch_length=4",
    "--quiet",
]


def prices(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.round(50 * np.exp(np.cumsum(rng.normal(0, 0.04, n))), 3)


def write_wide(path, dates, columns):
    frame = pd.DataFrame({"Date": [f"{d:%Y-%m-%d}" for d in dates], **columns})
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def monthly_15th(tmp_path):
    dates = pd.date_range("2010-01-01", periods=60, freq="MS") + pd.Timedelta(days=14)
    return write_wide(tmp_path / "brent.csv", dates, {"Price": prices(60)})


def read_forecast(directory):
    return pd.read_csv(directory / "forecast.csv", dtype={"date": str})


def check_forecast(table, n_series, horizon, first_dates):
    assert len(table) == n_series * horizon
    assert list(table.columns[:3]) == ["series", "date", "median"]
    numbers = table.drop(columns=["series", "date"]).to_numpy(dtype=float)
    assert np.isfinite(numbers).all()
    if "q0.1" in table:
        quantiles = table[["q0.1", "q0.25", "q0.5", "q0.75", "q0.9"]].to_numpy()
        assert (np.diff(quantiles, axis=1) >= 0).all()
        assert (table["lower"] <= table["median"]).all()
        assert (table["median"] <= table["upper"]).all()
    firsts = table.groupby("series", sort=False)["date"].first().to_dict()
    assert firsts == first_dates


def test_forecast_a_monthly_file_dated_the_15th(tmp_path, monthly_15th, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "forecast",
            "--data",
            str(monthly_15th),
            "--horizon",
            "6",
            "--model",
            "theta",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    table = read_forecast(out)
    check_forecast(table, 1, 6, {"brent": "2015-01"})
    assert list(table["date"]) == [f"2015-0{m}" for m in range(1, 7)]
    assert (out / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "1 series (brent), monthly, 2010-01 to 2014-12" in printed
    assert "brent" in printed.splitlines()[-2] or "brent" in printed


def test_forecast_trading_days_a_missing_month_and_a_nan(tmp_path, capsys):
    days = pd.bdate_range("2023-01-02", periods=80)
    kept = [d for i, d in enumerate(days) if i not in (10, 40)]  # two holidays
    trading = write_wide(tmp_path / "wti.csv", kept, {"Price": prices(len(kept))})
    out = tmp_path / "daily"
    assert (
        main(
            [
                "forecast",
                "--data",
                str(trading),
                "--horizon",
                "5",
                "--model",
                "naive",
                "--output",
                str(out),
                "--no-plot",
            ]
        )
        == 0
    )
    table = read_forecast(out)
    last = days[-1]
    expected = [f"{d:%Y-%m-%d}" for d in pd.bdate_range(last, periods=6)[1:]]
    assert list(table["date"]) == expected  # business days after the last one
    assert not (out / "forecast.png").exists()
    assert "2 business days absent from the file (holidays)" in capsys.readouterr().out

    months = pd.date_range("2015-01-01", periods=48, freq="MS")
    values = prices(48, seed=1).astype(object)
    values[20] = ""  # a NaN
    gappy = pd.DataFrame({"Date": [f"{d:%Y-%m}" for d in months], "Price": values})
    gappy = gappy.drop(index=30)  # a missing month
    path = tmp_path / "gas.csv"
    gappy.to_csv(path, index=False)
    out = tmp_path / "monthly"
    assert (
        main(
            [
                "forecast",
                "--data",
                str(path),
                "--horizon",
                "3",
                "--model",
                "naive",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    check_forecast(read_forecast(out), 1, 3, {"gas": "2019-01"})
    assert (
        "2 missing values carry the previous price (first 2016-09)"
        in capsys.readouterr().out
    )
    err = main(
        [
            "forecast",
            "--data",
            str(path),
            "--horizon",
            "3",
            "--model",
            "naive",
            "--missing",
            "error",
            "--output",
            str(tmp_path / "x"),
        ]
    )
    assert err == 1 and not (tmp_path / "x").exists()


def test_fit_then_predict_with_new_data_a_long_panel(tmp_path, capsys):
    months = pd.date_range("2005-01-01", periods=84, freq="MS")
    rows = [
        {"unique_id": name, "ds": f"{d:%Y-%m-%d}", "y": v}
        for seed, name in enumerate(["copper", "zinc"])
        for d, v in zip(months, prices(84, seed), strict=True)
    ]
    full = pd.DataFrame(rows)
    old = tmp_path / "old.csv"
    full[full["ds"] < "2010-01-01"].to_csv(old, index=False)
    new = tmp_path / "new.csv"
    full.to_csv(new, index=False)
    model = tmp_path / "model"
    first = tmp_path / "first"
    assert (
        main(
            [
                "forecast",
                "--data",
                str(old),
                "--horizon",
                "4",
                *TINY_LSTM,
                "--save-model",
                str(model),
                "--output",
                str(first),
            ]
        )
        == 0
    )
    settings = json.loads((model / "pricetune-cli.json").read_text())
    assert settings["format"] == "safetensors" and settings["cutoff"] == "2009-12"
    assert settings["series"] == ["copper", "zinc"]
    check_forecast(read_forecast(first), 2, 4, {"copper": "2010-01", "zinc": "2010-01"})

    again = tmp_path / "again"
    assert (
        main(["predict", "--model", str(model), "--output", str(again), "--no-plot"])
        == 0
    )
    # the loaded model forecasts exactly what the fitted one did
    pd.testing.assert_frame_equal(read_forecast(again), read_forecast(first))

    later = tmp_path / "later"
    assert (
        main(
            [
                "predict",
                "--model",
                str(model),
                "--data",
                str(new),
                "--output",
                str(later),
            ]
        )
        == 0
    )
    check_forecast(read_forecast(later), 2, 4, {"copper": "2012-01", "zinc": "2012-01"})
    assert "updating with 48 new values after 2009-12" in capsys.readouterr().out

    fitted = tmp_path / "fitted"
    assert (
        main(
            [
                "fit",
                "--data",
                str(old),
                "--horizon",
                "4",
                "--model",
                "theta",
                "--save-model",
                str(fitted),
            ]
        )
        == 0
    )
    assert json.loads((fitted / "pricetune-cli.json").read_text())["format"] == "joblib"
    assert (
        main(
            [
                "predict",
                "--model",
                str(fitted),
                "--output",
                str(tmp_path / "t"),
                "--no-plot",
            ]
        )
        == 0
    )
    check_forecast(
        read_forecast(tmp_path / "t"), 2, 4, {"copper": "2010-01", "zinc": "2010-01"}
    )


def test_forecast_a_built_in_dataset_by_name(tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "forecast",
                "--data",
                "brent",
                "--horizon",
                "2",
                "--model",
                "naive",
                "--output",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    table = read_forecast(out)
    assert list(table["series"]) == ["brent", "brent"]


BAD_FILES = {
    "empty.csv": ("", "the file is empty"),
    "text.csv": (
        "Date,Price\n2020-01,1\n2020-02,abc\n2020-03,2\n",
        "'abc' is not a number",
    ),
    "dupes.csv": (
        "Date,Price\n2020-01,1\n2020-01,2\n2020-02,3\n",
        "two values for 2020-01",
    ),
    "unsorted.csv": (
        "Date,Price\n2020-03,1\n2020-01,2\n2020-02,3\n",
        "sort the file by date",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_exit_1_with_one_line_and_no_output(tmp_path, capsys, name):
    text, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_text(text)
    out = tmp_path / "out"
    code = main(
        [
            "forecast",
            "--data",
            str(path),
            "--horizon",
            "2",
            "--model",
            "naive",
            "--output",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pricetune: error: ")
    assert message in lines[0] and "Traceback" not in captured.err
    assert not out.exists()
    assert path.read_text() == text


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (["--data", "nope.csv", "--horizon", "2"], 1, "nope.csv: no such file"),
        (["--horizon", "2", "--model", "foo"], 2, "unknown model 'foo'"),
        (
            ["--horizon", "2", "--param", "foo=1"],
            2,
            "'foo' is not a FineTunedPriceForecaster parameter",
        ),
        (["--horizon", "2", "--param", "max_epochs"], 2, "--param takes KEY=VALUE"),
        (["--horizon", "0"], 2, "--horizon must be at least 1"),
        (["--horizon", "2", "--freq", "hourly"], 1, "unknown frequency 'hourly'"),
        (
            ["--horizon", "2", "--coverage", "80", "--model", "naive"],
            2,
            "--coverage must be between 0 and 1",
        ),
        (["--horizon", "500", "--model", "lstm"], 1, "pass a longer series"),
        ([], 2, "the following arguments are required: --horizon"),
    ],
)
def test_bad_flags_are_one_line(tmp_path, monthly_15th, capsys, flags, code, message):
    data = [] if "--data" in flags else ["--data", str(monthly_15th)]
    out = tmp_path / "out"
    with _exit_code() as status:
        status.code = main(["forecast", *data, *flags, "--output", str(out)])
    captured = capsys.readouterr()
    assert status.code == code
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err
    assert "Traceback" not in captured.err and not (out / "forecast.csv").exists()


class _exit_code:
    """argparse exits (SystemExit) where the commands return: one status."""

    code = None

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is SystemExit:
            self.code = error.code
            return True
        return False


def test_traceback_flag_shows_the_full_error(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        main(
            [
                "forecast",
                "--data",
                str(tmp_path / "nope.csv"),
                "--horizon",
                "2",
                "--traceback",
            ]
        )


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    from pricetune import __version__

    assert capsys.readouterr().out.strip() == f"pricetune {__version__}"


def test_predict_refuses_a_directory_that_is_not_a_saved_model(tmp_path, capsys):
    assert main(["predict", "--model", str(tmp_path)]) == 1
    assert "not a model saved by `pricetune fit`" in capsys.readouterr().err


def test_forecaster_plot_single_series_and_panel():
    from pricetune import FineTunedPriceForecaster

    index = pd.period_range("2000-01", periods=60, freq="M")
    params = {
        "backbone": "none",
        "strategy": "full",
        "context_length": 12,
        "patch_length": 4,
        "max_epochs": 1,
        "verbose": 0,
    }
    y = pd.Series(prices(60), index=index, name="brent")
    y.attrs["unit"] = "USD/barrel"
    forecaster = FineTunedPriceForecaster(**params).fit(y, fh=[1, 2, 3])
    figure = forecaster.plot(y)
    (ax,) = figure.axes
    assert ax.get_ylabel() == "USD/barrel" and ax.get_title() == "brent"
    forecast_line = next(line for line in ax.lines if line.get_label() == "forecast")
    np.testing.assert_allclose(
        forecast_line.get_ydata(), forecaster.predict().to_numpy()
    )
    assert any("80% interval" in str(c.get_label()) for c in ax.collections)

    panel = pd.concat(
        {
            name: pd.Series(prices(60, seed), index=index)
            for seed, name in enumerate("abcde")
        },
        names=["series", "date"],
    ).to_frame("price")
    forecaster = FineTunedPriceForecaster(**params).fit(panel, fh=[1, 2])
    figure = forecaster.plot()
    assert [ax.get_title() for ax in figure.axes if ax.get_visible()] == list("abcde")
    # the history drawn is the forecaster's own copy of the data
    history = next(
        line for line in figure.axes[1].lines if line.get_label() == "history"
    )
    np.testing.assert_allclose(history.get_ydata(), prices(60, 1)[-36:])
    assert len(forecaster.plot(series=["b", "d"]).axes) == 2
    with pytest.raises(ValueError, match=r"series \['z'\] not forecast"):
        forecaster.plot(series="z")
