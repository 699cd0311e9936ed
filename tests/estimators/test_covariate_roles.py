"""Past-only and static covariates (``past_covariates``, ``static_covariates``):
past-only columns are never read after a window's cut-off, in training or
in ``predict``; static columns are read once per window."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.data.covariate_roles import reading_mask

# one network (the default mixes three: test_ensembles.py)
SETTINGS = dict(
    n_ensemble=1,
    backbone="lstm",
    backbone_kwargs={"hidden_size": 8},
    strategy="full",
    context_length=16,
    patch_length=4,
    max_epochs=2,
    random_state=0,
    verbose=0,
)
FH = [1, 2, 3]


@pytest.fixture(scope="module")
def brent_and_wti():
    from pricetune.datasets import load_brent, load_wti

    brent, wti = load_brent("monthly"), load_wti("monthly")
    index = brent.index.intersection(wti.index)[-150:]
    return brent.loc[index], pd.DataFrame({"wti": wti.loc[index]})


def test_the_mask_reads_past_columns_to_the_cut_off_and_static_ones_once():
    mask = reading_mask(["future", "past", "group"], ("past",), ("group",), 3, 2)
    np.testing.assert_array_equal(
        mask.reshape(5, 3),
        [[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 0, 0]],
    )
    assert reading_mask(["future"], (), (), 3, 2) is None


@pytest.mark.parametrize("past", [True, False], ids=["past-only", "known-future"])
def test_the_model_never_reads_past_only_values_after_a_windows_cut_off(
    brent_and_wti, past
):
    """Every window reaches the network through the model's forward pass
    (training, validation and predict alike): changing a past-only column's
    values after the window's cut-off changes nothing, while a known-future
    column's change moves the forecast (so the check can fail)."""
    y, X = brent_and_wti
    roles = {"past_covariates": ["wti"]} if past else {}
    forecaster = FineTunedPriceForecaster(**SETTINGS, **roles).fit(y, X=X, fh=FH)
    model = forecaster.model_.eval()
    windows = forecaster._store.windows(16, 3)
    contexts, _, covariates = windows.batch(np.arange(8))
    context = torch.tensor(contexts, dtype=torch.float32)
    spans = torch.tensor(covariates, dtype=torch.float32).reshape(8, 19, 1)
    changed = spans.clone()
    changed[:, 16:] = changed[:, 16:] * 5 + 3  # the 3 rows after the cut-off
    with torch.no_grad():
        a = model(context, spans.reshape(8, -1))
        b = model(context, changed.reshape(8, -1))
    assert torch.equal(a, b) is past


def test_predict_needs_no_future_values_of_past_only_columns(brent_and_wti):
    y, X = brent_and_wti
    forecaster = FineTunedPriceForecaster(**SETTINGS, past_covariates=["wti"])
    forecaster.fit(y, X=X, fh=FH)
    assert forecaster.future_covariates_ == []
    without = forecaster.predict()
    future = pd.DataFrame(
        {"wti": [0.0, 1e6, -5.0]}, index=without.index.rename(X.index.name)
    )
    pd.testing.assert_series_equal(forecaster.predict(X=future), without)
    quantiles = forecaster.predict_quantiles(alpha=[0.1, 0.9])
    assert np.isfinite(quantiles.to_numpy()).all()
    # the history of the past-only column does reach the forecast
    shifted = FineTunedPriceForecaster(**SETTINGS, past_covariates=["wti"])
    shifted.fit(y, X=X.assign(wti=X["wti"].to_numpy()[::-1]), fh=FH)
    assert not np.allclose(shifted.predict().to_numpy(), without.to_numpy())


def test_known_future_columns_are_still_required(brent_and_wti):
    y, X = brent_and_wti
    both = X.assign(month=np.arange(len(X)) % 12)
    forecaster = FineTunedPriceForecaster(**SETTINGS, past_covariates=["wti"])
    forecaster.fit(y, X=both, fh=FH)
    assert forecaster.future_covariates_ == ["month"]
    needs = r"predict needs X .* \(its known-future columns \['month'\]\)"
    with pytest.raises(ValueError, match=needs):
        forecaster.predict()
    index = forecaster.fh.to_absolute_index(forecaster.cutoff).rename(X.index.name)
    months = pd.DataFrame({"month": [1, 2, 3]}, index=index)  # no wti: fine
    assert np.isfinite(forecaster.predict(X=months).to_numpy()).all()


