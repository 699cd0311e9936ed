"""The estimators' parameters come from one place, the fields of
TrainingConfig: the same signatures and docs, every parameter reaching the
config a fit trains with, and a new option added the way CONTRIBUTING.md
says reaching the training loop."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd
import pytest

from pricetune import (
    FineTunedPriceDirectionClassifier,
    FineTunedPriceForecaster,
    FineTunedPriceRegressor,
)
from pricetune.estimators import fine_tuning, parameters
from pricetune.training import Callback, TrainingConfig
from pricetune.training.config import integer, option

EXCLUDED = {
    FineTunedPriceForecaster: ("linear_baseline",),
    FineTunedPriceRegressor: ("past_covariates", "static_covariates", "shrinkage"),
    FineTunedPriceDirectionClassifier: (
        "head",
        "normalization",
        "calibrate_intervals",
        "linear_baseline",
        "past_covariates",
        "static_covariates",
        "shrinkage",
    ),
}
FIELDS = [spec.name for spec in dataclasses.fields(TrainingConfig)]


@pytest.mark.parametrize("cls", list(EXCLUDED), ids=lambda cls: cls.__name__)
def test_each_estimator_takes_the_configs_fields_in_order(cls):
    signature = inspect.signature(cls.__init__)
    names = [name for name in signature.parameters if name != "self"]
    assert names == [name for name in FIELDS if name not in EXCLUDED[cls]]
    assert sorted(cls().get_params()) == sorted(names)
    for name in names:
        assert f"\n    {name} : " in cls.__doc__, name


def test_the_row_estimators_have_their_own_defaults_and_docs():
    defaults = FineTunedPriceRegressor().get_params()
    assert (defaults["context_length"], defaults["patch_length"]) == (None, 8)
    assert defaults["linear_baseline"] is True
    assert (defaults["backbone"], defaults["strategy"]) == ("minilm", "lora")
    forecaster = FineTunedPriceForecaster().get_params()
    assert forecaster["context_length"] == 24
    assert (forecaster["backbone"], forecaster["strategy"]) == ("lstm", "full")
    assert '\n    backbone : str, default "lstm"\n' in FineTunedPriceForecaster.__doc__
    assert "number of leading columns of ``X``" in FineTunedPriceRegressor.__doc__
    assert "for the direction head" in FineTunedPriceDirectionClassifier.__doc__
    assert "{parameters}" not in FineTunedPriceForecaster.__doc__


def test_init_stores_the_parameters_and_nothing_else():
    forecaster = FineTunedPriceForecaster("lstm", max_epochs=3)
    assert (forecaster.backbone, forecaster.max_epochs) == ("lstm", 3)
    regressor = FineTunedPriceRegressor(learning_rate="not checked yet")
    assert regressor.learning_rate == "not checked yet"  # checked in fit
    assert set(vars(regressor)) == set(regressor.get_params())


class Spy(Callback):
    def __init__(self):
        self.configs = []

    def on_train_begin(self, run):
        self.configs.append(run.config)


#: a value other than the default for every parameter, valid together
CHANGED = dict(
    backbone="lstm",
    head="quantile",
    strategy="full",
    backbone_kwargs={"hidden_size": 6},
    head_kwargs={"quantiles": [0.1, 0.5, 0.9]},
    strategy_kwargs={"body_lr_factor": 0.5},
    context_length=12,
    patch_length=4,
    patch_stride=3,
    normalization="mean",
    max_epochs=2,
    batch_size=16,
    learning_rate=2e-3,
    weight_decay=0.01,
    patience=3,
    validation_fraction=0.25,
    lr_schedule="constant",
    warmup_fraction=0.1,
    gradient_clip=0.5,
    accumulate_batches=2,
    augmentations=["scaling"],
    adversarial_epsilon=0.0,
    ema_epochs=1.0,
    calibrate_intervals="conformal",
    n_ensemble=2,
    compile="default",
    precision="fp32",
    random_state=3,
    verbose=0,
    device="cpu",
    min_scale=0.01,
    steps_per_epoch=3,
    max_validation_windows=20,
    linear_baseline=False,  # the regressor's default is True
    # the defaults: 2 processes are tested in tests/training/test_distributed.py,
    # covariate roles (which need X) in tests/estimators/test_covariate_roles.py
    n_processes=1,
    past_covariates=(),
    static_covariates=(),
    shrinkage=0.25,  # the forecaster's default is 0.75
)


@pytest.mark.parametrize("cls", list(EXCLUDED), ids=lambda cls: cls.__name__)
def test_every_parameter_reaches_the_config_of_the_fit(
    cls, brent_monthly, tmp_path, monkeypatch
):
    import torch

    monkeypatch.setattr(torch, "compile", lambda model, mode=None: model)
    spy = Spy()
    params = {
        **{k: v for k, v in CHANGED.items() if k not in EXCLUDED[cls]},
        **(
            {"head_kwargs": {"dropout": 0.1}}
            if cls is FineTunedPriceDirectionClassifier
            else {}
        ),
        "checkpoint_dir": str(tmp_path / "checkpoints"),
        "log_csv": str(tmp_path / "log.csv"),
        "tensorboard_dir": str(tmp_path / "board"),
        "callbacks": [spy],
    }
    assert set(params) == set(cls().get_params())
    values = brent_monthly.to_numpy()[-150:]
    estimator = cls(**params)
    if cls is FineTunedPriceForecaster:
        estimator.fit(brent_monthly.iloc[-150:], fh=[1, 2])
    else:
        spans = np.lib.stride_tricks.sliding_window_view(values, 13)
        y = spans[:, 12] > spans[:, 11] if cls is not FineTunedPriceRegressor else None
        estimator.fit(spans[:, :12], spans[:, 12] if y is None else y)
    assert len(spy.configs) == 2  # one run per ensemble member
    config = spy.configs[0]
    expected = {
        **params,
        "augmentations": config.augmentations,  # built from the names
        "callbacks": (spy,),
    }
    for name, value in expected.items():
        assert getattr(config, name) == value, name
    assert [type(a).__name__ for a in config.augmentations] == ["Scaling"]
    # the settings of the network reach the model that is built
    for member in estimator._members():
        assert member.min_scale == 0.01 and member.normalization == (
            "last" if cls is FineTunedPriceDirectionClassifier else "mean"
        )
        assert (member.patch_length, member.patch_stride) == (4, 3)


def test_the_parameters_left_at_their_defaults_above_reach_the_fit_too(
    brent_monthly, monkeypatch
):
    """CHANGED keeps n_processes and the covariate roles at their defaults
    (2 processes would start workers, the roles need X): here they are set."""
    from pricetune.training import launch

    y = brent_monthly.iloc[-100:]
    X = pd.DataFrame({"a": np.arange(100.0), "b": np.ones(100)}, index=y.index)
    spy = Spy()
    cheap = dict(
        backbone="none",
        head="linear",
        strategy="full",
        context_length=12,
        max_epochs=1,
        verbose=0,
        callbacks=[spy],
    )
    FineTunedPriceForecaster(
        **cheap, past_covariates=("a",), static_covariates=("b",)
    ).fit(y, X=X, fh=[1])
    assert (spy.configs[0].past_covariates, spy.configs[0].static_covariates) == (
        ("a",),
        ("b",),
    )
    seen = []

    def launcher(n_processes, model, windows, config, **kwargs):
        seen.append((n_processes, config.n_processes))
        raise RuntimeError("stop here")

    monkeypatch.setattr(launch, "train_in_processes", launcher)
    with pytest.raises(RuntimeError, match="stop here"):
        FineTunedPriceForecaster(**cheap, n_processes=3).fit(y, fh=[1])
    assert seen == [(3, 3)]


def test_an_option_added_as_contributing_says_reaches_the_trainer(
    brent_monthly, monkeypatch
):
    """CONTRIBUTING.md: a training option is a field of TrainingConfig
    (default, check, doc) and the code that uses it (here a callback); the
    estimators' signatures and docs follow from the field."""
    extended = dataclasses.make_dataclass(
        "ExtendedConfig",
        [
            (
                "warm_restarts",
                int,
                option(0, integer(0), "restarts of the schedule.", type="int"),
            )
        ],
        bases=(TrainingConfig,),
        frozen=True,
        kw_only=True,
    )
    monkeypatch.setattr(parameters, "TrainingConfig", extended)
    monkeypatch.setattr(fine_tuning, "TrainingConfig", extended)

    @parameters.training_parameters()
    class Forecaster(FineTunedPriceForecaster):
        """A forecaster with one more option.

        {parameters}
        """

    assert "warm_restarts : int, default 0" in Forecaster.__doc__
    spy = Spy()
    forecaster = Forecaster(
        backbone="none",
        head="linear",
        strategy="full",
        context_length=12,
        max_epochs=1,
        verbose=0,
        warm_restarts=2,
        callbacks=[spy],
    )
    assert forecaster.get_params()["warm_restarts"] == 2
    forecaster.fit(brent_monthly.iloc[-60:], fh=[1])
    assert spy.configs[0].warm_restarts == 2
    with pytest.raises(ValueError, match="warm_restarts must be at least 0"):
        forecaster.set_params(warm_restarts=-1).fit(brent_monthly.iloc[-60:], fh=[1])


