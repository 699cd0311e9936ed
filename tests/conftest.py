"""Shared fixtures. Tests never reach the network: only loopback connections
are allowed, and Hugging Face libraries are told they are offline.

Helpers that tests in several folders use are fixtures here (test modules
are not importable: pytest runs with ``--import-mode=importlib``); the
factories among them return a function to call."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per xdist worker, for torch and for numpy's BLAS: threads
    # fighting over two cores slow training and AutoARIMA down many times over
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            raise OSError(f"tests must not use the network (tried {address!r})")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(scope="session")
def brent_monthly():
    from pricetune.datasets import load_brent

    return load_brent("monthly")


@pytest.fixture
def tiny_gpt2_dir(tmp_path_factory):
    """A randomly initialised 2-layer GPT-2 saved as a local checkpoint."""
    from transformers import GPT2Config, GPT2Model

    path = tmp_path_factory.mktemp("tiny-gpt2")
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=50)
    GPT2Model(config).save_pretrained(path)
    return path


@pytest.fixture
def clean_plugins():
    """Fresh plugin state before and after: tests (and the pages of docs/) may
    register in-process plugins, which later tests must not see."""
    from pricetune import plugins

    plugins.reload_plugins()
    yield
    plugins.reload_plugins()


@pytest.fixture
def autoloaded_plugins(monkeypatch):
    """Fresh plugin state before and after, with entry-point autoloading on
    whatever the environment says."""
    from pricetune import plugins

    monkeypatch.delenv(plugins.DISABLE_AUTOLOAD_ENV, raising=False)
    plugins.reload_plugins()
    yield
    plugins.reload_plugins()


@pytest.fixture(scope="session")
def random_walk():
    """A factory: ``random_walk(n, seed)``, n prices of a seeded Gaussian
    random walk from 50."""
    import numpy as np

    def walk(n, seed):
        return 50 + np.cumsum(np.random.default_rng(seed).normal(size=n))

    return walk


@pytest.fixture(scope="session")
def small_lstm_model():
    """A factory: ``small_lstm_model(seed=0, n_covariates=0)``, a seeded LSTM
    patch model with a linear head (contexts of 12, patches of 4 every 2,
    horizon 3)."""
    import torch

    from pricetune.components.heads import LinearHead
    from pricetune.components.simple_backbones import LSTMBackbone
    from pricetune.nn.model import PatchForecastModel

    def build(seed=0, n_covariates=0):
        torch.manual_seed(seed)
        return PatchForecastModel(
            LSTMBackbone(patch_length=4, n_patches=5, hidden_size=6),
            LinearHead(hidden_size=6, n_patches=5, horizon=3),
            context_length=12,
            patch_length=4,
            patch_stride=2,
            horizon=3,
            n_covariate_features=n_covariates,
        )

    return build


@pytest.fixture(scope="session")
def train_on_cpu():
    """A factory: ``train_on_cpu(model, windows, placement="auto",
    strategy=None, **settings)`` trains with the Trainer on the CPU (3 epochs,
    batches of 8, learning rate 1e-2 unless ``settings`` say otherwise) and
    returns the history."""
    import torch

    from pricetune.training import Trainer, TrainingConfig

    def fit(model, windows, placement="auto", strategy=None, **settings):
        config = TrainingConfig(
            **{"max_epochs": 3, "batch_size": 8, "learning_rate": 1e-2, **settings}
        )
        trainer = Trainer(config, torch.device("cpu"), None, placement=placement)
        generator = torch.Generator().manual_seed(0)
        return trainer.fit(model, windows, generator, strategy=strategy)

    return fit
