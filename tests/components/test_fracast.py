"""The ``fracast`` backbone and head: Fracast-0's shipped weights, its
zero-shot forecasts through pricetune, and what each strategy trains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("fracast")  # in the test extra; its weights are in the wheel

from fracast import FracastModel  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from pricetune import FineTunedPriceForecaster  # noqa: E402
from pricetune.components.fracast import (  # noqa: E402
    fracast_weights_dir,
    series_from_patches,
)
from pricetune.nn.build import build_member  # noqa: E402
from pricetune.training.config import TrainingConfig  # noqa: E402


def _model(horizon=12, **settings):
    settings = {
        "context_length": 60,
        "patch_length": 6,
        "strategy": "frozen",
        **settings,
    }
    config = TrainingConfig(backbone="fracast", head="fracast", **settings)
    model, _ = build_member(config, horizon, 0, 0)
    return model.eval()


def _contexts(n=3, length=60, seed=0):
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(n, length)), axis=1)
    return (100 + walk).astype(np.float32)


def _forecast(model, contexts):
    """The model's quantiles in price units."""
    with torch.no_grad():
        tensor = torch.from_numpy(contexts)
        loc, scale = model.scaling(tensor)
        out = model.head.to_quantiles(model(tensor))
        return (out * scale.unsqueeze(-1) + loc.unsqueeze(-1)).numpy()


def test_the_backbone_loads_the_weights_shipped_in_the_wheel():
    model = _model()
    shipped = load_file(str(fracast_weights_dir() / "model.safetensors"))
    assert torch.equal(
        model.backbone.body.in_proj.weight, shipped["core.in_proj.weight"]
    )
    assert torch.equal(
        model.backbone.decoder.out_proj.weight, shipped["head.out_proj.weight"]
    )
    n_shipped = sum(t.numel() for t in shipped.values())
    assert sum(p.numel() for p in model.parameters()) == n_shipped


@pytest.mark.parametrize("patch_stride", [None, 6, 1])
def test_zero_shot_forecasts_equal_fracast_s_own(patch_stride):
    # default stride (overlapping patches), non-overlapping, and stride 1:
    # the backbone reads the same window back from any of them
    contexts = _contexts()
    model = _model(patch_stride=patch_stride)
    ours = _forecast(model, contexts)
    theirs = FracastModel.from_pretrained(weights="fp32").forecast(contexts, horizon=12)
    assert ours.shape == (3, 12, 9)
    np.testing.assert_allclose(ours, np.sort(theirs, axis=-1), rtol=0, atol=1e-5)


def test_the_int8_release_loads_too_and_forecasts_close_to_fp32():
    contexts = _contexts()
    w8 = _forecast(_model(backbone_kwargs={"weights": "w8"}), contexts)
    fp32 = _forecast(_model(), contexts)
    theirs = FracastModel.from_pretrained(weights="w8").forecast(contexts, horizon=12)
    np.testing.assert_allclose(w8, np.sort(theirs, axis=-1), rtol=0, atol=1e-4)
    assert not np.array_equal(w8, fp32)


def test_random_weights_are_not_the_pretrained_ones():
    model = _model(backbone_kwargs={"pretrained": False})
    shipped = load_file(str(fracast_weights_dir() / "model.safetensors"))
    assert not torch.equal(
        model.backbone.body.in_proj.weight, shipped["core.in_proj.weight"]
    )


def test_series_from_patches_puts_the_window_back_together():
    series = torch.arange(20.0).reshape(1, 20)
    for length, stride in [(4, 2), (4, 4), (5, 3), (1, 1)]:
        n = (20 - length) // stride + 1
        used = (n - 1) * stride + length
        patches = series[:, -used:].unfold(1, length, stride)
        assert torch.equal(series_from_patches(patches, stride), series[:, -used:])
    with pytest.raises(ValueError, match="leave gaps"):
        series_from_patches(series.unfold(1, 2, 3), 3)


def test_a_shorter_window_is_faster_to_train_and_still_forecasts():
    model = _model(backbone_kwargs={"window": 64})
    out = _forecast(model, _contexts())
    assert out.shape == (3, 12, 9) and np.isfinite(out).all()
    assert model.backbone.window == 64
    with pytest.raises(ValueError, match=r"window \(32\) must be at least"):
        _model(backbone_kwargs={"window": 32})


def test_the_head_checks_what_it_is_paired_with():
    with pytest.raises(ValueError, match="at most 48 steps"):
        _model(horizon=49)
    config = TrainingConfig(backbone="none", head="fracast", context_length=24)
    with pytest.raises(ValueError, match="reads the forecasts of backbone 'fracast'"):
        build_member(config, 6, 0, 0)


def _series(n=90):
    index = pd.period_range("2000-01", periods=n, freq="M")
    rng = np.random.default_rng(1)
    return pd.Series(50 + np.cumsum(rng.normal(size=n)), index=index, name="price")


def _fit(strategy, **extra):
    forecaster = FineTunedPriceForecaster(
        backbone="fracast",
        head="fracast",
        strategy=strategy,
        backbone_kwargs={"window": 32},
        context_length=24,
        patch_length=6,
        max_epochs=1,
        steps_per_epoch=2,
        batch_size=8,
        learning_rate=0.01,
        n_ensemble=1,
        random_state=0,
        verbose=0,
        device="cpu",
        **extra,
    )
    return forecaster.fit(_series(), fh=[1, 2, 3])


def _changed(forecaster):
    """Names of the parameters whose values training changed."""
    fresh = _model(
        horizon=3,
        context_length=24,
        backbone_kwargs={"window": 32},
    ).state_dict()
    trained = forecaster.model_.state_dict()
    names = []
    for name, value in trained.items():
        base = name.replace("base_model.model.", "").replace(".base_layer", "")
        if base in fresh and not torch.equal(fresh[base], value):
            names.append(base)
        elif base not in fresh and "lora_B" in name and value.abs().sum() > 0:
            names.append(name)
    return names


def test_frozen_fine_tuning_trains_fracast_s_head_only():
    forecaster = _fit("frozen")
    changed = _changed(forecaster)
    assert changed and all(n.startswith("backbone.decoder.") for n in changed)
    prediction = forecaster.predict()
    assert prediction.shape == (3,) and np.isfinite(prediction).all()


def test_full_fine_tuning_trains_the_encoder_too():
    changed = _changed(_fit("full"))
    assert any(n.startswith("backbone.body.") for n in changed)
    assert any(n.startswith("backbone.decoder.") for n in changed)


def test_lora_adapts_the_encoder_s_linear_layers_and_keeps_its_weights():
    forecaster = _fit("lora", strategy_kwargs={"r": 2})
    changed = _changed(forecaster)
    body = [n for n in changed if "body" in n]
    assert body and all("lora_B" in n for n in body)
    trainable = [n for n, p in forecaster.model_.named_parameters() if p.requires_grad]
    assert any("in_proj.lora_A" in n for n in trainable)
    assert not any("body" in n and "lora_" not in n for n in trainable), (
        "the encoder's own weights must stay frozen under LoRA"
    )
