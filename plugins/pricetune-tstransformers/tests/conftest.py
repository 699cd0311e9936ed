"""Tiny randomly initialised checkpoints saved to temporary directories:
no weights can be downloaded in tests."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
