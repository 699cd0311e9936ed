"""Training windows (pricetune.data.windows): the validation split keeps
validation targets out of training and, on a panel, takes each series'
newest windows; lazy panel windows give exactly the eager batches, and
their memory grows with the data, not the number of windows."""

from __future__ import annotations

import tracemalloc

import numpy as np

from pricetune.data.windows import PanelWindows, series_windows, split_windows


def test_split_keeps_validation_targets_out_of_training():
    horizon = 3
    train, validation = split_windows(100, horizon, 0.2)
    assert len(validation) == 20
    assert validation[0] == 80
    # the last training target (train[-1] + horizon - 1) ends before the first
    # validation target (validation[0])
    assert train[-1] + horizon - 1 < validation[0]
    # too few windows to spare a purged validation tail: train on all
    train, validation = split_windows(3, 3, 0.2)
    assert len(validation) == 0 and len(train) == 3


def _ragged_panel(rng, lengths, n_covariates=2):
    values = [rng.normal(size=n).cumsum() + 50 for n in lengths]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    covariates = rng.normal(size=(int(offsets[-1]), n_covariates))
    return values, offsets, covariates


def test_lazy_windows_give_exactly_the_eager_batches():
    rng = np.random.default_rng(0)
    lengths = [40, 12, 7, 25, 3, 60]  # 7 and 3 are too short for a window
    context, horizon = 8, 3
    values, offsets, covariates = _ragged_panel(rng, lengths)
    windows = PanelWindows(
        np.concatenate(values), offsets, context, horizon, covariates
    )
    # the eager (n, L) arrays, with explicit loops
    contexts, targets, spans = [], [], []
    for s, series in enumerate(values):
        for start in range(len(series) - context - horizon + 1):
            contexts.append(series[start : start + context])
            targets.append(series[start + context : start + context + horizon])
            row = offsets[s] + start
            spans.append(covariates[row : row + context + horizon].reshape(-1))
    contexts, targets, spans = map(np.array, (contexts, targets, spans))
    assert len(windows) == len(contexts)
    assert windows.horizon == horizon
    assert windows.targets.shape == targets.shape  # what the Trainer reads
    assert windows.contexts.shape == contexts.shape
    assert windows.n_covariate_features == spans.shape[1]
    assert windows.short_series.tolist() == [2, 4]
    for _ in range(20):
        indices = rng.choice(len(windows), size=rng.integers(1, 40))
        got = windows.batch(indices)
        np.testing.assert_array_equal(got[0], contexts[indices])
        np.testing.assert_array_equal(got[1], targets[indices])
        np.testing.assert_array_equal(got[2], spans[indices])
        np.testing.assert_array_equal(windows.targets[indices], targets[indices])
        np.testing.assert_array_equal(windows.contexts[indices], contexts[indices])
    np.testing.assert_array_equal(np.asarray(windows.targets), targets)
    # one series: the same batches as series_windows
    single = PanelWindows(values[0], [0, len(values[0])], context, horizon)
    eager = series_windows(values[0], context, horizon)
    indices = rng.permutation(len(eager))
    for got, expected in zip(single.batch(indices), eager.batch(indices), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert single.split(0.2)[1].tolist() == eager.split(0.2)[1].tolist()
    assert eager.horizon == horizon
    # digests tell data apart (for checkpoints), cheaply for panels
    again = PanelWindows(np.concatenate(values), offsets, context, horizon, covariates)
    assert again.digest() == windows.digest() != single.digest()
    assert eager.digest() == series_windows(values[0], context, horizon).digest()


def test_the_validation_split_takes_each_series_newest_windows():
    rng = np.random.default_rng(1)
    lengths = [80, 30, 9, 50, 14]
    context, horizon = 6, 4
    values, offsets, _ = _ragged_panel(rng, lengths)
    windows = PanelWindows(np.concatenate(values), offsets, context, horizon)
    train, validation = windows.split(0.2)
    assert len(np.intersect1d(train, validation)) == 0
    series_of_train, train_starts = windows.locate(train)
    series_of_validation, validation_starts = windows.locate(validation)
    for s, count in enumerate(windows.n_windows_per_series):
        expected = split_windows(int(count), horizon, 0.2)  # the Trainer's rule
        mine_train = train_starts[series_of_train == s] - offsets[s]
        mine_validation = validation_starts[series_of_validation == s] - offsets[s]
        assert mine_train.tolist() == expected[0].tolist()
        assert mine_validation.tolist() == expected[1].tolist()
        if len(mine_validation):
            # the newest windows of that series validate...
            assert mine_validation.max() == count - 1
            # ...and no training target overlaps a validation target
            last_train_target = mine_train.max() + context + horizon - 1
            first_validation_target = mine_validation.min() + context
            assert last_train_target < first_validation_target
    # every series with windows to spare validates, not only the last one
    assert windows.short_series.tolist() == [2]
    assert set(series_of_validation.tolist()) == {0, 1, 3, 4}


def test_lazy_windows_memory_grows_with_the_data_not_the_windows():
    n_series, length, context, horizon = 10_000, 500, 64, 8
    tracemalloc.start()
    try:
        values = np.random.default_rng(0).normal(size=n_series * length)
        offsets = np.arange(0, n_series * length + 1, length)
        windows = PanelWindows(values, offsets, context, horizon)
        train, validation = windows.split(0.2)
        order = np.random.default_rng(1).permutation(train)
        for start in range(0, 20 * 256, 256):
            contexts, targets, _ = windows.batch(order[start : start + 256])
            assert contexts.shape == (256, context)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(windows) == n_series * (length - context - horizon + 1)
    # the data are 40 MB and the split's indices 34 MB; eager contexts alone
    # would take len(windows) * context * 8 bytes, over 2 GB
    assert len(windows) * context * 8 > 2e9
    assert peak < 200e6, f"{peak / 1e6:.0f} MB"
