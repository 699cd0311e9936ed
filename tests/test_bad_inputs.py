"""The bad-input matrix (issue 16): each case feeds one hostile or broken
input to the forecaster, the regressor, the classifier, saving and
loading, training checkpoints, a plugin component or the command line, and
checks the error's type, that its message names the problem in the user's
terms, and that every object the caller passed is unchanged (values,
index, dtype, name, attrs). docs/errors.md explains the messages."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch

from pricetune import (
    FineTunedPriceDirectionClassifier,
    FineTunedPriceForecaster,
    FineTunedPriceRegressor,
)
from pricetune.components.contract import Backbone, Head
from pricetune.datasets import load_brent
from pricetune.nn.forward_contract import ComponentOutputError
from pricetune.persistence import (
    METADATA_FILE,
    WEIGHTS_FILE,
    MissingComponentError,
    PersistenceError,
)
from pricetune.registry import UnknownComponentError
from pricetune.training.checkpoints import CheckpointError

# one network (the default mixes three: test_ensembles.py)
CHEAP = dict(
    n_ensemble=1,
    backbone="none",
    head="quantile",
    strategy="full",
    context_length=12,
    patch_length=4,
    max_epochs=1,
    verbose=0,
    random_state=0,
)


def _prices(n=60):
    return load_brent("monthly").iloc[-n:].copy()


def _panel():
    a, b = _prices(40), _prices(40) * 2
    return pd.concat({"a": a, "b": b}, names=["series", "date"]).to_frame("price")


def _rows(n=80, width=12):
    values = _prices(n + width).to_numpy()
    spans = np.lib.stride_tricks.sliding_window_view(values, width + 1)
    return spans[:, :width].copy(), spans[:, width].copy()


def _fitted(**changes):
    return FineTunedPriceForecaster(**{**CHEAP, **changes}).fit(_prices(), fh=[1, 2])


@dataclass
class Case:
    id: str
    make: Callable[[], dict]  # the caller's objects
    act: Callable[..., object]  # what the caller does with them
    error: type
    match: str  # regex the message must match
    # scikit-learn's own input validation prints the offending array after
    # its one-line reason (and sklearn's checks expect its messages)
    one_line: bool = True


def forecaster_case(id, y, error, match, fh=(1, 2), X=None, one_line=True, **params):
    return Case(
        id,
        lambda: {"y": y(), **({} if X is None else {"X": X()})},
        lambda y, X=None: FineTunedPriceForecaster(**{**CHEAP, **params}).fit(
            y, X=X, fh=list(fh)
        ),
        error,
        match,
        one_line=one_line,
    )


def with_value(position, value):
    def make():
        y = _prices()
        y.iloc[position] = value
        return y

    return make


def with_index(index):
    def make():
        return pd.Series(np.linspace(10.0, 20.0, len(index)), index=index, name="p")

    return make


def param_case(name, value, error, match):
    return forecaster_case(
        f"param {name}={value!r}", _prices, error, match, **{name: value}
    )


CASES = [
    # --- the forecaster's y, X and fh
    forecaster_case(
        "y with a NaN",
        with_value(5, np.nan),
        ValueError,
        r"cannot handle missing data|contains 1 NaN",
    ),
    forecaster_case(
        "y with +inf",
        with_value(5, np.inf),
        ValueError,
        r"contains 1 NaN or infinite value",
    ),
    forecaster_case(
        "y with -inf",
        with_value(-1, -np.inf),
        ValueError,
        r"contains 1 NaN or infinite value",
    ),
    forecaster_case(
        "y beyond float32",
        with_value(3, 1e40),
        ValueError,
        r"y holds values as large as 1e\+40.*float32",
    ),
    forecaster_case("empty y", lambda: _prices().iloc[:0], ValueError, r"y is empty"),
    forecaster_case(
        "y too short",
        lambda: _prices(10),
        ValueError,
        r"y has 10 observations, but context_length=12 plus the "
        r"horizon of 2 needs at least 14",
    ),
    forecaster_case(
        "y of text",
        lambda: _prices().astype(str),
        TypeError,
        r"do not support categorical features in endogeneous y",
    ),
    forecaster_case(
        "y with duplicated dates",
        lambda: pd.concat([_prices(), _prices().iloc[-1:]]),
        ValueError,
        r"duplicated time index",
    ),
    forecaster_case(
        "y unsorted",
        lambda: _prices().iloc[::-1],
        ValueError,
        r"must be sorted in increasing order",
    ),
    forecaster_case(
        "y on dates of no frequency",
        with_index(
            pd.DatetimeIndex(
                list(pd.date_range("2000-01-03", periods=30, freq="D"))
                + list(pd.date_range("2000-03-01", periods=30, freq="MS"))
            )
        ),
        ValueError,
        r"dates without a frequency",
    ),
    forecaster_case(
        "X missing time points",
        _prices,
        ValueError,
        r"X must have a row for every time point of y; 10 of y's 60",
        X=lambda: pd.DataFrame({"f": np.zeros(50)}, index=_prices().index[:50]),
    ),
    forecaster_case(
        "X with a NaN",
        _prices,
        ValueError,
        r"missing data|X contains 1 NaN",
        X=lambda: pd.DataFrame(
            {"f": np.r_[np.zeros(59), np.nan]}, index=_prices().index
        ),
    ),
    forecaster_case(
        # sktime's message, with the estimator's repr over several lines
        "X of text",
        _prices,
        TypeError,
        r"categorical",
        one_line=False,
        X=lambda: pd.DataFrame({"f": ["a"] * 60}, index=_prices().index),
    ),
    forecaster_case(
        "past_covariates naming a column X lacks",
        _prices,
        ValueError,
        r"past_covariates names columns that X does not have: \['stocks'\]",
        X=lambda: pd.DataFrame({"f": np.zeros(60)}, index=_prices().index),
        past_covariates=["stocks"],
    ),
    forecaster_case(
        "static_covariates that change within a series",
        _prices,
        ValueError,
        r"static_covariates \['f'\] change within a series",
        X=lambda: pd.DataFrame({"f": np.arange(60.0)}, index=_prices().index),
        static_covariates=["f"],
    ),
    forecaster_case(
        "a column both past-only and static",
        _prices,
        ValueError,
        r"\['f'\] are in both past_covariates and static_covariates",
        X=lambda: pd.DataFrame({"f": np.zeros(60)}, index=_prices().index),
        past_covariates=["f"],
        static_covariates=["f"],
    ),
    forecaster_case(
        "calibrate_intervals of an unknown kind",
        _prices,
        ValueError,
        r"calibrate_intervals must be one of \('scale', 'conformal'\)",
        calibrate_intervals="isotonic",
    ),
    forecaster_case(
        "n_processes of zero",
        _prices,
        ValueError,
        r"n_processes must be at least 1, got 0",
        n_processes=0,
    ),
    forecaster_case(
        "panel with a duplicated pair",
        lambda: pd.concat([_panel(), _panel().iloc[:1]]),
        ValueError,
        r"duplicated",
    ),
    # --- parameters, checked at fit
    param_case("learning_rate", "fast", TypeError, r"learning_rate must be a number"),
    param_case("learning_rate", -1.0, ValueError, r"learning_rate must be"),
    param_case(
        "learning_rate", float("inf"), ValueError, r"learning_rate must be finite"
    ),
    param_case("max_epochs", 0, ValueError, r"max_epochs must be at least 1"),
    param_case("batch_size", 0, ValueError, r"batch_size must be at least 1"),
    param_case("patch_length", 20, ValueError, r"patch_length .*context_length"),
    param_case("backbone", "nope", UnknownComponentError, r"unknown backbone 'nope'"),
    param_case("head", "nope", UnknownComponentError, r"unknown head 'nope'"),
    param_case("strategy", "nope", UnknownComponentError, r"unknown strategy 'nope'"),
    param_case("device", "tpu", ValueError, r"device='tpu' is not a device"),
    param_case("validation_fraction", 1.5, ValueError, r"validation_fraction"),
    param_case("normalization", "zscore", ValueError, r"normalization must be one of"),
    param_case(
        "augmentations", ["nope"], UnknownComponentError, r"unknown augmentation 'nope'"
    ),
    param_case("n_ensemble", 0, ValueError, r"n_ensemble must be at least 1"),
    param_case("precision", "fp8", ValueError, r"precision"),
    param_case(
        "backbone_kwargs",
        {"patch_length": 3},
        ValueError,
        r"backbone_kwargs must not set \['patch_length'\]",
    ),
    param_case("head_kwargs", {"quantiles": [0.9, 0.1]}, ValueError, r"quantile"),
    param_case("gradient_clip", -1.0, ValueError, r"gradient_clip"),
    param_case("steps_per_epoch", 0, ValueError, r"steps_per_epoch must be at least 1"),
]


def update_case(id, new, error, match, fitted=_fitted):
    return Case(
        id,
        lambda: {"forecaster": fitted(), "y": new()},
        lambda forecaster, y: forecaster.update(y, update_params=False),
        error,
        match,
    )


def _revised():
    y = _prices().iloc[-5:].copy()
    y.iloc[0] += 1.0
    return y


def _after(n, start=0):
    full = load_brent("monthly")
    return full.iloc[len(full) - 60 + start : len(full) - 60 + start + n]


CASES += [
    update_case(
        "update with revised history",
        _revised,
        ValueError,
        r"update got y at .* but the forecaster was fitted with",
    ),
    update_case(
        "update leaving a gap",
        lambda: (
            load_brent("monthly")
            .iloc[-5:]
            .set_axis(pd.period_range("2030-01", periods=5, freq="M"))
        ),
        ValueError,
        r"update must continue each series right after",
    ),
    update_case(
        "update with a panel", _panel, ValueError, r"fitted on a single series"
    ),
    Case(
        "predict before fit",
        lambda: {},
        lambda: FineTunedPriceForecaster(**CHEAP).predict(fh=[1]),
        ValueError,  # sktime's NotFittedError
        r"has not been fitted yet",
    ),
    Case(
        "predict without the X it was fitted with",
        lambda: {
            "y": _prices(),
            "X": pd.DataFrame({"f": np.arange(60.0)}, index=_prices().index),
        },
        lambda y, X: FineTunedPriceForecaster(**CHEAP).fit(y, X=X, fh=[1]).predict(),
        ValueError,
        r"X",
    ),
]


def regressor_case(
    id, X, y, error, match, cls=FineTunedPriceRegressor, one_line=True, **params
):
    settings = {**CHEAP, "context_length": None, **params}
    if cls is FineTunedPriceDirectionClassifier:
        settings.pop("head")  # the classifier's head is fixed
    return Case(
        id,
        lambda: {"X": X(), "y": y()},
        lambda X, y: cls(**settings).fit(X, y),
        error,
        match,
        one_line=one_line,
    )


def _X():
    return _rows()[0]


def _y():
    return _rows()[1]


def _up():
    X, y = _rows()
    return y > X[:, -1]


def _edit(array, position, value):
    array = array.copy()
    array.flat[position] = value
    return array


CASES += [
    regressor_case(
        "regressor X with a NaN",
        lambda: _edit(_X(), 7, np.nan),
        _y,
        ValueError,
        r"Input X contains NaN",
        one_line=False,
    ),
    regressor_case(
        "regressor y with inf",
        _X,
        lambda: _edit(_y(), 3, np.inf),
        ValueError,
        r"Input y contains infinity",
    ),
    regressor_case(
        "regressor X beyond float32",
        lambda: _X() * 1e40,
        _y,
        ValueError,
        r"X \(its past-value columns\) holds values as large as",
    ),
    regressor_case(
        "regressor y beyond float32",
        _X,
        lambda: _y() * 1e40,
        ValueError,
        r"y holds values as large as",
    ),
    regressor_case(
        "regressor X of one dimension",
        lambda: _X()[:, 0],
        _y,
        ValueError,
        r"Expected 2D array, got 1D array",
        one_line=False,
    ),
    regressor_case(
        "regressor y of another length",
        _X,
        lambda: _y()[:-3],
        ValueError,
        r"inconsistent numbers of samples",
    ),
    regressor_case(
        "regressor context longer than X",
        _X,
        _y,
        ValueError,
        r"context_length=20, but X has only 12 feature",
        context_length=20,
    ),
    regressor_case(
        "regressor X of text",
        lambda: _X().astype(str).astype(object) + "x",
        _y,
        ValueError,
        r"could not convert|numeric|string",
    ),
    regressor_case(
        "regressor learning_rate text",
        _X,
        _y,
        TypeError,
        r"learning_rate must be a number",
        learning_rate="fast",
    ),
    Case(
        "regressor predict with other columns",
        lambda: {"X": _X()},
        lambda X: (
            FineTunedPriceRegressor(**{**CHEAP, "context_length": None})
            .fit(X, _y())
            .predict(X[:, :5])
        ),
        ValueError,
        r"X has 5 features, but FineTunedPriceRegressor is expecting 12",
    ),
    regressor_case(
        "classifier with one class",
        _X,
        lambda: np.ones(len(_X())),
        ValueError,
        r"one class only",
        cls=FineTunedPriceDirectionClassifier,
    ),
    regressor_case(
        "classifier with three classes",
        _X,
        lambda: np.arange(len(_X())) % 3,
        ValueError,
        r"binary",
        cls=FineTunedPriceDirectionClassifier,
    ),
    regressor_case(
        "classifier X with inf",
        lambda: _edit(_X(), 2, np.inf),
        _up,
        ValueError,
        r"Input X contains infinity",
        cls=FineTunedPriceDirectionClassifier,
    ),
    regressor_case(
        "classifier augmentation that flips direction",
        _X,
        _up,
        ValueError,
        r"keep the direction|direction",
        cls=FineTunedPriceDirectionClassifier,
        augmentations=["jitter"],
    ),
]


# --- saving and loading (the safe format)
def _saved(tmp):
    path = _fitted().save(tmp / "model", serialization_format="safetensors")
    return path


def load_case(id, damage, error, match):
    def make():
        import tempfile
        from pathlib import Path

        path = _saved(Path(tempfile.mkdtemp()))
        damage(path)
        return {"path": path}

    return Case(
        id, make, lambda path: FineTunedPriceForecaster.load(path), error, match
    )


def _saved_regressor(change):
    import tempfile
    from pathlib import Path

    X, y = _rows()
    regressor = FineTunedPriceRegressor(**{**CHEAP, "context_length": None})
    path = regressor.fit(X, y).save(Path(tempfile.mkdtemp()) / "model")
    _edit_json(change)(path)
    return path


def _saved_numpy(change):
    import tempfile
    from pathlib import Path

    forecaster = FineTunedPriceForecaster(**CHEAP).fit(_prices().to_numpy(), fh=[1])
    path = forecaster.save(
        Path(tempfile.mkdtemp()) / "model", serialization_format="safetensors"
    )
    _edit_json(change)(path)
    return path


def _edit_json(change):
    def damage(path):
        document = json.loads((path / METADATA_FILE).read_text())
        change(document)
        (path / METADATA_FILE).write_text(json.dumps(document))

    return damage


CASES += [
    load_case(
        "load a missing directory",
        lambda path: __import__("shutil").rmtree(path),
        FileNotFoundError,
        r"no saved pricetune model at",
    ),
    load_case(
        "load without its JSON",
        lambda path: (path / METADATA_FILE).unlink(),
        PersistenceError,
        r"has no pricetune.json",
    ),
    load_case(
        "load a corrupt JSON",
        lambda path: (path / METADATA_FILE).write_text("{not json"),
        PersistenceError,
        r"is corrupt",
    ),
    load_case(
        "load truncated weights",
        lambda path: (path / WEIGHTS_FILE).write_bytes(
            (path / WEIGHTS_FILE).read_bytes()[:100]
        ),
        PersistenceError,
        r"does not match pricetune.json|not a readable",
    ),
    load_case(
        "load without weights",
        lambda path: (path / WEIGHTS_FILE).unlink(),
        PersistenceError,
        r"has no model.safetensors",
    ),
    load_case(
        "load an edited horizon",
        _edit_json(lambda d: d["model"].update(horizon=10**13)),
        PersistenceError,
        r"model.horizon is 10000000000000",
    ),
    load_case(
        "load an edited context length",
        _edit_json(lambda d: d["params"].update(context_length=10**9)),
        PersistenceError,
        r"model.safetensors: the saved weights do not fit the model .* "
        r"head.projection.weight \(saved float32 \[26, 20\], built float32 "
        r"\[26, 1999999996\]\)",
    ),
    load_case(
        "load an edited patch length",
        _edit_json(lambda d: d["params"].update(patch_length=10**8)),
        PersistenceError,
        r"pricetune.json does not load: patch_length \(100000000\) must not "
        r"exceed context_length \(12\)",
    ),
    load_case(
        "load a negative horizon",
        _edit_json(lambda d: d["model"].update(horizon=-3)),
        PersistenceError,
        r"model.horizon is -3",
    ),
    load_case(
        "load a future format",
        _edit_json(lambda d: d.update(format_version=99)),
        PersistenceError,
        r"in format version 99; this pricetune .* reads "
        r"format versions up to",
    ),
    load_case(
        "load another estimator's save",
        _edit_json(lambda d: d.update(estimator="FineTunedPriceRegressor")),
        PersistenceError,
        r"FineTunedPriceRegressor",
    ),
    load_case(
        "load an unknown component",
        _edit_json(lambda d: d["params"].update(backbone="gone")),
        MissingComponentError,
        r"backbone 'gone' is not installed here",
    ),
    Case(
        "load a regressor claiming 10**13 columns",
        lambda: {
            "path": _saved_regressor(
                lambda d: d["fitted"].update(
                    n_features_in=10**13, feature_names_in=None
                )
            )
        },
        lambda path: FineTunedPriceRegressor.load(path),
        PersistenceError,
        r"n_features_in=10000000000000 is not a number of columns",
    ),
    Case(
        "load a numpy fit with an edited cutoff",
        lambda: {
            "path": _saved_numpy(
                lambda d: d["fitted"]["cutoff"].update(start=10**13, stop=10**13 + 1)
            )
        },
        lambda path: FineTunedPriceForecaster.load(path),
        PersistenceError,
        r"cutoff 10000000000000 does not end the saved history of 60 values",
    ),
    Case(
        "save an unfitted forecaster",
        lambda: {},
        lambda: __import__("pricetune.persistence", fromlist=["save"]).save(
            FineTunedPriceForecaster(**CHEAP), "/tmp/never-written"
        ),
        ValueError,  # sklearn's NotFittedError
        r"is not fitted yet, so there is nothing to save",
    ),
]


# --- training checkpoints
def checkpoint_case(id, damage, match):
    def make():
        import tempfile

        directory = tempfile.mkdtemp()
        FineTunedPriceForecaster(**CHEAP, checkpoint_dir=directory).fit(
            _prices(), fh=[1]
        )
        from pathlib import Path

        damage(Path(directory) / "checkpoint.pt")
        return {"directory": directory}

    return Case(
        id,
        make,
        lambda directory: FineTunedPriceForecaster(
            **{**CHEAP, "max_epochs": 2}, checkpoint_dir=directory
        ).fit(_prices(), fh=[1]),
        CheckpointError,
        match,
    )


def _only_file(path):
    return next(path.parent.rglob("checkpoint.pt"))


CASES += [
    checkpoint_case(
        "checkpoint truncated",
        lambda path: _only_file(path).write_bytes(_only_file(path).read_bytes()[:50]),
        r"is not a readable training checkpoint",
    ),
    checkpoint_case(
        "checkpoint of another run",
        lambda path: None,
        r"belongs to another training run",
    ),
]


# --- plugin components that break the contract
class _NarrowBackbone(Backbone):
    hidden_size = 8

    def __init__(self, patch_length, n_patches):
        super().__init__()
        self.embedding = torch.nn.Linear(patch_length, 3)

    def forward(self, patches):
        return self.embedding(patches)


class _IntegerHead(Head):
    def __init__(self, hidden_size, n_patches, horizon):
        super().__init__()
        self.horizon = horizon
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, hidden):
        return torch.zeros(hidden.shape[0], self.horizon, 1, dtype=torch.long)

    def loss(self, prediction, target):
        return (prediction.float() - target[..., None]).abs().mean() * self.weight


CASES += [
    forecaster_case(
        "backbone of the wrong width",
        _prices,
        ComponentOutputError,
        r"backbone .*_NarrowBackbone returned shape \(2, \d+, 3\); the "
        r"contract is \(2, \d+, 8\)",
        backbone=_NarrowBackbone,
    ),
    forecaster_case(
        "head giving integers",
        _prices,
        ComponentOutputError,
        r"head .*_IntegerHead returned dtype torch.int64",
        head=_IntegerHead,
    ),
]


# --- the command line
def cli_case(id, make_file, flags, code, match):
    def make():
        import tempfile
        from pathlib import Path

        directory = Path(tempfile.mkdtemp())
        path = directory / "prices.csv"
        if make_file is not None:
            path.write_text(make_file)
        return {
            "args": [
                "forecast",
                "--data",
                str(path),
                *flags,
                "--output",
                str(directory / "out"),
            ]
        }

    return Case(id, make, lambda args: _cli(args, code), _Exit, match)


class _Exit(Exception):
    """The one line a command printed before exiting as expected."""


def _cli(args, code):
    import contextlib
    import io

    from pricetune.cli import main

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            status = main(args)
        except SystemExit as exit:
            status = exit.code
    message = stderr.getvalue().strip()
    assert status == code, (status, message)
    assert "Traceback" not in message
    # one line, the package's own prefix
    raise _Exit(message.splitlines()[-1] if message else "")


MONTHLY = (
    "date,price\n"
    + "".join(f"2020-{m:02d}-15,{50 + m}\n" for m in range(1, 13))
    + "".join(f"2021-{m:02d}-15,{60 + m}\n" for m in range(1, 13))
)

CASES += [
    cli_case(
        "cli missing file",
        None,
        ["--horizon", "3"],
        1,
        r"^pricetune: error: .*prices.csv",
    ),
    cli_case(
        "cli empty file", "", ["--horizon", "3"], 1, r"^pricetune: error: .*empty"
    ),
    cli_case(
        "cli header only",
        "date,price\n",
        ["--horizon", "3"],
        1,
        r"^pricetune: error: .*(no rows|empty|no data)",
    ),
    cli_case(
        "cli text in prices",
        MONTHLY.replace("55", "abc"),
        ["--horizon", "3", "--model", "naive"],
        1,
        r"^pricetune: error: .*abc",
    ),
    cli_case(
        "cli duplicated date",
        MONTHLY + "2021-12-15,70\n",
        ["--horizon", "3"],
        1,
        r"^pricetune: error: .*two values for 2021-12 \(rows 25 and 26\)",
    ),
    cli_case(
        "cli unknown model",
        MONTHLY,
        ["--horizon", "3", "--model", "nope"],
        2,
        r"^pricetune: error: unknown model 'nope'; known: naive",
    ),
    cli_case(
        "cli bad param",
        MONTHLY,
        ["--horizon", "3", "--param", "foo=1"],
        2,
        r"^pricetune: error: .*foo",
    ),
    cli_case(
        "cli horizon zero",
        MONTHLY,
        ["--horizon", "0"],
        2,
        r"^pricetune: error: .*horizon",
    ),
    cli_case(
        "cli horizon text",
        MONTHLY,
        ["--horizon", "soon"],
        2,
        r"^pricetune forecast: error: argument --horizon: invalid int",
    ),
    cli_case(
        "cli bad missing policy",
        MONTHLY,
        ["--horizon", "3", "--missing", "guess"],
        2,
        r"^pricetune forecast: error: argument --missing: invalid "
        r"choice: 'guess'",
    ),
]


def _snapshot(value):
    if isinstance(value, pd.Series | pd.DataFrame):
        return (value.copy(deep=True), copy.deepcopy(value.attrs))
    if isinstance(value, np.ndarray):
        return value.copy()
    return None


def _unchanged(before, after):
    if isinstance(after, pd.Series):
        pd.testing.assert_series_equal(after, before[0], check_exact=True)
        assert after.attrs == before[1]
    elif isinstance(after, pd.DataFrame):
        pd.testing.assert_frame_equal(after, before[0], check_exact=True)
        assert after.attrs == before[1]
    elif isinstance(after, np.ndarray):
        np.testing.assert_array_equal(after, before)
        assert after.dtype == before.dtype


def test_the_matrix_has_sixty_cases_or_more():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case):
    inputs = case.make()
    before = {name: _snapshot(value) for name, value in inputs.items()}
    with pytest.raises(case.error) as caught:
        case.act(**inputs)
    message = str(caught.value)
    assert re.search(case.match, message), message
    assert message.strip(), case.id
    if case.one_line:
        assert len(message.strip().splitlines()) == 1, message
    for name, value in inputs.items():
        _unchanged(before[name], value)
