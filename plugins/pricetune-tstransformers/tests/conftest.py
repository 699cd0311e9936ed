"""Tiny randomly initialised checkpoints saved to temporary directories:
no weights can be downloaded in tests."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def registered():
    """The backbones registered by name: through the entry point when the
    distribution is installed, else in-process (the package on PYTHONPATH)."""
    from pricetune.plugins import get_registry, register_plugin

    from pricetune_tstransformers import plugin

    if "patchtst" not in get_registry("backbone"):
        register_plugin(plugin, name="tstransformers-under-test")


def _save(model, path):
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def patchtst_dir(tmp_path_factory):
    from transformers import PatchTSTConfig, PatchTSTForPrediction

    torch.manual_seed(0)
    config = PatchTSTConfig(
        context_length=12,
        patch_length=4,
        patch_stride=4,
        d_model=16,
        num_attention_heads=2,
        num_hidden_layers=2,
        ffn_dim=32,
        prediction_length=3,
    )
    return _save(PatchTSTForPrediction(config), tmp_path_factory.mktemp("patchtst"))


@pytest.fixture(scope="session")
def patchtsmixer_dir(tmp_path_factory):
    from transformers import PatchTSMixerConfig, PatchTSMixerModel

    torch.manual_seed(0)
    # 2 patches: what the contract kit's forecaster cuts (context 6, patch 4,
    # stride 2)
    config = PatchTSMixerConfig(
        context_length=6, patch_length=4, patch_stride=2, d_model=8, num_layers=2
    )
    return _save(PatchTSMixerModel(config), tmp_path_factory.mktemp("patchtsmixer"))


@pytest.fixture(scope="session")
def timesfm_dir(tmp_path_factory):
    from transformers import TimesFmConfig, TimesFmModelForPrediction

    torch.manual_seed(0)
    config = TimesFmConfig(
        patch_length=4,
        context_length=32,
        horizon_length=8,
        hidden_size=16,
        intermediate_size=16,
        head_dim=8,
        num_attention_heads=2,
        num_hidden_layers=2,
    )
    return _save(TimesFmModelForPrediction(config), tmp_path_factory.mktemp("timesfm"))


# Chronos and Chronos-Bolt are T5s with a chronos_config in config.json. The
# tiny ones read patches of 4 values, what pricetune.testing's checks cut.
_TINY_T5 = {
    "d_model": 16,
    "d_kv": 8,
    "d_ff": 32,
    "num_layers": 2,
    "num_decoder_layers": 1,
    "num_heads": 2,
    "dense_act_fn": "relu",
    "feed_forward_proj": "relu",
    "dropout_rate": 0.0,
}


@pytest.fixture(scope="session")
def chronos_dir(tmp_path_factory):
    """An original Chronos checkpoint: a T5ForConditionalGeneration over
    token ids, as ``amazon/chronos-t5-*``."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=32,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        chronos_config={
            "tokenizer_class": "MeanScaleUniformBins",
            "tokenizer_kwargs": {"low_limit": -15.0, "high_limit": 15.0},
            "n_tokens": 32,
            "n_special_tokens": 2,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "use_eos_token": True,
            "model_type": "seq2seq",
            "context_length": 64,
            "prediction_length": 8,
            "num_samples": 20,
            "temperature": 1.0,
            "top_k": 50,
            "top_p": 1.0,
        },
        **_TINY_T5,
    )
    model = T5ForConditionalGeneration(config)
    return _save(model, tmp_path_factory.mktemp("chronos"))


BOLT_PATCH = 4


@pytest.fixture(scope="session")
def chronos_bolt_dir(tmp_path_factory):
    """A Chronos-Bolt checkpoint written as ``chronos-forecasting`` writes
    ``ChronosBoltModelForForecasting`` (that package is not needed): the T5
    encoder-decoder's weights, with a 2-token vocabulary (decoder start and
    [REG]), plus the input and output residual blocks under their real names;
    no lm_head."""
    import json

    from safetensors.torch import save_file
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    quantiles = [0.1, 0.5, 0.9]
    chronos_config = {
        "context_length": 64,
        "prediction_length": 8,
        "input_patch_size": BOLT_PATCH,
        "input_patch_stride": BOLT_PATCH,
        "quantiles": quantiles,
        "use_reg_token": True,
    }
    config = T5Config(
        vocab_size=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        reg_token_id=1,
        chronos_config=chronos_config,
        chronos_pipeline_class="ChronosBoltPipeline",
        **_TINY_T5,
    )
    tensors = {
        key: value
        for key, value in T5ForConditionalGeneration(config).state_dict().items()
        # tied to shared.weight, so save_pretrained leaves them out; no lm_head
        if key
        not in (
            "lm_head.weight",
            "encoder.embed_tokens.weight",
            "decoder.embed_tokens.weight",
        )
    }
    d_model, d_ff = config.d_model, config.d_ff
    out = len(quantiles) * chronos_config["prediction_length"]
    for block, sizes in [
        ("input_patch_embedding", (2 * BOLT_PATCH, d_ff, d_model)),
        ("output_patch_embedding", (d_model, d_ff, out)),
    ]:
        in_dim, hidden, out_dim = sizes
        for layer, shape in [
            ("hidden_layer", (hidden, in_dim)),
            ("output_layer", (out_dim, hidden)),
            ("residual_layer", (out_dim, in_dim)),
        ]:
            tensors[f"{block}.{layer}.weight"] = torch.randn(shape) * 0.3
            tensors[f"{block}.{layer}.bias"] = torch.randn(shape[0]) * 0.1
    path = tmp_path_factory.mktemp("chronos-bolt")
    tensors = {key: value.clone().contiguous() for key, value in tensors.items()}
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    saved = config.to_dict()
    saved["architectures"] = ["ChronosBoltModelForForecasting"]
    (path / "config.json").write_text(json.dumps(saved, indent=2))
    return path
