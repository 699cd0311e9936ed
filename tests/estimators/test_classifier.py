"""FineTunedPriceDirectionClassifier: up or down, as a scikit-learn
classifier on windows of prices."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.utils.estimator_checks import parametrize_with_checks

from pricetune import FineTunedPriceDirectionClassifier
from pricetune.estimators.classifier import DirectionHead, direction_rows

FAST = {
    "backbone": "none",
    "strategy": "full",
    "max_epochs": 3,
    "learning_rate": 0.01,
    "random_state": 0,
    "verbose": 0,
}


def _checked_instances():
    # check_classifiers_train asks for 83% training accuracy on blobs
    return [FineTunedPriceDirectionClassifier(**{**FAST, "max_epochs": 30})]


@parametrize_with_checks(_checked_instances())
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def rows(brent_monthly):
    return direction_rows(brent_monthly, context_length=24, horizon=3)


def test_direction_rows_label_the_move_at_the_horizon():
    X, y = direction_rows([1.0, 2.0, 1.5, 3.0, 2.0], context_length=2, horizon=2)
    np.testing.assert_array_equal(X, [[1.0, 2.0], [2.0, 1.5]])
    # 2.0 -> 3.0 (up), 1.5 -> 2.0 (up)
    np.testing.assert_array_equal(y, [1, 1])
    X, y = direction_rows([3.0, 2.0, 1.0, 2.0], context_length=1, horizon=1)
    np.testing.assert_array_equal(y, [0, 0, 1])
    with pytest.raises(ValueError, match="give no row"):
        direction_rows([1.0, 2.0], context_length=2, horizon=1)


def test_probabilities_sum_to_one_and_match_predict(rows):
    X, y = rows
    classifier = FineTunedPriceDirectionClassifier(**FAST).fit(X[:-24], y[:-24])
    proba = classifier.predict_proba(X[-24:])
    assert proba.shape == (24, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_array_equal(
        classifier.predict(X[-24:]), classifier.classes_[proba.argmax(axis=1)]
    )
    np.testing.assert_allclose(
        proba[:, 1], 1 / (1 + np.exp(-classifier.decision_function(X[-24:])))
    )
    assert isinstance(classifier.model_.head, DirectionHead)
    assert 0.0 <= classifier.score(X[-24:], y[-24:]) <= 1.0


def test_it_learns_a_direction_it_can_see():
    # the last move of each window continues: a learnable rule
    rng = np.random.default_rng(0)
    X = 50 + rng.normal(size=(400, 12)).cumsum(axis=1)
    y = np.where(X[:, -1] > X[:, -2], "up", "down")
    classifier = FineTunedPriceDirectionClassifier(
        **{**FAST, "max_epochs": 15, "patch_length": 2}
    ).fit(X[:300], y[:300])
    assert list(classifier.classes_) == ["down", "up"]
    assert classifier.score(X[300:], y[300:]) > 0.8


def test_wrong_targets_get_clear_errors(rows):
    X, y = rows
    classifier = FineTunedPriceDirectionClassifier(**FAST)
    with pytest.raises(ValueError, match="Only binary classification"):
        classifier.fit(X[:30], np.arange(30) % 3)
    with pytest.raises(ValueError, match="one class only"):
        classifier.fit(X[:30], np.ones(30))


def test_round_trips_through_the_safe_format_and_pickle(rows, tmp_path):
    X, y = rows
    labels = np.where(y == 1, "up", "down")
    classifier = FineTunedPriceDirectionClassifier(**FAST).fit(X[:-12], labels[:-12])
    classifier.save(tmp_path / "classifier")
    loaded = FineTunedPriceDirectionClassifier.load(tmp_path / "classifier")
    np.testing.assert_array_equal(
        loaded.predict_proba(X[-12:]), classifier.predict_proba(X[-12:])
    )
    assert list(loaded.classes_) == ["down", "up"]
    unpickled = pickle.loads(pickle.dumps(classifier))
    np.testing.assert_array_equal(
        unpickled.predict(X[-12:]), classifier.predict(X[-12:])
    )


def test_an_ensemble_averages_log_odds(rows):
    X, y = rows
    ensemble = FineTunedPriceDirectionClassifier(**FAST, n_ensemble=2).fit(
        X[:-12], y[:-12]
    )
    logits = []
    for member in ensemble.model_.members:
        whole = ensemble.model_
        ensemble.model_ = member
        logits.append(ensemble.decision_function(X[-12:]))
        ensemble.model_ = whole
    np.testing.assert_allclose(
        ensemble.decision_function(X[-12:]), np.mean(logits, axis=0), rtol=1e-6
    )
    np.testing.assert_allclose(ensemble.predict_proba(X[-12:]).sum(axis=1), 1.0)


def test_grid_search_over_backbones(rows):
    X, y = rows
    search = GridSearchCV(
        FineTunedPriceDirectionClassifier(**FAST),
        {"backbone": ["none", "lstm"]},
        cv=TimeSeriesSplit(n_splits=2),
        scoring="roc_auc",
    ).fit(X[-160:], y[-160:])
    assert search.best_params_["backbone"] in ("none", "lstm")
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_sktime_adapter_classifies_series(brent_monthly):
    from sktime.classification.compose import SklearnClassifierPipeline
    from sktime.transformations.compose import Id

    X, y = direction_rows(brent_monthly, context_length=24, horizon=3)
    # sktime's panel of univariate series: (instances, 1 variable, time)
    panel = X[:, None, :]
    adapted = SklearnClassifierPipeline(
        FineTunedPriceDirectionClassifier(**FAST), transformers=[Id()]
    )
    adapted.fit(panel[:-12], y[:-12])
    proba = adapted.predict_proba(panel[-12:])
    assert proba.shape == (12, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    direct = FineTunedPriceDirectionClassifier(**FAST).fit(X[:-12], y[:-12])
    np.testing.assert_allclose(proba, direct.predict_proba(X[-12:]), rtol=1e-6)
    assert set(adapted.predict(panel[-12:])) <= {0, 1}


def test_docstring_example_runs():
    import doctest

    import pricetune.estimators.classifier

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = finder.find(
        pricetune.estimators.classifier.FineTunedPriceDirectionClassifier
    )
    examples = [test for test in tests if test.examples]
    assert examples
    for test in examples:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_the_input_is_left_untouched(rows):
    X, y = rows
    X_before, y_before = X.copy(), y.copy()
    classifier = FineTunedPriceDirectionClassifier(**FAST).fit(X, y)
    classifier.predict_proba(X)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)


def test_training_options_that_would_flip_labels_are_refused(rows):
    X, y = rows
    for bad, message in [
        ({"adversarial_epsilon": 0.1}, "adversarial_epsilon must be 0"),
        ({"augmentations": ["jitter"]}, r"augmentations \[.*Jitter.*keeps_direction"),
        ({"augmentations": ["window_slice"]}, "keeps_direction"),
    ]:
        with pytest.raises(ValueError, match=message):
            FineTunedPriceDirectionClassifier(**FAST, **bad).fit(X[:40], y[:40])
    # moves keep their direction under these: labels survive augmentation
    classifier = FineTunedPriceDirectionClassifier(
        **FAST, augmentations=[("magnitude_warp", {"p": 1.0}), "scaling"]
    ).fit(X[:-12], y[:-12])
    assert classifier.predict_proba(X[-12:]).shape == (12, 2)
