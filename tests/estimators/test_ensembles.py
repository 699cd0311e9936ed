"""Ensembles of members trained from different seeds: their seeds, the first
member being the single model, the forecaster's quantiles as the mixture
of the members', the average of point members, update, panels and
persistence. (The mixture's arithmetic: tests/nn/test_quantiles.py.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pricetune import FineTunedPriceForecaster, FineTunedPriceRegressor
from pricetune.nn.build import member_seeds
from pricetune.nn.model import EnsembleModel

PARAMS = dict(
    backbone="none",
    head="quantile",
    strategy="full",
    context_length=12,
    max_epochs=2,
    random_state=0,
    verbose=0,
)


def test_member_seeds_start_with_the_single_model_seed():
    seeds = member_seeds(42, 4)
    assert seeds[0] == 42 and len(set(seeds)) == 4
    assert member_seeds(42, 4) == seeds
    assert member_seeds(42, 1) == [42]


@pytest.fixture(scope="module")
def fitted(brent_monthly):
    y = brent_monthly[-160:]
    # the mixture as it is: shrinkage moves it afterwards (test_shrinkage.py)
    unshrunk = {**PARAMS, "shrinkage": 0.0}
    single = FineTunedPriceForecaster(**unshrunk, n_ensemble=1).fit(y, fh=[1, 2, 3])
    ensemble = FineTunedPriceForecaster(**unshrunk, n_ensemble=3).fit(y, fh=[1, 2, 3])
    return y, single, ensemble


def test_the_default_forecaster_mixes_three_lstms(brent_monthly):
    """As constructed (only its training cut short here), the forecaster is
    an ensemble of three LSTMs trained in full; the regressor and the
    classifier keep one network."""
    from pricetune import FineTunedPriceDirectionClassifier

    assert FineTunedPriceRegressor().get_params()["n_ensemble"] == 1
    assert FineTunedPriceDirectionClassifier().get_params()["n_ensemble"] == 1
    short = dict(max_epochs=1, steps_per_epoch=2, random_state=0, verbose=0)
    forecaster = FineTunedPriceForecaster(**short).fit(brent_monthly, fh=[1, 2])
    assert forecaster.get_params()["n_ensemble"] == 3
    assert isinstance(forecaster.model_, EnsembleModel)
    members = forecaster.model_.members
    assert len(members) == 3 and len(set(forecaster._seeds)) == 3
    assert {type(m.backbone).__name__ for m in members} == {"LSTMBackbone"}
    assert forecaster.n_trainable_parameters_ == forecaster.n_parameters_
    assert list(forecaster.training_history_["member"].unique()) == [0, 1, 2]


def test_an_ensemble_trains_members_apart(fitted):
    _, single, ensemble = fitted
    assert isinstance(ensemble.model_, EnsembleModel)
    assert len(ensemble.model_.members) == 3
    assert ensemble.n_parameters_ == 3 * single.n_parameters_
    history = ensemble.training_history_
    assert sorted(history["member"].unique()) == [0, 1, 2]
    assert (history.groupby("member")["epoch"].max() == 2).all()
    heads = [m.head.projection.weight.detach().cpu() for m in ensemble.model_.members]
    assert not np.allclose(heads[0], heads[1])


def test_the_first_member_is_the_single_model(fitted):
    _, single, ensemble = fitted
    first = ensemble.model_.members[0].state_dict()
    for name, value in single.model_.state_dict().items():
        np.testing.assert_array_equal(first[name].cpu().numpy(), value.cpu().numpy())


def test_ensemble_quantiles_are_a_mixture_of_the_members(fitted):
    _, _, ensemble = fitted
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    quantiles = ensemble.predict_quantiles(alpha=levels).to_numpy()
    assert np.all(np.diff(quantiles, axis=1) > 0)  # never cross
    # each of the mixture's quantiles lies within the members' quantiles
    members = []
    for member in ensemble.model_.members:
        alone = ensemble.clone()
        alone.__dict__.update(
            {k: v for k, v in ensemble.__dict__.items() if k != "model_"}
        )
        alone.model_ = member
        members.append(alone.predict_quantiles(alpha=levels).to_numpy())
    members = np.stack(members)
    assert np.all(quantiles >= members.min(axis=0) - 1e-9)
    assert np.all(quantiles <= members.max(axis=0) + 1e-9)
    interval = ensemble.predict_interval(coverage=0.8).to_numpy()
    assert np.all(interval[:, 1] > interval[:, 0])


def test_a_point_ensemble_averages_its_members(brent_monthly):
    X = np.lib.stride_tricks.sliding_window_view(
        brent_monthly.to_numpy(dtype=float)[-200:], 13
    )
    params = {**PARAMS, "head": "linear", "context_length": None}
    ensemble = FineTunedPriceRegressor(**params, n_ensemble=2).fit(X[:, :12], X[:, 12])
    predictions = []
    for member in ensemble.model_.members:
        ensemble_model = ensemble.model_
        ensemble.model_ = member
        predictions.append(ensemble.predict(X[:5, :12]))
        ensemble.model_ = ensemble_model
    np.testing.assert_allclose(
        ensemble.predict(X[:5, :12]), np.mean(predictions, axis=0), rtol=1e-6
    )


def test_an_ensemble_round_trips_through_the_safe_format(fitted, tmp_path):
    y, _, ensemble = fitted
    ensemble.save(tmp_path / "ensemble", serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(tmp_path / "ensemble")
    assert isinstance(loaded.model_, EnsembleModel)
    np.testing.assert_array_equal(
        loaded.predict_quantiles(alpha=[0.1, 0.5, 0.9]).to_numpy(),
        ensemble.predict_quantiles(alpha=[0.1, 0.5, 0.9]).to_numpy(),
    )
    assert loaded._seeds == ensemble._seeds


def test_n_ensemble_is_checked(brent_monthly):
    with pytest.raises(ValueError, match="n_ensemble must be at least 1"):
        FineTunedPriceForecaster(**PARAMS, n_ensemble=0).fit(
            brent_monthly[-100:], fh=[1]
        )


def test_update_fine_tunes_every_member(brent_monthly):
    y = brent_monthly[-160:]
    ensemble = FineTunedPriceForecaster(**PARAMS, n_ensemble=2).fit(
        y[:-6], fh=[1, 2, 3]
    )
    before = [
        m.head.projection.weight.detach().clone() for m in ensemble.model_.members
    ]
    ensemble.update(y[-6:], update_params=True)
    after = [m.head.projection.weight.detach() for m in ensemble.model_.members]
    assert all(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
    history = ensemble.training_history_
    assert set(history.loc[history["update"] == 1, "member"]) == {0, 1}
    assert ensemble.predict().index[0] == y.index[-1] + 1


def test_an_ensemble_trains_one_global_model_per_member_on_a_panel(brent_monthly):
    from pricetune.datasets import load_dataset

    panel = pd.concat(
        {name: load_dataset(name)[-120:] for name in ("brent", "gold")},
        names=["series", "time"],
    ).to_frame("price")
    ensemble = FineTunedPriceForecaster(**PARAMS, n_ensemble=2).fit(panel, fh=[1, 2, 3])
    intervals = ensemble.predict_interval(coverage=0.8)
    assert len(intervals) == 2 * 3
    assert np.all(intervals.iloc[:, 1] > intervals.iloc[:, 0])
