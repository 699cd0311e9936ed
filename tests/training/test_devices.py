"""Where training runs and at what precision (pricetune.training.devices):
what "auto" picks, CUDA indices that are not there, bf16 on CUDA only, and
the autocast path exercised on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.training import resolve_device, resolve_precision

CHEAP = {
    "backbone": "lstm",
    "backbone_kwargs": {"hidden_size": 8},
    "strategy": "full",
    "context_length": 16,
    "patch_length": 4,
    "max_epochs": 3,
    "random_state": 0,
    "verbose": 0,
}


def test_auto_device_prefers_cuda_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(TypeError, match="device must be a string"):
        resolve_device(0)


def test_a_cuda_index_that_is_not_there_fails_early(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(RuntimeError, match="only 1 CUDA device"):
        resolve_device("cuda:1")


def test_under_torchrun_each_process_gets_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device("auto") == torch.device("cuda:2")
    assert resolve_device("cuda") == torch.device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda:1")  # as asked
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert resolve_device("cuda") == torch.device("cuda")


def test_auto_precision_is_bf16_on_cuda_only(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_precision("fp32", torch.device("cuda")) is None
    assert resolve_precision("auto", torch.device("cpu")) is None


def test_bf16_autocast_path_trains_on_cpu(brent_monthly, monkeypatch):
    # the GPU path's autocast code, exercised with CPU autocast
    from pricetune.training import devices

    monkeypatch.setattr(devices, "resolve_precision", lambda p, d: torch.bfloat16)
    forecaster = FineTunedPriceForecaster(**CHEAP).fit(brent_monthly, fh=[1, 2])
    assert forecaster._autocast_dtype is torch.bfloat16
    assert np.isfinite(forecaster.training_history_["train_loss"]).all()
    assert np.isfinite(forecaster.predict().to_numpy()).all()
