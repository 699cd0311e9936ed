"""Where training batches are gathered (pricetune.data.batches): on the host
or on the device, with the same numbers either way, in training too; and
which of the two a run gets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pricetune.data.batches import (
    DeviceBatches,
    HostBatches,
    batch_source,
    device_bytes,
)
from pricetune.data.windows import PanelWindows, series_windows

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def series(random_walk):
    values = random_walk(80, 0)
    covariates = np.random.default_rng(1).normal(size=(80, 2))
    return series_windows(values, 12, 3, covariates)


@pytest.fixture(scope="module")
def panel(random_walk):
    values = np.concatenate([random_walk(40, 2), random_walk(5, 3), random_walk(60, 4)])
    offsets = np.array([0, 40, 45, 105])
    covariates = np.random.default_rng(5).normal(size=(105, 2))
    return PanelWindows(values, offsets, 12, 3, covariates)


@pytest.mark.parametrize("kind", ["series", "panel"])
def test_device_batches_equal_host_batches(kind, series, panel):
    windows = series if kind == "series" else panel
    host, device = HostBatches(windows, CPU), DeviceBatches(windows, CPU)
    indices = np.array([0, 7, len(windows) - 1, 3, 3])
    for from_host, from_device in zip(
        host.batch(host.order(indices)),
        device.batch(device.order(indices)),
        strict=True,
    ):
        assert from_device.dtype == torch.float32
        assert from_device.shape == from_host.shape
        torch.testing.assert_close(from_device, from_host, rtol=0, atol=0)
    contexts = host.batch(indices)[0].numpy()
    expected = np.asarray(windows.contexts[indices], dtype=np.float32)
    np.testing.assert_array_equal(contexts, expected)


def test_device_bytes_counts_float32_copies(series, panel):
    n = len(series)
    assert device_bytes(series) == 4 * (n * 12 + n * 3 + n * 15 * 2)
    assert device_bytes(panel) == 4 * (105 + 2 * 4 + 105 * 2)


def test_batch_source_copies_small_data_only(series, monkeypatch):
    assert isinstance(batch_source(series, CPU), DeviceBatches)
    assert isinstance(batch_source(series, CPU, "host"), HostBatches)
    monkeypatch.setattr("pricetune.data.batches.HOST_COPY_LIMIT", 100)
    assert isinstance(batch_source(series, CPU), HostBatches)
    assert isinstance(batch_source(series, CPU, "device"), DeviceBatches)
    with pytest.raises(ValueError, match="placement must be"):
        batch_source(series, CPU, "gpu")


def test_training_on_device_batches_matches_host_batches(
    panel, small_lstm_model, train_on_cpu
):
    host_model = small_lstm_model(n_covariates=panel.n_covariate_features)
    device_model = small_lstm_model(n_covariates=panel.n_covariate_features)
    host = train_on_cpu(host_model, panel, "host")
    device = train_on_cpu(device_model, panel, "device")
    for a, b in zip(host, device, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["validation_loss"] == pytest.approx(b["validation_loss"], rel=1e-6)
    for a, b in zip(host_model.parameters(), device_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_are_gathered_on_the_gpu(panel, series):
    cuda = torch.device("cuda")
    for windows in (panel, series):
        source = batch_source(windows, cuda)
        assert isinstance(source, DeviceBatches)
        indices = np.array([0, 5, len(windows) - 1])
        from_host = HostBatches(windows, CPU).batch(indices)
        for on_gpu, expected in zip(
            source.batch(source.order(indices)), from_host, strict=True
        ):
            assert on_gpu.device.type == "cuda"
            torch.testing.assert_close(on_gpu.cpu(), expected, rtol=0, atol=0)
