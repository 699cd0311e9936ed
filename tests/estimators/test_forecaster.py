"""Fitting FineTunedPriceForecaster: the same seed gives the same forecast
(and leaves the global generator alone), early stopping restores the best
weights, training without validation, update with and without fine-tuning,
progress reporting, the training settings' checks, and checkpoints, CSV and
TensorBoard logs through the forecaster."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.data.series import SeriesStore
from pricetune.data.windows import split_windows

# one network (the default mixes three: test_ensembles.py)
CHEAP = {
    "n_ensemble": 1,
    "backbone": "lstm",
    "backbone_kwargs": {"hidden_size": 8},
    "strategy": "full",
    "context_length": 16,
    "patch_length": 4,
    "max_epochs": 3,
    "random_state": 0,
    "verbose": 0,
}


def test_same_seed_same_forecast_and_global_rng_untouched(brent_monthly):
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = FineTunedPriceForecaster(**CHEAP).fit(brent_monthly, fh=[1, 2, 3])
    assert torch.equal(torch.random.get_rng_state(), state)
    second = FineTunedPriceForecaster(**CHEAP).fit(brent_monthly, fh=[1, 2, 3])
    np.testing.assert_array_equal(first.predict(), second.predict())
    other = FineTunedPriceForecaster(**{**CHEAP, "random_state": 1}).fit(
        brent_monthly, fh=[1, 2, 3]
    )
    assert not np.array_equal(first.predict(), other.predict())


def test_early_stopping_stops_and_restores_the_best_weights(brent_monthly):
    forecaster = FineTunedPriceForecaster(
        **{**CHEAP, "max_epochs": 40, "patience": 2, "learning_rate": 0.05}
    ).fit(brent_monthly, fh=[1, 2])
    history = forecaster.training_history_
    assert len(history) < 40
    best = history["validation_loss"].idxmin()
    assert len(history) == best + 1 + 2  # stopped `patience` epochs after the best

    # the restored weights give the best validation loss, not the last one
    from pricetune.data.windows import series_windows
    from pricetune.training import Trainer, TrainingConfig

    windows = series_windows(forecaster._store.values, 16, 2)
    _, validation = split_windows(len(windows), 2, 0.2)
    trainer = Trainer(
        TrainingConfig(max_epochs=1, batch_size=32, learning_rate=1e-3),
        forecaster.device_,
        forecaster._autocast_dtype,
    )
    loss = trainer.evaluate(forecaster.model_, windows, validation)
    assert loss == pytest.approx(history["validation_loss"].min(), rel=1e-4)
    assert loss < history["validation_loss"].iloc[-1]


def test_no_validation_trains_every_epoch(brent_monthly):
    forecaster = FineTunedPriceForecaster(
        **{**CHEAP, "validation_fraction": 0.0, "max_epochs": 4}
    ).fit(brent_monthly, fh=[1])
    assert list(forecaster.training_history_["epoch"]) == [1, 2, 3, 4]
    assert "validation_loss" not in forecaster.training_history_


def _weights(forecaster):
    return {k: v.clone() for k, v in forecaster.model_.state_dict().items()}


def test_update_without_params_moves_the_origin_only(brent_monthly):
    y_train, y_new = brent_monthly.iloc[:-6], brent_monthly.iloc[-6:]
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(y_train, fh=[1, 2])
    weights = _weights(forecaster)
    before = forecaster.predict()
    forecaster.update(y_new, update_params=False)
    after = forecaster.predict()
    assert after.index[0] == y_new.index[-1] + 1
    assert not np.allclose(before.to_numpy(), after.to_numpy())
    for name, tensor in _weights(forecaster).items():
        assert torch.equal(tensor, weights[name])
    # the new origin reads the newest values: same as fitting on all of it
    # with the same weights
    reference = copy.deepcopy(forecaster)
    reference._store = SeriesStore.from_y(brent_monthly)
    np.testing.assert_allclose(reference.predict().to_numpy(), after.to_numpy())


def test_update_with_params_continues_fine_tuning(brent_monthly):
    y_train, y_new = brent_monthly.iloc[:-6], brent_monthly.iloc[-6:]
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(y_train, fh=[1, 2])
    weights = _weights(forecaster)
    n_epochs = len(forecaster.training_history_)
    forecaster.update(y_new, update_params=True)
    changed = [
        name
        for name, tensor in _weights(forecaster).items()
        if not torch.equal(tensor, weights[name])
    ]
    assert changed
    history = forecaster.training_history_
    assert len(history) > n_epochs
    assert set(history["update"].dropna()) == {1}


def test_update_rejects_bad_data(brent_monthly):
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(brent_monthly.iloc[:-6], fh=[1])
    new = brent_monthly.iloc[-6:].copy()
    new.iloc[2] = np.inf
    before = new.copy()
    with pytest.raises(ValueError, match="NaN or infinite"):
        forecaster.update(new)
    assert new.equals(before)


def test_progress_bar_when_verbose(brent_monthly, capsys):
    FineTunedPriceForecaster(**{**CHEAP, "verbose": 1}).fit(brent_monthly, fh=[1])
    err = capsys.readouterr().err
    assert "pricetune lstm/full" in err and "epoch" in err
    FineTunedPriceForecaster(**CHEAP).fit(brent_monthly, fh=[1])
    assert capsys.readouterr().err == ""


def test_training_settings_are_validated(brent_monthly):
    for settings, error, match in [
        ({"lr_schedule": "step"}, ValueError, "lr_schedule must be one of"),
        ({"warmup_fraction": 1.0}, ValueError, "warmup_fraction"),
        ({"gradient_clip": 0}, ValueError, "gradient_clip must be positive"),
        ({"accumulate_batches": 0}, ValueError, "accumulate_batches must be at"),
        ({"ema_epochs": 0}, ValueError, "ema_epochs must be positive or None"),
        ({"ema_epochs": -1.5}, ValueError, "ema_epochs must be positive or None"),
    ]:
        with pytest.raises(error, match=match):
            FineTunedPriceForecaster(**{**CHEAP, **settings}).fit(brent_monthly, fh=[1])


def test_checkpoints_and_csv_log_through_the_forecaster(brent_monthly, tmp_path):
    settings = {
        **CHEAP,
        "checkpoint_dir": str(tmp_path / "ckpt"),
        "log_csv": str(tmp_path / "log.csv"),
    }
    first = FineTunedPriceForecaster(**settings).fit(brent_monthly.iloc[:-6], fh=[1])
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss")
    assert len(lines) == 1 + len(first.training_history_)

    # the same fit again finds its finished run and does not train it again
    again = FineTunedPriceForecaster(**settings).fit(brent_monthly.iloc[:-6], fh=[1])
    pd.testing.assert_frame_equal(again.training_history_, first.training_history_)
    np.testing.assert_array_equal(again.predict(), first.predict())

    # update trains further into a sub-folder of its own
    again.update(brent_monthly.iloc[-6:])
    assert (tmp_path / "ckpt" / "update-1" / "checkpoint.pt").is_file()

    # another seed is another run: refused, not resumed
    with pytest.raises(ValueError, match="another training run"):
        FineTunedPriceForecaster(**{**settings, "random_state": 1}).fit(
            brent_monthly.iloc[:-6], fh=[1]
        )


def _scalars(directory):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    events = EventAccumulator(str(directory))
    events.Reload()
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def test_tensorboard_scalars_match_the_history(brent_monthly, tmp_path):
    forecaster = FineTunedPriceForecaster(
        **CHEAP, tensorboard_dir=str(tmp_path / "tb")
    ).fit(brent_monthly.iloc[:-6], fh=[1])
    scalars = _scalars(tmp_path / "tb")
    history = forecaster.training_history_
    assert set(scalars) == {"train_loss", "validation_loss", "learning_rate", "seconds"}
    for tag in ("train_loss", "validation_loss", "learning_rate"):
        assert [step for step, _ in scalars[tag]] == history["epoch"].tolist()
        np.testing.assert_allclose(
            [value for _, value in scalars[tag]], history[tag], rtol=1e-6
        )
    forecaster.update(brent_monthly.iloc[-6:])
    assert _scalars(tmp_path / "tb" / "update-1")["train_loss"]


def test_tensorboard_dir_without_tensorboard_says_what_to_install(
    brent_monthly, tmp_path, monkeypatch
):
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        FineTunedPriceForecaster(**CHEAP, tensorboard_dir=str(tmp_path)).fit(
            brent_monthly, fh=[1]
        )