def test_past_only_covariates_survive_save_load_and_update(brent_and_wti, tmp_path):
    y, X = brent_and_wti
    forecaster = FineTunedPriceForecaster(**SETTINGS, past_covariates=["wti"])
    forecaster.fit(y.iloc[:-2], X=X.iloc[:-2], fh=FH)
    forecaster.save(tmp_path / "model", serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(tmp_path / "model")
    torch.testing.assert_close(
        loaded.model_.covariate_mask, forecaster.model_.covariate_mask
    )
    pd.testing.assert_series_equal(loaded.predict(), forecaster.predict())
    for model in (forecaster, loaded):
        model.update(y.iloc[-2:], X=X.iloc[-2:], update_params=False)
    pd.testing.assert_series_equal(loaded.predict(), forecaster.predict())
    assert forecaster.cutoff[0] == y.index[-1]
    pickled = pickle.loads(pickle.dumps(forecaster))
    pd.testing.assert_series_equal(pickled.predict(), forecaster.predict())
    # training on: the mask stays, and predict still needs no X
    before = forecaster.predict()
    forecaster.update(
        y.iloc[-1:].set_axis(y.index[-1:] + 1),
        X=X.iloc[-1:].set_axis(X.index[-1:] + 1),
        update_params=True,
    )
    torch.testing.assert_close(
        forecaster.model_.covariate_mask, loaded.model_.covariate_mask
    )
    after = forecaster.predict()
    assert np.isfinite(after.to_numpy()).all()
    assert after.index[0] == before.index[1]


@pytest.fixture(scope="module")
def panel():
    from pricetune.datasets import load_brent, load_gold, load_wti

    series = {
        "brent": load_brent("monthly"),
        "wti": load_wti("monthly"),
        "gold": load_gold(),
    }
    y = pd.concat(
        {name: s.iloc[-100:] for name, s in series.items()}, names=["series", "date"]
    ).to_frame("price")
    energy = (y.index.get_level_values("series") != "gold").astype(float)
    return y, pd.DataFrame({"energy": energy}, index=y.index)


def test_static_covariates_on_a_panel(panel):
    y, X = panel
    forecaster = FineTunedPriceForecaster(**SETTINGS, static_covariates=["energy"])
    forecaster.fit(y, X=X, fh=FH)
    mask = forecaster.model_.covariate_mask.reshape(16 + 3, 1)
    assert mask.sum() == 1 and mask[15, 0] == 1  # the context's last row only
    forecast = forecaster.predict()  # no X: a static column's future is known
    assert forecast.shape == (9, 1) and np.isfinite(forecast.to_numpy()).all()


@pytest.mark.parametrize(
    "settings, X_change, message",
    [
        (
            {"static_covariates": ["energy"]},
            "vary",
            r"static_covariates \['energy'\] change within a series",
        ),
        (
            {"past_covariates": ["stocks"]},
            None,
            r"past_covariates names columns that X does not have: \['stocks'\]",
        ),
        (
            {"past_covariates": ["energy"], "static_covariates": ["energy"]},
            None,
            r"\['energy'\] are in both past_covariates and static_covariates",
        ),
        (
            {"past_covariates": "energy"},
            None,
            "past_covariates must be a list of column names",
        ),
        (
            {"past_covariates": ["energy"]},
            "drop",
            "past_covariates names columns of X, but fit got no X",
        ),
    ],
    ids=["varying static", "unknown column", "two roles", "a string", "no X"],
)
def test_bad_roles_are_one_line_errors(panel, settings, X_change, message):
    y, X = panel
    if X_change == "vary":
        X = X.assign(energy=np.arange(len(X), dtype=float))
    before = X.copy()
    forecaster = FineTunedPriceForecaster(**SETTINGS, **settings)
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        forecaster.fit(y, X=None if X_change == "drop" else X, fh=FH)
    assert "\n" not in str(caught.value)
    pd.testing.assert_frame_equal(X, before)


def test_past_covariates_in_an_sktime_pipeline(brent_and_wti):
    from sktime.forecasting.compose import TransformedTargetForecaster
    from sktime.transformations.series.boxcox import LogTransformer

    y, X = brent_and_wti
    pipeline = TransformedTargetForecaster(
        [
            ("log", LogTransformer()),
            ("model", FineTunedPriceForecaster(**SETTINGS, past_covariates=["wti"])),
        ]
    )
    pipeline.fit(y, X=X, fh=FH)
    forecast = pipeline.predict()
    assert len(forecast) == 3 and (forecast > 0).all()


def test_an_edited_context_length_is_refused_before_the_mask_is_built(
    brent_and_wti, tmp_path, monkeypatch
):
    import json

    from pricetune.estimators import forecaster_state
    from pricetune.persistence import PersistenceError

    y, X = brent_and_wti
    forecaster = FineTunedPriceForecaster(**SETTINGS, past_covariates=["wti"])
    forecaster.fit(y, X=X, fh=FH)
    forecaster.save(tmp_path, serialization_format="safetensors")
    document = json.loads((tmp_path / "pricetune.json").read_text())
    document["params"]["context_length"] = 10**12
    (tmp_path / "pricetune.json").write_text(json.dumps(document))

    def never(*args, **kwargs):
        raise AssertionError("the mask was built from the edited size")

    monkeypatch.setattr(forecaster_state, "reading_mask", never)
    with pytest.raises(
        PersistenceError,
        match=r"reads 19 covariate values, but "
        r"context_length=1000000000000 and horizon=3 over 1",
    ):
        FineTunedPriceForecaster.load(tmp_path)
