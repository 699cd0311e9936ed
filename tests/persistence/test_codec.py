"""The safe format's JSON codec (pricetune.persistence.codec): indices are
encoded exactly, and those it cannot hold are refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pricetune.persistence import PersistenceError, codec


@pytest.mark.parametrize(
    "index",
    [
        pd.period_range("2020-01", periods=3, freq="W-FRI", name="week"),
        pd.date_range("2020-03-28", periods=3, freq="h", tz="Europe/Berlin"),
        pd.DatetimeIndex(["2020-01-01", "2020-01-03", "2020-01-04"]),
        pd.RangeIndex(5, 11, 2),
        pd.Index([3, 5, 9], dtype="int32"),
    ],
    ids=["period", "datetime-tz", "datetime-irregular", "range", "int32"],
)
def test_index_encoding_is_exact(index):
    encoded = json.loads(json.dumps(codec.encode_index(index, "test")))
    decoded = codec.decode_index(encoded)
    assert type(decoded) is type(index)
    pd.testing.assert_index_equal(decoded, index, exact=True)
    assert getattr(decoded, "freq", None) == getattr(index, "freq", None)


def test_index_encoding_refuses_other_indices():
    with pytest.raises(PersistenceError, match="stores PeriodIndex"):
        codec.encode_index(pd.Index([0.5, 1.5]), "the cutoff")
