"""PatchTST, PatchTSMixer and TimesFM against pricetune's contract kit, plus
what is particular to each: loading a local checkpoint's weights, and the
errors for checkpoints that do not fit the forecaster's patches (Chronos and
Chronos-Bolt: test_chronos.py)."""

from __future__ import annotations

import pytest
import torch
from pricetune.registry import ComponentRegistry
from pricetune.testing import check_backbone, check_strategy

from pricetune_tstransformers import plugin
from pricetune_tstransformers.backbones import (
    PatchTSMixerBackbone,
    PatchTSTBackbone,
    TimesFmBackbone,
)

TINY_PATCHTST = {"d_model": 16, "num_attention_heads": 2, "ffn_dim": 32}


def test_hook_registers_the_backbones():
    registry = ComponentRegistry("backbone")
    plugin.register_backbones(registry)
    assert registry.names() == [
        "chronos",
        "chronos-bolt",
        "patchtsmixer",
        "patchtst",
        "timesfm",
    ]
    assert plugin.PRICETUNE_PLUGIN_API == "1.0"


def test_patchtst_random_init_contract():
    report = check_backbone("patchtst", TINY_PATCHTST)
    assert report.cls is PatchTSTBackbone


def test_patchtst_checkpoint_contract_and_weights(patchtst_dir):
    from transformers import PatchTSTForPrediction

    check_backbone("patchtst", {"path": str(patchtst_dir)})
    saved = PatchTSTForPrediction.from_pretrained(patchtst_dir).model.encoder
    backbone = PatchTSTBackbone(patch_length=4, n_patches=3, path=patchtst_dir)
    assert backbone.hidden_size == 16
    torch.testing.assert_close(
        backbone.body.layers[1].self_attn.q_proj.weight,
        saved.layers[1].self_attn.q_proj.weight,
    )
    # same patch length: the patch embedding starts from the checkpoint's
    torch.testing.assert_close(
        backbone.embedding.weight, saved.embedder.input_embedding.weight
    )
    random = PatchTSTBackbone(
        patch_length=4, n_patches=3, path=patchtst_dir, pretrained=False
    )
    assert not torch.equal(
        random.body.layers[1].self_attn.q_proj.weight,
        saved.layers[1].self_attn.q_proj.weight,
    )
    # sin-cos positions are recomputed for another number of patches
    longer = PatchTSTBackbone(patch_length=4, n_patches=7, path=patchtst_dir)
    assert longer(torch.randn(2, 7, 4)).shape == (2, 7, 16)
    assert len(PatchTSTBackbone(patch_length=4, n_patches=3, path=patchtst_dir,
                                n_layers=1).body.layers) == 1  # fmt: skip


def test_patchtst_errors(tmp_path):
    with pytest.raises(TypeError, match=r"\['d_modle'\]: not PatchTSTConfig"):
        PatchTSTBackbone(patch_length=4, n_patches=3, d_modle=8)
    with pytest.raises(TypeError, match="set by the forecaster"):
        PatchTSTBackbone(patch_length=4, n_patches=3, context_length=8)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        PatchTSTBackbone(patch_length=4, n_patches=3, path=tmp_path)
    with pytest.raises(ValueError, match="n_layers must be between 1 and 2"):
        PatchTSTBackbone(patch_length=4, n_patches=3, n_layers=5)


def test_patchtsmixer_contract(patchtsmixer_dir):
    report = check_backbone("patchtsmixer", {"d_model": 16})
    assert report.cls is PatchTSMixerBackbone
    check_backbone("patchtsmixer", {"path": str(patchtsmixer_dir)}, n_patches=2)
    with pytest.raises(ValueError, match="mixes 2 patches, but the forecaster cuts 5"):
        PatchTSMixerBackbone(patch_length=4, n_patches=5, path=patchtsmixer_dir)


def test_timesfm_contract_and_weights(timesfm_dir):
    from transformers import TimesFmModelForPrediction

    report = check_backbone("timesfm", {"path": str(timesfm_dir), "freq": 1})
    assert report.cls is TimesFmBackbone
    saved = TimesFmModelForPrediction.from_pretrained(timesfm_dir).decoder
    backbone = TimesFmBackbone(patch_length=4, n_patches=3, path=timesfm_dir)
    torch.testing.assert_close(
        backbone.body.layers[0].self_attn.q_proj.weight,
        saved.layers[0].self_attn.q_proj.weight,
    )
    torch.testing.assert_close(
        backbone.embedding.block.input_layer.weight,
        saved.input_ff_layer.input_layer.weight,
    )


def test_timesfm_is_causal(timesfm_dir):
    backbone = TimesFmBackbone(patch_length=4, n_patches=5, path=timesfm_dir).eval()
    patches = torch.randn(2, 5, 4)
    changed = patches.clone()
    changed[:, -1] += 1.0
    with torch.no_grad():
        before, after = backbone(patches), backbone(changed)
    torch.testing.assert_close(before[:, :-1], after[:, :-1])
    assert not torch.allclose(before[:, -1], after[:, -1])


def test_timesfm_errors(timesfm_dir):
    with pytest.raises(ValueError, match="needs backbone_kwargs=\\{'path'"):
        TimesFmBackbone(patch_length=4, n_patches=3)
    with pytest.raises(ValueError, match="set the forecaster's patch_length=4"):
        TimesFmBackbone(patch_length=8, n_patches=3, path=timesfm_dir)
    with pytest.raises(ValueError, match="freq must be in 0..2"):
        TimesFmBackbone(patch_length=4, n_patches=3, path=timesfm_dir, freq=3)
    with pytest.raises(TypeError):
        TimesFmBackbone(patch_length=4, n_patches=3, path=timesfm_dir, hidden=8)


@pytest.mark.parametrize("strategy", ["frozen", "layernorm", "lora"])
def test_builtin_strategies_adapt_every_backbone(strategy, timesfm_dir):
    kwargs = {"r": 2} if strategy == "lora" else {}
    for backbone, backbone_kwargs in [
        ("patchtst", TINY_PATCHTST),
        ("patchtsmixer", {}),
        ("timesfm", {"path": str(timesfm_dir)}),
    ]:
        check_strategy(
            strategy,
            kwargs,
            backbone=backbone,
            backbone_kwargs=backbone_kwargs,
            # what the strategies say: the body's own weights stay frozen
            # (LayerNorms aside), the embedding and the head train
            frozen=["backbone.body"] if strategy == "frozen" else [],
            trainable=["backbone.embedding", "head"],
            forecaster=False,
        )
