"""The built-in backbones: each with a strategy on real prices, and on other
commodities and frequencies; the hf backbone reads any local checkpoint and
refuses what is not one; minilm loads the shipped pretrained weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pricetune import FineTunedPriceForecaster
from pricetune.components.language_model import MiniLMBackbone, minilm_path
from pricetune.datasets import load_gold, load_henry_hub, load_wti

# one network (the default mixes three: test_ensembles.py)
CHEAP = {
    "max_epochs": 2,
    "batch_size": 32,
    "random_state": 0,
    "verbose": 0,
    "n_ensemble": 1,
}


def _fit_and_check(y, fh, **params):
    before = y.copy()
    forecaster = FineTunedPriceForecaster(**{**CHEAP, **params}).fit(y, fh=fh)
    prediction = forecaster.predict()
    assert len(prediction) == len(fh)
    assert np.isfinite(prediction.to_numpy()).all()
    assert prediction.index[0] > y.index[-1]
    # forecasts stay on the scale of the series
    assert prediction.abs().max() < 10 * y.abs().max()
    assert y.equals(before)
    return forecaster


@pytest.mark.parametrize(
    ("backbone", "strategy", "backbone_kwargs"),
    [
        ("none", "full", {}),
        ("lstm", "full", {"hidden_size": 16}),
        ("lstm", "frozen", {"hidden_size": 16}),
        ("gru", "full", {"hidden_size": 16}),
        ("minilm", "lora", {"n_layers": 1}),
        ("minilm", "layernorm", {"n_layers": 1}),
        ("minilm", "frozen", {"n_layers": 1}),
        ("minilm", "full", {"n_layers": 1, "pretrained": False}),
    ],
)
def test_backbone_with_strategy_on_monthly_brent(
    brent_monthly, backbone, strategy, backbone_kwargs
):
    forecaster = _fit_and_check(
        brent_monthly,
        [1, 2, 3],
        backbone=backbone,
        strategy=strategy,
        backbone_kwargs=backbone_kwargs,
        context_length=24,
        patch_length=4,
    )
    interval = forecaster.predict_interval(coverage=0.8)
    lower = interval.xs("lower", axis=1, level=-1).to_numpy()
    upper = interval.xs("upper", axis=1, level=-1).to_numpy()
    assert (lower <= upper).all()


def test_other_commodities_and_frequencies():
    _fit_and_check(
        load_wti("weekly").iloc[-300:],
        [1, 2, 4],
        backbone="gru",
        strategy="full",
        context_length=32,
    )
    _fit_and_check(
        load_henry_hub("daily").iloc[-400:],
        list(range(1, 6)),
        backbone="lstm",
        strategy="full",
        context_length=40,
    )
    _fit_and_check(
        load_gold(),
        [1, 6, 12],
        backbone="none",
        strategy="full",
        context_length=36,
        head="linear",
    )


@pytest.mark.parametrize("strategy", ["full", "lora", "layernorm"])
def test_hf_backbone_reads_any_local_checkpoint(brent_monthly, tiny_gpt2_dir, strategy):
    forecaster = _fit_and_check(
        brent_monthly,
        [1, 2],
        backbone="hf",
        backbone_kwargs={"path": str(tiny_gpt2_dir)},
        strategy=strategy,
        context_length=16,
        patch_length=4,
    )
    assert forecaster.model_.backbone.hidden_size == 32


def test_hf_backbone_refuses_what_is_not_a_local_directory(brent_monthly, tmp_path):
    forecaster = FineTunedPriceForecaster(
        **CHEAP,
        backbone="hf",
        backbone_kwargs={"path": str(tmp_path / "gpt2")},
        context_length=16,
    )
    with pytest.raises(FileNotFoundError, match="never downloads"):
        forecaster.fit(brent_monthly, fh=[1])
    with pytest.raises(ValueError, match="needs backbone_kwargs"):
        FineTunedPriceForecaster(**CHEAP, backbone="hf", context_length=16).fit(
            brent_monthly, fh=[1]
        )


def test_minilm_loads_the_shipped_pretrained_weights():
    shipped = load_file(str(minilm_path() / "model.safetensors"))
    name = "encoder.layer.0.attention.self.query.weight"
    pretrained = MiniLMBackbone(patch_length=4, n_patches=3, n_layers=1)
    loaded = dict(pretrained.body.named_parameters())
    torch.testing.assert_close(loaded[name], shipped[name], rtol=0, atol=0)
    torch.testing.assert_close(
        loaded["embeddings.position_embeddings.weight"],
        shipped["embeddings.position_embeddings.weight"],
        rtol=0,
        atol=0,
    )
    random = MiniLMBackbone(patch_length=4, n_patches=3, n_layers=1, pretrained=False)
    assert not torch.equal(dict(random.body.named_parameters())[name], shipped[name])
    assert pretrained.hidden_size == 384
    assert len(pretrained.body.encoder.layer) == 1
