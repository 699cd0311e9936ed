"""The built-in components, registered through the public hooks."""

from __future__ import annotations

from pricetune.hookspecs import hookimpl


@hookimpl
def register_backbones(registry):
    from pricetune.components.language_model import HuggingFaceBackbone, MiniLMBackbone
    from pricetune.components.simple_backbones import (
        GRUBackbone,
        LSTMBackbone,
        NoBackbone,
    )

    registry.add("minilm", MiniLMBackbone)
    registry.add("hf", HuggingFaceBackbone)
    registry.add("lstm", LSTMBackbone)
    registry.add("gru", GRUBackbone)
    registry.add("none", NoBackbone)


@hookimpl
def register_heads(registry):
    from pricetune.components.heads import LinearHead, QuantileHead

    registry.add("linear", LinearHead)
    registry.add("quantile", QuantileHead)


@hookimpl
def register_strategies(registry):
    from pricetune.components.strategies import (
        FrozenBackbone,
        FullFineTuning,
        LayerNormOnly,
        LoRA,
    )

    registry.add("full", FullFineTuning)
    registry.add("frozen", FrozenBackbone)
    registry.add("layernorm", LayerNormOnly)
    registry.add("lora", LoRA)
