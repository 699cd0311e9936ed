"""Callbacks (pricetune.training.callbacks). User callbacks through the
estimators' ``callbacks=`` parameter: they see every epoch's metrics, can
stop training, run for every ensemble member and ``update``, survive
``clone`` and pickle, and are left out of the safe format with a warning.
And the built-in WeightAveraging on its own: its recursion and its state.
(The Trainer's use of the built-in callbacks is in test_trainer.py.)"""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

from pricetune import (
    FineTunedPriceDirectionClassifier,
    FineTunedPriceForecaster,
    FineTunedPriceRegressor,
)
from pricetune.estimators.classifier import direction_rows
from pricetune.persistence import PersistenceWarning
from pricetune.training import Callback, TrainingConfig
from pricetune.training.callbacks import WeightAveraging

# one network (the default mixes three: test_ensembles.py)
CHEAP = dict(
    n_ensemble=1,
    backbone="none",
    strategy="full",
    patch_length=4,
    max_epochs=4,
    batch_size=16,
    patience=100,
    random_state=0,
    verbose=0,
    device="cpu",
)


class Recorder(Callback):
    """Records each hook call and each epoch's metrics; stops after
    ``stop_after`` epochs when set."""

    def __init__(self, stop_after=None):
        self.stop_after = stop_after
        self.calls = []
        self.metrics = []
        self.runs = []

    def on_train_begin(self, run):
        self.calls.append("begin")
        self.runs.append((run.member, run.update, type(run.config).__name__))

    def on_epoch_end(self, run, metrics):
        self.calls.append("epoch")
        self.metrics.append(dict(metrics))
        if self.stop_after is not None and run.epoch >= self.stop_after:
            run.should_stop = True

    def on_train_end(self, run):
        self.calls.append("end")


def _forecaster(**settings):
    return FineTunedPriceForecaster(
        **{**CHEAP, "head": "linear", "context_length": 12, **settings}
    )


def _rows(brent_monthly):
    spans = np.lib.stride_tricks.sliding_window_view(brent_monthly.to_numpy(), 13)
    return spans[:, :12], spans[:, 12]


def _fit(kind, brent_monthly, **settings):
    """An estimator of ``kind`` fitted with ``settings``."""
    if kind == "forecaster":
        return _forecaster(**settings).fit(brent_monthly.iloc[-120:], fh=[1, 2])
    X, y = _rows(brent_monthly)
    if kind == "regressor":
        return FineTunedPriceRegressor(**{**CHEAP, "head": "linear", **settings}).fit(
            X[-120:], y[-120:]
        )
    X, labels = direction_rows(brent_monthly.iloc[-140:], context_length=12)
    return FineTunedPriceDirectionClassifier(**{**CHEAP, **settings}).fit(X, labels)


