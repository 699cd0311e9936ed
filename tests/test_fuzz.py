"""Property test (issue 16): random short series, of random index types and
holding NaN, infinite, huge, negative or constant values, with random
horizons, either fit and forecast finite values of the right shape, or
raise a ``ValueError``/``TypeError`` of pricetune's own: never a crash from
inside torch, numpy or pandas, never a NaN forecast, and the caller's series
unchanged. Bounded to about a minute here; for a longer search, run it with
``PRICETUNE_FUZZ_EXAMPLES=2000``."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from pricetune import FineTunedPriceForecaster  # noqa: E402

TINY = dict(
    backbone="none",
    head="quantile",
    strategy="full",
    context_length=6,
    patch_length=3,
    max_epochs=1,
    verbose=0,
    random_state=0,
)
EXAMPLES = int(os.environ.get("PRICETUNE_FUZZ_EXAMPLES", "40"))

#: where an expected error may come from: pricetune's own checks, or
#: sktime's checks of its own inputs (which say what is wrong in sktime's
#: words); anything else is a bug
OWN_MODULES = ("pricetune", "sktime")


def _index(kind: str, n: int) -> pd.Index:
    if kind == "period":
        return pd.period_range("2000-01", periods=n, freq="M")
    if kind == "daily":
        return pd.date_range("2000-01-03", periods=n, freq="D")
    if kind == "business":
        return pd.date_range("2000-01-03", periods=n, freq="B")
    if kind == "irregular":
        days = np.cumsum(np.r_[0, np.arange(1, n) % 5 + 1]) if n else []
        return pd.DatetimeIndex(pd.Timestamp("2000-01-03") + pd.to_timedelta(days, "D"))
    return pd.RangeIndex(n)


special = st.sampled_from([np.nan, np.inf, -np.inf, 1e39, 1e150, 0.0, -5.0])


@st.composite
def series(draw):
    n = draw(st.integers(0, 60))
    base = draw(st.sampled_from([50.0, 1e-6, 1e20, -20.0]))
    steps = draw(
        st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=n, max_size=n)
    )
    values = base * np.exp(np.cumsum(steps)) if n else np.array([])
    if n and draw(st.booleans()):
        positions = draw(st.lists(st.integers(0, n - 1), max_size=3))
        for position in positions:
            values[position] = draw(special)
    if n and draw(st.booleans()):
        values = np.full(n, values[0])  # constant
    kind = draw(st.sampled_from(["period", "daily", "business", "irregular", "range"]))
    return pd.Series(values, index=_index(kind, n), name="price")


def _raised_here(error: BaseException) -> bool:
    frame = error.__traceback__
    last = None
    while frame is not None:
        last = frame
        frame = frame.tb_next
    module = last.tb_frame.f_globals.get("__name__", "") if last else ""
    return module.startswith(OWN_MODULES)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 40,  # the same examples in every CI run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(y=series(), horizon=st.integers(1, 30))
def test_random_short_series_fit_and_forecast_or_raise_a_clear_error(y, horizon):
    before = y.copy()
    forecaster = FineTunedPriceForecaster(**TINY)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forecaster.fit(y, fh=list(range(1, horizon + 1)))
            forecast = forecaster.predict()
            quantiles = forecaster.predict_quantiles(alpha=[0.1, 0.9])
    except (ValueError, TypeError) as error:
        event(f"refused: {str(error)[:40]}")
        assert _raised_here(error), f"{type(error).__name__} from inside: {error}"
        assert str(error).strip() and "\n" not in str(error).strip()[:200]
    else:
        event("fitted and forecast")
        assert len(forecast) == horizon
        assert np.isfinite(np.asarray(forecast, dtype=float)).all()
        assert np.isfinite(quantiles.to_numpy(dtype=float)).all()
    pd.testing.assert_series_equal(y, before)
