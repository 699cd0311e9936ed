"""Grid search and ``evaluate`` in parallel: joblib's loky and a local Dask
cluster give the same, seeded results as a sequential run.

sktime 1.2 parallelises ``ForecastingGridSearchCV`` over candidates and
``evaluate`` over folds through its ``backend`` / ``backend_params``
arguments. Each worker fits its own clone of the forecaster, seeded by
``random_state``, so process-based backends reproduce the sequential scores.
"""

from __future__ import annotations

import numpy as np
import pytest
from sktime.forecasting.model_evaluation import evaluate
from sktime.forecasting.model_selection import ForecastingGridSearchCV
from sktime.performance_metrics.forecasting import MeanAbsolutePercentageError
from sktime.split import ExpandingWindowSplitter

from pricetune import FineTunedPriceForecaster
from pricetune.datasets import load_brent

FH = [1, 2, 3]
SMAPE = MeanAbsolutePercentageError(symmetric=True)
SCORE = "test_MeanAbsolutePercentageError"
GRID = {"learning_rate": [1e-3, 1e-2], "context_length": [12, 24]}


def forecaster() -> FineTunedPriceForecaster:
    return FineTunedPriceForecaster(
        backbone="none",
        head="linear",
        strategy="full",
        context_length=12,
        patch_length=4,
        max_epochs=2,
        random_state=0,
        verbose=0,
    )


@pytest.fixture(scope="module")
def y():
    return load_brent("monthly").iloc[-120:]


@pytest.fixture(scope="module")
def cv(y):
    return ExpandingWindowSplitter(fh=FH, initial_window=len(y) - 9, step_length=3)


def search(cv, **backend) -> ForecastingGridSearchCV:
    return ForecastingGridSearchCV(
        forecaster(),
        cv,
        GRID,
        scoring=SMAPE,
        **backend,
    )


def scores(search_or_results) -> np.ndarray:
    if isinstance(search_or_results, ForecastingGridSearchCV):
        return search_or_results.cv_results_[f"mean_{SCORE}"].to_numpy()
    return search_or_results[SCORE].to_numpy()


@pytest.fixture(scope="module")
def sequential(y, cv):
    """The reference: the same search and evaluation, one fit after another."""
    reference = search(cv, backend=None).fit(y, fh=FH)
    folds = evaluate(forecaster(), cv, y, scoring=SMAPE)
    return reference, folds


def assert_same_search(parallel, reference) -> None:
    assert parallel.best_params_ == reference.best_params_
    assert list(parallel.cv_results_["params"]) == list(reference.cv_results_["params"])
    # same seeds, same data, one thread per worker: the same numbers
    np.testing.assert_allclose(scores(parallel), scores(reference), rtol=1e-6)
    np.testing.assert_array_equal(
        parallel.cv_results_[f"rank_{SCORE}"], reference.cv_results_[f"rank_{SCORE}"]
    )
    np.testing.assert_allclose(
        parallel.predict(), reference.predict(), rtol=1e-6
    )  # both refitted the best candidate in this process


# ----------------------------------------------------------------- loky
@pytest.fixture
def loky_workers():
    """Shut loky's reusable worker pool down after the test."""
    yield
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True, kill_workers=True)


def test_loky_matches_sequential(y, cv, sequential, loky_workers):
    reference, folds = sequential
    parallel = search(cv, backend="loky", backend_params={"n_jobs": 2}).fit(y, fh=FH)
    assert_same_search(parallel, reference)

    results = evaluate(
        forecaster(),
        cv,
        y,
        scoring=SMAPE,
        backend="loky",
        backend_params={"n_jobs": 2},
    )
    np.testing.assert_allclose(scores(results), scores(folds), rtol=1e-6)


def test_threaded_fits_stay_reproducible(y, cv, sequential):
    # torch's generator is process-wide; concurrent fits in threads take
    # turns, so each candidate still sees its own seeded random stream
    reference, _ = sequential
    for _ in range(2):
        threaded = search(cv, backend="threading", backend_params={"n_jobs": 2}).fit(
            y, fh=FH
        )
        assert_same_search(threaded, reference)


# ----------------------------------------------------------------- dask
@pytest.fixture(scope="module")
def dask_client():
    """A two-process Dask cluster on the loopback interface, shut down after."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("dask.dataframe")  # sktime's evaluate(backend="dask")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_dask_matches_sequential(y, cv, sequential, dask_client):
    """Both routes onto the cluster (one test, so that pytest-xdist starts one
    cluster): sktime's ``backend="dask"``, which computes on the active Dask
    client, and joblib's Dask backend chosen with ``joblib.parallel_backend``.
    """
    import joblib
    from distributed import get_task_stream

    reference, folds = sequential
    with get_task_stream(dask_client) as stream:
        parallel = search(cv, backend="dask").fit(y, fh=FH)
    assert_same_search(parallel, reference)
    assert len(stream.data) == len(reference.cv_results_)  # a task per candidate

    with get_task_stream(dask_client) as stream:
        results = evaluate(forecaster(), cv, y, scoring=SMAPE, backend="dask")
    np.testing.assert_allclose(scores(results), scores(folds), rtol=1e-6)
    assert len(stream.data) >= len(folds)  # the folds ran on the cluster

    # sktime hands its ``backend`` ("loky" by default) to joblib explicitly,
    # which wins over joblib's context manager; ``backend="joblib"`` with
    # ``backend_params={"backend": None}`` lets the context choose
    with joblib.parallel_backend("dask"), get_task_stream(dask_client) as stream:
        parallel = search(cv, backend="joblib", backend_params={"backend": None})
        parallel.fit(y, fh=FH)
    assert_same_search(parallel, reference)
    assert stream.data  # the candidates ran on the cluster