KINDS = ["forecaster", "regressor", "classifier"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_callback_sees_every_epochs_metrics(kind, brent_monthly):
    recorder = Recorder()
    estimator = _fit(kind, brent_monthly, callbacks=[recorder])
    history = estimator.training_history_
    assert recorder.calls == ["begin"] + ["epoch"] * 4 + ["end"]
    assert recorder.runs == [(None, 0, "TrainingConfig")]
    assert pd.DataFrame(recorder.metrics).equals(history)
    assert estimator.callbacks == [recorder]  # the user's own object


@pytest.mark.parametrize("kind", KINDS)
def test_a_callback_stops_training(kind, brent_monthly):
    recorder = Recorder(stop_after=2)
    estimator = _fit(kind, brent_monthly, callbacks=recorder)
    assert list(estimator.training_history_["epoch"]) == [1, 2]
    assert recorder.calls == ["begin", "epoch", "epoch", "end"]


def test_callbacks_run_for_every_member_and_update(brent_monthly):
    recorder = Recorder()
    forecaster = _forecaster(n_ensemble=2, max_epochs=2, callbacks=[recorder])
    forecaster.fit(brent_monthly.iloc[-120:-3], fh=[1, 2])
    forecaster.update(brent_monthly.iloc[-3:], update_params=True)
    assert recorder.runs == [
        (0, 0, "TrainingConfig"),
        (1, 0, "TrainingConfig"),
        (0, 1, "TrainingConfig"),
        (1, 1, "TrainingConfig"),
    ]
    assert len(recorder.metrics) == len(forecaster.training_history_) == 8


def test_callbacks_see_the_fits_settings(brent_monthly):
    seen = []

    class Settings(Callback):
        def on_train_begin(self, run):
            seen.append(run.config)

    _fit("forecaster", brent_monthly, callbacks=[Settings()], learning_rate=3e-3)
    (config,) = seen
    assert isinstance(config, TrainingConfig)
    assert config.learning_rate == 3e-3
    assert config.context_length == 12


@pytest.mark.parametrize("kind", KINDS)
def test_callbacks_survive_clone_and_pickle(kind, brent_monthly):
    estimator = _fit(kind, brent_monthly, callbacks=[Recorder(stop_after=3)])
    cloned = clone(estimator)
    assert isinstance(cloned.callbacks[0], Recorder)
    assert cloned.callbacks[0] is not estimator.callbacks[0]
    assert cloned.callbacks[0].stop_after == 3
    unpickled = pickle.loads(pickle.dumps(estimator))
    assert unpickled.callbacks[0].metrics == estimator.callbacks[0].metrics
    refitted = _fit(kind, brent_monthly, **cloned.get_params())
    assert len(refitted.training_history_) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_the_safe_format_leaves_callbacks_out_and_says_so(
    kind, brent_monthly, tmp_path
):
    estimator = _fit(kind, brent_monthly, callbacks=[Recorder()])
    with pytest.warns(PersistenceWarning, match="does not store callbacks"):
        if kind == "forecaster":
            estimator.save(tmp_path, serialization_format="safetensors")
        else:
            estimator.save(tmp_path)
    loaded = type(estimator).load(tmp_path)
    assert loaded.callbacks is None


def test_callbacks_must_be_callbacks(brent_monthly):
    with pytest.raises(TypeError, match="callbacks must be a pricetune.training"):
        _fit("forecaster", brent_monthly, callbacks=[print])


# ------------------------------------------------ the built-in WeightAveraging
def test_weight_averaging_follows_its_recursion_and_restores_from_its_state():
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.zeros(2))

    def run():
        # decay 1 - 1 / (ema_epochs * steps_per_epoch) = 0.75
        return SimpleNamespace(model=model, trainable={"w": model.w}, steps_per_epoch=1)

    averaging, state = WeightAveraging(ema_epochs=4), run()
    averaging.on_train_begin(state)
    expected = torch.zeros(2)
    for n, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        with torch.no_grad():
            model.w.fill_(value)
        averaging.on_step_end(state)
        decay = min(0.75, n / (n + 1))  # 0, 1/2, 2/3, then 0.75
        expected = decay * expected + (1 - decay) * value
        torch.testing.assert_close(state.scored_weights["w"], expected)
    assert state.scored_weights["w"].tolist() == pytest.approx([2.5, 2.5])
    assert torch.equal(model.w.detach(), torch.full((2,), 4.0))  # untouched

    restored, restored_state = WeightAveraging(ema_epochs=4), run()
    restored.on_train_begin(restored_state)
    restored.load_state_dict(averaging.state_dict())
    assert restored.updates == 4
    torch.testing.assert_close(restored_state.scored_weights["w"], expected)
    restored.on_train_end(restored_state)  # the model ends on the average
    torch.testing.assert_close(model.w.detach(), expected)


class FitEnds(Callback):
    def __init__(self):
        self.seen = []

    def on_fit_end(self, estimator):
        self.seen.append((type(estimator).__name__, _fitted(estimator)))


def _fitted(estimator) -> bool:
    from sklearn.utils.validation import check_is_fitted

    if hasattr(estimator, "check_is_fitted"):  # sktime's
        return estimator.is_fitted
    check_is_fitted(estimator)
    return True


def test_on_fit_end_gets_each_fitted_estimator_once_per_fit(brent_monthly):
    ends = FitEnds()
    forecaster = FineTunedPriceForecaster(**CHEAP, callbacks=[ends])
    forecaster.fit(brent_monthly.iloc[:-2], fh=[1])
    assert ends.seen == [("FineTunedPriceForecaster", True)]
    forecaster.update(brent_monthly.iloc[-2:-1], update_params=True)
    forecaster.update(brent_monthly.iloc[-1:], update_params=False)  # no training
    assert len(ends.seen) == 2
    X, y = direction_rows(brent_monthly.to_numpy()[-120:], 12, 1)
    FineTunedPriceRegressor(**CHEAP, callbacks=[ends]).fit(X, X[:, -1])
    FineTunedPriceDirectionClassifier(**CHEAP, callbacks=[ends]).fit(X, y)
    assert ends.seen[2:] == [
        ("FineTunedPriceRegressor", True),
        ("FineTunedPriceDirectionClassifier", True),
    ]
