"""The public Hugging Face helpers of pricetune.components.huggingface, which
the built-in ``hf``/``minilm`` backbones and plugins share."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from pricetune.components import huggingface, language_model
from pricetune.components.contract import Backbone
from pricetune.components.huggingface import (
    PRETRAINED_CACHE_SIZE,
    checkpoint_directory,
    clear_pretrained_cache,
    cut_layers,
    load_model,
    max_positions,
    pretrained_body,
    quiet_transformers,
)


def test_a_directory_without_config_json_is_refused(tmp_path, tiny_gpt2_dir):
    with pytest.raises(FileNotFoundError) as error:
        checkpoint_directory(tmp_path / "gpt2", "my-backbone")
    message = str(error.value)
    assert "backbone 'my-backbone'" in message
    assert "not a local Hugging Face checkpoint directory (no config.json)" in message
    assert "pricetune never downloads weights" in message
    assert checkpoint_directory(str(tiny_gpt2_dir), "x") == tiny_gpt2_dir


def test_checkpoint_directory_expands_the_home_directory(monkeypatch, tiny_gpt2_dir):
    monkeypatch.setenv("HOME", str(tiny_gpt2_dir.parent))
    path = checkpoint_directory(f"~/{tiny_gpt2_dir.name}", "x")
    assert path == tiny_gpt2_dir


def test_cut_layers_keeps_the_first_layers_within_bounds(tiny_gpt2_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_gpt2_dir, local_files_only=True)
    cut_layers(config, "num_hidden_layers", None, "x")
    assert config.n_layer == 2
    for bad in (0, 3, -1, True):
        with pytest.raises(
            ValueError, match=r"backbone 'x': n_layers must be between 1 and 2, got"
        ):
            cut_layers(config, "num_hidden_layers", bad, "x")
    assert config.n_layer == 2  # unchanged by the refusals
    cut_layers(config, "num_hidden_layers", 1, "x")
    assert config.n_layer == 1  # GPT-2's n_layer behind num_hidden_layers


def test_load_model_reads_or_builds(tiny_gpt2_dir):
    from transformers import AutoConfig, AutoModel, GPT2Model

    saved = GPT2Model.from_pretrained(tiny_gpt2_dir, local_files_only=True)
    config = AutoConfig.from_pretrained(tiny_gpt2_dir, local_files_only=True)
    cut_layers(config, "num_hidden_layers", 1, "x")
    for model_class in (GPT2Model, AutoModel):
        loaded = load_model(model_class, config, tiny_gpt2_dir, pretrained=True)
        assert isinstance(loaded, GPT2Model) and len(loaded.h) == 1
        assert torch.equal(
            loaded.h[0].attn.c_attn.weight, saved.h[0].attn.c_attn.weight
        )
        torch.manual_seed(0)
        random = load_model(model_class, config, tiny_gpt2_dir, pretrained=False)
        assert not torch.equal(
            random.h[0].attn.c_attn.weight, saved.h[0].attn.c_attn.weight
        )
        torch.manual_seed(0)
        again = load_model(model_class, config, None, pretrained=True)
        # random weights from torch's generator: a seed repeats them
        assert torch.equal(
            again.h[0].attn.c_attn.weight, random.h[0].attn.c_attn.weight
        )


def test_max_positions():
    from transformers import BertConfig, GPT2Config, PatchTSTConfig

    assert max_positions(GPT2Config(n_positions=64)) == 64
    assert max_positions(BertConfig(max_position_embeddings=128)) == 128
    assert max_positions(PatchTSTConfig()) is None


def test_quiet_transformers_restores_the_verbosity():
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    try:
        hf_logging.set_verbosity_info()
        hf_logging.enable_progress_bar()
        with quiet_transformers():
            assert hf_logging.get_verbosity() == hf_logging.ERROR
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.get_verbosity() == hf_logging.INFO
        assert hf_logging.is_progress_bar_enabled()
        # also when the block raises; a disabled bar stays disabled
        hf_logging.set_verbosity_warning()
        hf_logging.disable_progress_bar()
        with pytest.raises(RuntimeError), quiet_transformers():
            raise RuntimeError
        assert hf_logging.get_verbosity() == hf_logging.WARNING
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()
        else:
            hf_logging.disable_progress_bar()


def test_language_model_keeps_the_names_it_had():
    assert language_model.pretrained_body is pretrained_body
    assert language_model.clear_pretrained_cache is clear_pretrained_cache
    assert language_model.PRETRAINED_CACHE_SIZE == PRETRAINED_CACHE_SIZE == 2


def test_the_hf_backbone_names_itself_in_errors(tmp_path, tiny_gpt2_dir):
    from pricetune.components.language_model import HuggingFaceBackbone

    with pytest.raises(FileNotFoundError, match="backbone 'hf': .* never downloads"):
        HuggingFaceBackbone(patch_length=4, n_patches=3, path=tmp_path)
    with pytest.raises(ValueError, match="backbone 'hf': n_layers must be between"):
        HuggingFaceBackbone(patch_length=4, n_patches=3, path=tiny_gpt2_dir, n_layers=3)
    with pytest.raises(ValueError, match="65 patches exceed the 64 positions"):
        HuggingFaceBackbone(patch_length=4, n_patches=65, path=tiny_gpt2_dir)


def test_the_module_docstring_example_builds_a_working_backbone(tiny_gpt2_dir):
    namespace = {}
    example = huggingface.__doc__.split("::", 1)[1].split("\n\n:func:")[0]
    code = "\n".join(line[4:] for line in example.splitlines())
    exec(code, namespace)  # noqa: S102
    backbone_class = namespace["MyTransformerBackbone"]
    assert issubclass(backbone_class, Backbone)
    backbone = backbone_class(
        patch_length=4, n_patches=3, path=str(tiny_gpt2_dir), n_layers=1
    )
    assert isinstance(backbone.embedding, nn.Linear)
    assert backbone(torch.randn(2, 3, 4)).shape == (2, 3, backbone.hidden_size)
    with pytest.raises(ValueError, match="exceed"):
        backbone_class(patch_length=4, n_patches=100, path=tiny_gpt2_dir)


def test_the_module_imports_without_torch():
    code = (
        "import sys, pricetune.components.huggingface; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
