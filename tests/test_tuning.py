"""pricetune.tuning: the Optuna search over rolling origins, the pruning
callback, the search space, and Optuna being optional."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from sklearn.base import clone

from pricetune import FineTunedPriceForecaster
from pricetune.datasets import load_brent
from pricetune.tuning import OptunaPruning, read_space, tune
from pricetune.tuning.space import check_space, suggest

optuna = pytest.importorskip("optuna")

KNOWN = FineTunedPriceForecaster().get_params(deep=False)
#: tiny models: every fit takes a fraction of a second on one thread
# one network (the default mixes three: test_ensembles.py)
TINY = {
    "n_ensemble": 1,
    "max_epochs": 3,
    "steps_per_epoch": 2,
    "batch_size": 16,
    "patch_length": 4,
    "device": "cpu",
}
SPACE = {
    "backbone": ["none", "lstm"],
    "learning_rate": ("log", 1e-3, 1e-2),
    "context_length": [12, 24],
}


@pytest.fixture(scope="module")
def brent():
    return load_brent("monthly").loc["2005":]


class PruneAfterFirstTrial(optuna.pruners.BasePruner):
    """Spare trial 0; prune every later trial at its first report."""

    def prune(self, study, trial):
        return trial.number >= 1 and trial.last_step is not None


@pytest.fixture(scope="module")
def search(brent):
    return tune(
        brent,
        SPACE,
        params=TINY,
        default_space=False,
        n_trials=3,
        n_origins=2,
        horizon=3,
        pruner=PruneAfterFirstTrial(),
    )


def test_a_pruned_trial_stops_training_early(search):
    trials = search.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "PRUNED"]
    for trial in trials[1:]:
        # pruned at its first epoch of its first origin: one report, one
        # epoch trained, no later origin fitted
        assert list(trial.intermediate_values) == [1]
        assert len(trial.intermediate_values) < TINY["max_epochs"]
        assert trial.user_attrs["epochs"] == 1
    assert search.trials["epochs"].tolist() == [6, 1, 1]
    assert search.trials["state"].tolist() == ["COMPLETE", "PRUNED", "PRUNED"]
    # a pruned trial has no score (Optuna's value is its last report)
    assert search.trials["relMAE"].isna().tolist() == [False, True, True]


def test_steps_increase_over_the_origins_of_a_trial(search):
    # origin i reports epoch e at i * max_epochs + e
    complete = search.study.trials[0]
    assert sorted(complete.intermediate_values) == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(v) for v in complete.intermediate_values.values())
    assert search.config["pruning_stride"] == TINY["max_epochs"]
    assert len(search.cutoffs) == 2


def test_the_best_settings_are_refit_on_all_the_data(search, brent):
    assert search.best_trial == 0
    assert search.best_value == pytest.approx(search.study.trials[0].value)
    assert np.isfinite(search.best_value) and search.best_value > 0
    drawn = search.study.trials[0].params
    assert {k: search.best_params[k] for k in drawn} == drawn
    assert set(search.best_params) == {*SPACE, "strategy"}
    forecaster = search.forecaster
    assert isinstance(forecaster, FineTunedPriceForecaster)
    params = forecaster.get_params()
    for name, value in {**search.best_params, **TINY}.items():
        assert params[name] == value, name
    assert forecaster.is_fitted
    assert forecaster.callbacks is None  # the pruning stays with the trials
    assert forecaster.cutoff[0] == brent.index[-1]  # all of the data
    forecast = forecaster.predict()
    assert len(forecast) == 3 and np.isfinite(forecast.to_numpy()).all()


def test_a_resumed_study_refits_its_best_trial_of_an_earlier_call(brent):
    """The best trial may come from an earlier call on the same study: its
    settings (here a dict choice) are decoded again, not read as text."""
    space = {"backbone": ["lstm"], "backbone_kwargs": [{"hidden_size": 4}]}
    options = dict(
        params={**TINY, "context_length": 12},
        default_space=False,
        n_origins=1,
        horizon=3,
        seed=0,
    )
    first = tune(brent, space, n_trials=1, **options)
    study = first.study
    # a later call that runs no trial: the earlier one is the best
    again = tune(brent, space, n_trials=0, study=study, **options)
    assert again.best_params["backbone_kwargs"] == {"hidden_size": 4}
    assert again.forecaster.get_params()["backbone_kwargs"] == {"hidden_size": 4}
    assert again.forecaster.model_.backbone.hidden_size == 4


def test_the_result_is_saved(search, tmp_path):
    paths = search.save(tmp_path)
    best = json.loads(paths["best"].read_text())
    assert best["best_params"] == search.best_params
    assert best["trial"] == 0 and best["metric"] == "relMAE"
    assert best["states"] == {"COMPLETE": 1, "PRUNED": 2}
    assert len(best["cutoffs"]) == 2
    text = paths["trials"].read_text().splitlines()
    assert text[0].startswith("trial,state,relMAE,epochs,seconds,backbone")
    assert len(text) == 4
    assert "best: trial 0, relMAE" in search.to_string()


def test_when_every_trial_is_pruned_there_is_no_best(brent):
    # the losses are positive: a threshold of 0 prunes at the first report
    with pytest.raises(ValueError, match="no trial finished"):
        tune(
            brent,
            {"backbone": "none"},
            params=TINY,
            default_space=False,
            n_trials=1,
            n_origins=1,
            horizon=3,
            pruner=optuna.pruners.ThresholdPruner(upper=0.0),
        )


def test_the_callback_prunes_a_fit_in_your_own_objective(brent):
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trial = study.ask()
    pruning = OptunaPruning(trial)
    forecaster = FineTunedPriceForecaster(
        backbone="none", strategy="full", context_length=12, verbose=0,
        random_state=0, callbacks=[pruning], **TINY,
    )  # fmt: skip
    forecaster.fit(brent, fh=[1, 2, 3])
    assert pruning.pruned
    assert len(forecaster.training_history_) == 1 < TINY["max_epochs"]
    assert [step for step, _ in pruning.history] == [1]
    value = forecaster.training_history_["validation_loss"].iloc[0]
    assert study.trials[0].intermediate_values == {1: value}


def test_a_pruned_ensemble_stops_its_later_members_too(brent):
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    pruning = OptunaPruning(study.ask())
    forecaster = FineTunedPriceForecaster(
        backbone="none", strategy="full", context_length=12, verbose=0,
        random_state=0, callbacks=[pruning], **{**TINY, "n_ensemble": 3},
    )  # fmt: skip
    forecaster.fit(brent, fh=[1, 2, 3])
    assert pruning.pruned and [step for step, _ in pruning.history] == [1]
    epochs = forecaster.training_history_.groupby("member")["epoch"].max()
    assert epochs.tolist() == [1, 1, 1] and TINY["max_epochs"] > 1


def test_the_callback_survives_clone_and_needs_its_loss(brent):
    pruning = OptunaPruning(object())
    forecaster = FineTunedPriceForecaster(callbacks=[pruning])
    assert clone(forecaster).callbacks[0] is pruning  # a trial cannot be copied
    study = optuna.create_study()
    quiet = FineTunedPriceForecaster(
        backbone="none", strategy="full", context_length=12, verbose=0,
        validation_fraction=0.0, callbacks=[OptunaPruning(study.ask())], **TINY,
    )  # fmt: skip
    with pytest.raises(ValueError, match="monitor='train_loss'"):
        quiet.fit(brent, fh=[1, 2, 3])


# ----------------------------------------------------------------- the space
def test_the_space_format():
    dimensions = check_space(
        {
            "learning_rate": ("log", 1e-4, 1e-2),
            "max_epochs": ["int", 10, 30, 10],
            "backbone_kwargs": [{"hidden_size": 8}, {"hidden_size": 16}],
            "batch_size": 32,
        },
        KNOWN,
        default=False,
    )
    kinds = {name: d.kind for name, d in dimensions.items()}
    assert kinds == {
        "learning_rate": "log",
        "max_epochs": "int",
        "backbone_kwargs": "choice",
        "batch_size": "fixed",
    }
    assert dimensions["max_epochs"].largest() == 30
    trial = optuna.trial.FixedTrial(
        {
            "learning_rate": 1e-3,
            "max_epochs": 20,
            "backbone_kwargs": json.dumps({"hidden_size": 16}),
        }
    )
    assert suggest(trial, dimensions) == {
        "learning_rate": 1e-3,
        "max_epochs": 20,
        "backbone_kwargs": {"hidden_size": 16},
        "batch_size": 32,
    }


def test_a_backbone_trained_from_scratch_gets_the_full_strategy():
    dimensions = check_space(None, KNOWN)  # the default space
    assert list(dimensions)[0] == "backbone"
    drawn = suggest(
        optuna.trial.FixedTrial(
            {"backbone": "lstm", "learning_rate": 1e-3, "context_length": 24,
             "max_epochs": 10}
        ),
        dimensions,
    )  # fmt: skip
    assert drawn["strategy"] == "full"
    fixed = {"backbone": "minilm", "strategy": "layernorm"}
    fixed.update(learning_rate=1e-3, context_length=24, max_epochs=10)
    assert suggest(optuna.trial.FixedTrial(fixed), dimensions) == fixed


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"lerning_rate": [1e-3]}, "unknown parameter 'lerning_rate'.*'learning_rate'"),
        ({"callbacks": [None]}, "sets callbacks itself"),
        ({"learning_rate": ("log", 0, 1)}, "log range needs low > 0"),
        ({"learning_rate": ("float", 1, 1)}, "low must be below high"),
        ({"max_epochs": ("int", 1.5, 4)}, "int range needs integers"),
        ({"max_epochs": ("int", 1, "9")}, "high must be a number"),
        ({"learning_rate": ("log", 1e-3)}, r"\('log', low, high\)"),
        ({"backbone": []}, "empty list of choices"),
    ],
)
def test_a_bad_space_is_one_line(space, message):
    with pytest.raises(ValueError, match=message) as error:
        check_space(space, KNOWN)
    assert "\n" not in str(error.value)


def test_read_space_takes_json_text_or_a_file(tmp_path):
    text = '{"learning_rate": ["log", 0.0001, 0.01], "backbone": ["lstm"]}'
    path = tmp_path / "space.json"
    path.write_text(text)
    assert read_space(text) == read_space(str(path)) == json.loads(text)
    with pytest.raises(ValueError, match="neither a JSON object nor a JSON file"):
        read_space("learning_rate=1")
    with pytest.raises(ValueError, match="must be a JSON object"):
        read_space("[1, 2]")


def test_bad_arguments_fail_before_any_fit():
    with pytest.raises(ValueError, match="both searched"):
        tune("brent", {"max_epochs": [2, 3]}, params={"max_epochs": 2})
    with pytest.raises(ValueError, match="metric must be one of"):
        tune("brent", metric="DA")
    with pytest.raises(ValueError, match="'epochs', not a FineTunedPriceForecaster"):
        tune("brent", params={"epochs": 2})


def test_without_optuna_tune_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    import pricetune.tuning

    assert pricetune.tuning.OptunaPruning is OptunaPruning  # needs no optuna
    with pytest.raises(ImportError, match=r"pip install 'pricetune\[optuna\]'"):
        tune("brent")
