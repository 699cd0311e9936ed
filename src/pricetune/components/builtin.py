"""The built-in components, registered through the public hooks."""

from __future__ import annotations

from pricetune.hookspecs import PLUGIN_API_VERSION, hookimpl

# the built-ins target the plugin API of the core they ship with
PRICETUNE_PLUGIN_API = PLUGIN_API_VERSION


@hookimpl
def register_backbones(registry):
    from pricetune.components.fracast import FracastBackbone
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
    registry.add("fracast", FracastBackbone)


@hookimpl
def register_heads(registry):
    from pricetune.components.fracast import FracastHead
    from pricetune.components.heads import (
        GRUHead,
        LinearHead,
        LSTMHead,
        MLPHead,
        QuantileHead,
        StudentTHead,
    )

    registry.add("linear", LinearHead)
    registry.add("quantile", QuantileHead)
    registry.add("mlp", MLPHead)
    registry.add("lstm", LSTMHead)
    registry.add("gru", GRUHead)
    registry.add("student_t", StudentTHead)
    registry.add("fracast", FracastHead)


@hookimpl
def register_strategies(registry):
    from pricetune.components.peft_strategies import IA3, AdaLoRA, LoRA, PrefixTuning
    from pricetune.components.strategies import (
        BottleneckAdapters,
        FrozenBackbone,
        FullFineTuning,
        GradualUnfreezing,
        LayerNormOnly,
    )

    registry.add("full", FullFineTuning)
    registry.add("frozen", FrozenBackbone)
    registry.add("layernorm", LayerNormOnly)
    registry.add("lora", LoRA)
    registry.add("adalora", AdaLoRA)
    registry.add("ia3", IA3)
    registry.add("prefix", PrefixTuning)
    registry.add("adapter", BottleneckAdapters)
    registry.add("gradual", GradualUnfreezing)


@hookimpl
def register_augmentations(registry):
    from pricetune.components.augmentations import (
        Jitter,
        MagnitudeWarp,
        Scaling,
        WindowSlice,
    )

    registry.add("jitter", Jitter)
    registry.add("scaling", Scaling)
    registry.add("magnitude_warp", MagnitudeWarp)
    registry.add("window_slice", WindowSlice)