@pytest.mark.parametrize(
    "name, value, error, message",
    [
        ("learning_rate", "fast", TypeError, "learning_rate must be a number"),
        ("learning_rate", float("inf"), ValueError, "learning_rate must be finite"),
        ("weight_decay", -1.0, ValueError, "weight_decay must be zero or positive"),
        ("batch_size", 0, ValueError, "batch_size must be at least 1"),
        ("patch_stride", 2.5, TypeError, "patch_stride must be an integer"),
        ("lr_schedule", "linear", ValueError, "lr_schedule must be one of"),
        (
            "calibrate_intervals",
            "yes",
            ValueError,
            r"calibrate_intervals must be one of \('scale', 'conformal'\), got 'yes'",
        ),
        (
            "calibrate_intervals",
            2,
            TypeError,
            r"calibrate_intervals must be True, False or one of",
        ),
        ("device", "tpu", ValueError, "device='tpu' is not a device"),
        ("random_state", "seed", TypeError, "random_state must be an int"),
        ("verbose", -1, ValueError, "verbose must be a non-negative integer"),
        ("checkpoint_dir", 3, TypeError, "checkpoint_dir must be a path or None"),
        ("backbone_kwargs", [1], TypeError, "backbone_kwargs must be a dict"),
    ],
)
def test_bad_settings_name_the_parameter(name, value, error, message):
    with pytest.raises(error, match=message):
        TrainingConfig(**{name: value})


def test_the_config_resolves_what_depends_on_other_settings():
    config = TrainingConfig(patch_length=8)
    assert config.patch_stride == 4
    assert TrainingConfig(patch_length=1).patch_stride == 1
    with pytest.raises(ValueError, match="needs validation windows"):
        TrainingConfig(calibrate_intervals=True, validation_fraction=0.0)
    with pytest.raises(ValueError, match="needs a head that gives quantiles"):
        TrainingConfig(calibrate_intervals=True, head="linear")
    with pytest.raises(TypeError, match="unknown training settings \\['nope'\\]"):
        TrainingConfig.from_params({"nope": 1})
    with pytest.raises(TypeError):  # keywords only
        TrainingConfig("minilm")


def test_the_checkpoint_fingerprint_ignores_what_does_not_change_training(tmp_path):
    base = TrainingConfig(backbone="none", head="linear", strategy="full")
    same = dataclasses.replace(
        base, verbose=0, log_csv=str(tmp_path / "log.csv"), random_state=5
    )
    assert base.fingerprint_items() == same.fingerprint_items()
    other = dataclasses.replace(base, learning_rate=0.1)
    assert base.fingerprint_items() != other.fingerprint_items()
