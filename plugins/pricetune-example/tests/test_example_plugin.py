"""Tests for the example plugin's components.

They assume ``pricetune_example`` is importable (installed, or on
``PYTHONPATH``); the entry-point wiring is tested in pricetune's own suite.
"""

from __future__ import annotations

import pytest
import torch
from pricetune.components.contract import Backbone, Head, Strategy
from pricetune.nn.model import PatchForecastModel, count_patches
from pricetune.registry import ComponentRegistry
from torch import nn

from pricetune_example import plugin
from pricetune_example.components import (
    ExampleHeadOnly,
    ExampleMeanPoolHead,
    ExampleMLPBackbone,
)

CONTEXT, PATCH, STRIDE, HORIZON = 16, 4, 2, 3
N_PATCHES = count_patches(CONTEXT, PATCH, STRIDE)


def build_model(hidden_size: int = 8) -> PatchForecastModel:
    torch.manual_seed(0)
    backbone = ExampleMLPBackbone(
        patch_length=PATCH, n_patches=N_PATCHES, hidden_size=hidden_size
    )
    head = ExampleMeanPoolHead(
        hidden_size=backbone.hidden_size, n_patches=N_PATCHES, horizon=HORIZON
    )
    return PatchForecastModel(
        backbone, head, context_length=CONTEXT, patch_length=PATCH, patch_stride=STRIDE
    )


def test_hooks_register_one_component_each():
    expected = {
        "backbone": ("register_backbones", "example-mlp", ExampleMLPBackbone),
        "head": ("register_heads", "example-mean-pool", ExampleMeanPoolHead),
        "strategy": ("register_strategies", "example-head-only", ExampleHeadOnly),
    }
    for kind, (hook, name, cls) in expected.items():
        registry = ComponentRegistry(kind)
        getattr(plugin, hook)(registry)
        assert registry.names() == [name]
        assert registry.get(name) is cls


def test_backbone_shapes_and_contract():
    backbone = ExampleMLPBackbone(
        patch_length=PATCH, n_patches=N_PATCHES, hidden_size=8
    )
    assert isinstance(backbone, Backbone)
    assert backbone.hidden_size == 8
    assert isinstance(backbone.embedding, nn.Linear)
    assert (backbone.embedding.in_features, backbone.embedding.out_features) == (
        PATCH,
        8,
    )
    layers = [type(m) for m in backbone.body]
    assert layers == [nn.GELU, nn.Linear, nn.LayerNorm]
    patches = torch.randn(5, N_PATCHES, PATCH)
    hidden = backbone(patches)
    assert hidden.shape == (5, N_PATCHES, 8)
    assert hidden.dtype == torch.float32
    # patches are transformed independently: changing one leaves the others
    changed = patches.clone()
    changed[:, 0] += 1.0
    other = backbone(changed)
    assert torch.equal(other[:, 1:], hidden[:, 1:])
    assert not torch.allclose(other[:, 0], hidden[:, 0])


def test_backbone_default_width_and_unknown_argument():
    assert ExampleMLPBackbone(patch_length=PATCH, n_patches=N_PATCHES).hidden_size == 32
    with pytest.raises(TypeError):
        ExampleMLPBackbone(patch_length=PATCH, n_patches=N_PATCHES, hiden_size=8)


def test_head_shapes_loss_and_mean_pooling():
    head = ExampleMeanPoolHead(hidden_size=8, n_patches=N_PATCHES, horizon=HORIZON)
    assert isinstance(head, Head)
    assert head.n_outputs == 1 and head.quantiles is None
    assert ExampleMeanPoolHead.probabilistic is False
    hidden = torch.randn(5, N_PATCHES, 8)
    prediction = head(hidden)
    assert prediction.shape == (5, HORIZON, 1)
    # mean pooling: the order of the patches does not matter
    shuffled = hidden[:, torch.randperm(N_PATCHES)]
    torch.testing.assert_close(head(shuffled), prediction)
    target = torch.randn(5, HORIZON)
    loss = head.loss(prediction, target)
    assert loss.ndim == 0
    torch.testing.assert_close(loss, ((prediction[..., 0] - target) ** 2).mean())
    assert float(head.loss(target.unsqueeze(-1), target)) == 0.0
    with pytest.raises(TypeError):
        ExampleMeanPoolHead(hidden_size=8, n_patches=N_PATCHES, horizon=3, dropout=0.1)


def test_assembled_model_output_shape():
    model = build_model()
    output = model(torch.randn(4, CONTEXT).cumsum(dim=1) + 50.0)
    assert output.shape == (4, HORIZON, 1)
    assert torch.isfinite(output).all()


def test_head_only_strategy_trains_only_the_head():
    model = build_model()
    strategy = ExampleHeadOnly()
    assert isinstance(strategy, Strategy)
    strategy.apply(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.projection.weight", "head.projection.bias"}

    # one optimiser step moves the head and nothing else
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimiser = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.1
    )
    context = torch.randn(8, CONTEXT).cumsum(dim=1) + 50.0
    loss = model.head.loss(model(context), torch.randn(8, HORIZON))
    loss.backward()
    optimiser.step()
    for name, parameter in model.named_parameters():
        moved = not torch.equal(parameter, before[name])
        assert moved == name.startswith("head."), name


def test_head_only_strategy_refuses_a_head_without_parameters():
    class NoParameterHead(Head):
        def forward(self, hidden):
            return hidden.mean(dim=(1, 2))[:, None, None].expand(-1, HORIZON, 1)

    model = build_model()
    model.head = NoParameterHead()
    with pytest.raises(ValueError, match="NoParameterHead"):
        ExampleHeadOnly().apply(model)


@pytest.mark.parametrize("strategy", ["frozen", "layernorm"])
def test_backbone_works_with_builtin_strategies(strategy):
    from pricetune.components.strategies import FrozenBackbone, LayerNormOnly

    model = build_model()
    {"frozen": FrozenBackbone, "layernorm": LayerNormOnly}[strategy]().apply(model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    expected = {
        "backbone.embedding.weight",
        "backbone.embedding.bias",
        "head.projection.weight",
        "head.projection.bias",
    }
    if strategy == "layernorm":
        expected |= {"backbone.body.norm.weight", "backbone.body.norm.bias"}
    assert trainable == expected
