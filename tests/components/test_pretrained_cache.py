"""Pretrained bodies are read from disk once per process and copied for
each fit, without changing any fit's random draws: the cache of
pricetune.components.huggingface, through ``pretrained_body`` and through
the minilm backbone."""

from __future__ import annotations

import numpy as np
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.components import huggingface
from pricetune.components.huggingface import clear_pretrained_cache, pretrained_body
from pricetune.components.language_model import MiniLMBackbone


def count_disk_reads(monkeypatch):
    from transformers import AutoModel

    reads = []
    original = AutoModel.from_pretrained

    def spy(*args, **kwargs):
        reads.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModel, "from_pretrained", spy)
    return reads


def pretrained_weights(backbone) -> dict:
    return {
        name: weight
        for name, weight in backbone.body.named_parameters()
        if "encoder.layer" in name
    }


def test_pretrained_body_copies_a_kept_checkpoint(tiny_gpt2_dir, monkeypatch):
    from transformers import AutoConfig, AutoModel

    reads = []
    original = AutoModel.from_pretrained

    def spy(*args, **kwargs):
        reads.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModel, "from_pretrained", spy)
    config = AutoConfig.from_pretrained(tiny_gpt2_dir, local_files_only=True)
    clear_pretrained_cache()
    state = torch.random.get_rng_state()
    first = pretrained_body(tiny_gpt2_dir, config)
    assert torch.equal(torch.random.get_rng_state(), state)  # no random draws
    second = pretrained_body(tiny_gpt2_dir, config)
    assert len(reads) == 1
    weight, other = first.h[0].attn.c_attn.weight, second.h[0].attn.c_attn.weight
    assert torch.equal(weight, other) and weight.data_ptr() != other.data_ptr()
    clear_pretrained_cache()
    pretrained_body(tiny_gpt2_dir, config)
    assert len(reads) == 2
    clear_pretrained_cache()


def test_a_checkpoint_is_read_once_and_each_backbone_owns_its_copy(monkeypatch):
    clear_pretrained_cache()
    reads = count_disk_reads(monkeypatch)
    first = MiniLMBackbone(patch_length=4, n_patches=5, n_layers=1)
    second = MiniLMBackbone(patch_length=4, n_patches=5, n_layers=1)
    assert len(reads) == 1
    pretrained = pretrained_weights(first)
    assert pretrained  # the transformer layers, not the new token stand-in
    for name, weight in pretrained_weights(second).items():
        assert torch.equal(weight, pretrained[name])
        assert weight.data_ptr() != pretrained[name].data_ptr()
    with torch.no_grad():
        for weight in pretrained.values():
            weight.add_(1.0)
    third = MiniLMBackbone(patch_length=4, n_patches=5, n_layers=1)
    for name, weight in pretrained_weights(third).items():
        # the kept copy was not touched by a fit's changes
        assert torch.equal(weight, pretrained_weights(second)[name])
    # another cut of the same checkpoint is another body
    MiniLMBackbone(patch_length=4, n_patches=5, n_layers=2)
    assert len(reads) == 2


def test_the_cache_holds_a_bounded_number_of_bodies(monkeypatch):
    clear_pretrained_cache()
    monkeypatch.setattr(huggingface, "PRETRAINED_CACHE_SIZE", 1)
    reads = count_disk_reads(monkeypatch)
    for n_layers in (1, 2, 1):
        MiniLMBackbone(patch_length=4, n_patches=5, n_layers=n_layers)
    assert len(reads) == 3
    assert len(huggingface._PRETRAINED) == 1


def test_fits_are_the_same_whether_the_checkpoint_was_read_or_copied(
    brent_monthly,
):
    params = dict(
        backbone="minilm", backbone_kwargs={"n_layers": 1}, strategy="lora",
        context_length=16, max_epochs=1, random_state=3, verbose=0,
    )  # fmt: skip
    y = brent_monthly[-100:]
    clear_pretrained_cache()
    cold = FineTunedPriceForecaster(**params).fit(y, fh=[1, 2])
    warm = FineTunedPriceForecaster(**params).fit(y, fh=[1, 2])
    np.testing.assert_array_equal(cold.predict(), warm.predict())
