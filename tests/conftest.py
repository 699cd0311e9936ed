"""Shared fixtures. Tests never reach the network: only loopback connections
are allowed, and Hugging Face libraries are told they are offline."""

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
