"""The Chronos and Chronos-Bolt backbones: pricetune's contract kit, the
weights they load from a local checkpoint (compared with the checkpoint
file's tensors), what they compute (against a reference built from those
tensors), and the errors for checkpoints that do not fit."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from pricetune.testing import check_backbone, check_strategy
from safetensors.torch import load_file, save_file

from pricetune_tstransformers.backbones import ChronosBackbone, ChronosBoltBackbone

# the input_patch_size of conftest.py's chronos_bolt_dir
BOLT_PATCH = 4
Q_WEIGHT = "encoder.block.{}.layer.0.SelfAttention.q.weight"
BIAS = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"
EMBEDDING_KEYS = [
    f"{layer}.{kind}"
    for layer in ("hidden_layer", "output_layer", "residual_layer")
    for kind in ("weight", "bias")
]


def _file(path) -> dict:
    return load_file(path / "model.safetensors")


def _encoder(path):
    """The checkpoint's T5 encoder, loaded on its own."""
    from transformers import T5EncoderModel

    return T5EncoderModel.from_pretrained(path, local_files_only=True).eval()


def _copy_checkpoint(source, target, tensors):
    """A checkpoint directory with ``source``'s config and ``tensors``."""
    target.mkdir(exist_ok=True)
    shutil.copy(source / "config.json", target / "config.json")
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


def _series(length=48):
    rng = np.random.default_rng(0)
    values = 60 + np.cumsum(rng.normal(0, 1, length))
    return pd.Series(values, index=pd.period_range("2000-01", periods=length, freq="M"))


# --------------------------------------------------------------------------
# chronos
# --------------------------------------------------------------------------
def test_chronos_contract(chronos_dir):
    report = check_backbone("chronos", {"path": str(chronos_dir)})
    assert report.cls is ChronosBackbone


def test_chronos_loads_the_checkpoints_encoder(chronos_dir):
    saved = _file(chronos_dir)
    backbone = ChronosBackbone(patch_length=4, n_patches=3, path=chronos_dir).eval()
    assert backbone.hidden_size == 16
    # a new patch embedding: Chronos's token embedding reads bin ids
    assert isinstance(backbone.embedding, torch.nn.Linear)
    assert backbone.embedding.weight.shape == (16, 4)
    for layer in (0, 1):
        torch.testing.assert_close(
            backbone.body.encoder.block[layer].layer[0].SelfAttention.q.weight,
            saved[Q_WEIGHT.format(layer)],
        )
    torch.testing.assert_close(
        backbone.body.encoder.block[0]
        .layer[0]
        .SelfAttention.relative_attention_bias.weight,
        saved[BIAS],
    )
    patches = torch.randn(2, 7, 4)  # relative positions: any number of patches
    with torch.no_grad():
        output = backbone(patches)
        expected = _encoder(chronos_dir)(
            inputs_embeds=backbone.embedding(patches)
        ).last_hidden_state
    assert output.shape == (2, 7, 16)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, expected)


def test_chronos_random_init_and_cut(chronos_dir):
    saved = _file(chronos_dir)
    random = ChronosBackbone(
        patch_length=4, n_patches=3, path=chronos_dir, pretrained=False
    )
    weight = random.body.encoder.block[1].layer[0].SelfAttention.q.weight
    assert weight.shape == saved[Q_WEIGHT.format(1)].shape
    assert not torch.equal(weight, saved[Q_WEIGHT.format(1)])
    cut = ChronosBackbone(patch_length=4, n_patches=3, path=chronos_dir, n_layers=1)
    assert len(cut.body.encoder.block) == 1
    torch.testing.assert_close(
        cut.body.encoder.block[0].layer[0].SelfAttention.q.weight,
        saved[Q_WEIGHT.format(0)],
    )
    assert cut(torch.randn(2, 3, 4)).shape == (2, 3, 16)


def test_chronos_errors(chronos_dir, chronos_bolt_dir, timesfm_dir, tmp_path):
    with pytest.raises(ValueError, match=r"needs backbone_kwargs=\{'path'"):
        ChronosBackbone(patch_length=4, n_patches=3)
    with pytest.raises(FileNotFoundError, match="never downloads"):
        ChronosBackbone(patch_length=4, n_patches=3, path=tmp_path)
    with pytest.raises(
        ValueError,
        match=r"is a Chronos-Bolt checkpoint \(ChronosBoltModelForForecasting\); "
        "use backbone 'chronos-bolt'",
    ):
        ChronosBackbone(patch_length=4, n_patches=3, path=chronos_bolt_dir)
    with pytest.raises(ValueError, match="is not a Chronos checkpoint"):
        ChronosBackbone(patch_length=4, n_patches=3, path=timesfm_dir)
    with pytest.raises(ValueError, match="n_layers must be between 1 and 2, got 3"):
        ChronosBackbone(patch_length=4, n_patches=3, path=chronos_dir, n_layers=3)
    with pytest.raises(TypeError):
        ChronosBackbone(patch_length=4, n_patches=3, path=chronos_dir, d_model=8)


# --------------------------------------------------------------------------
# chronos-bolt
# --------------------------------------------------------------------------
def test_chronos_bolt_contract(chronos_bolt_dir):
    report = check_backbone("chronos-bolt", {"path": str(chronos_bolt_dir)})
    assert report.cls is ChronosBoltBackbone


def test_chronos_bolt_loads_the_embedding_and_encoder(chronos_bolt_dir):
    saved = _file(chronos_bolt_dir)
    backbone = ChronosBoltBackbone(
        patch_length=BOLT_PATCH, n_patches=3, path=chronos_bolt_dir
    ).eval()
    assert backbone.hidden_size == 16
    assert backbone.use_reg_token
    state = backbone.embedding.state_dict()
    assert sorted(state) == sorted(EMBEDDING_KEYS)
    for key in EMBEDDING_KEYS:
        torch.testing.assert_close(state[key], saved[f"input_patch_embedding.{key}"])
    assert backbone.embedding.hidden_layer.weight.shape == (32, 2 * BOLT_PATCH)
    torch.testing.assert_close(
        backbone.body.encoder.block[1].layer[0].SelfAttention.q.weight,
        saved[Q_WEIGHT.format(1)],
    )
    torch.testing.assert_close(
        backbone.body.get_input_embeddings().weight, saved["shared.weight"]
    )


def _bolt_reference(path, patches):
    """What Chronos-Bolt's encoder gives for patches without missing values,
    from the checkpoint file's tensors: the residual block on [patch, mask of
    ones] (relu), the [REG] token appended, the T5 encoder; the patches'
    states."""
    saved = _file(path)

    def linear(name, x):
        prefix = f"input_patch_embedding.{name}"
        return x @ saved[f"{prefix}.weight"].T + saved[f"{prefix}.bias"]

    inputs = torch.cat([patches, torch.ones_like(patches)], dim=-1)
    embedded = linear("output_layer", torch.relu(linear("hidden_layer", inputs)))
    embedded = embedded + linear("residual_layer", inputs)
    reg = saved["shared.weight"][1].expand(len(patches), 1, -1)
    with torch.no_grad():
        hidden = _encoder(path)(inputs_embeds=torch.cat([embedded, reg], dim=1))
    return hidden.last_hidden_state[:, :-1]


def test_chronos_bolt_computes_what_chronos_bolt_does(chronos_bolt_dir):
    backbone = ChronosBoltBackbone(
        patch_length=BOLT_PATCH, n_patches=5, path=chronos_bolt_dir
    ).eval()
    patches = torch.randn(3, 5, BOLT_PATCH)
    with torch.no_grad():
        output = backbone(patches)
    assert output.shape == (3, 5, 16)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, _bolt_reference(chronos_bolt_dir, patches))
    # the [REG] token is read: the patches' states depend on it
    backbone.use_reg_token = False
    with torch.no_grad():
        without = backbone(patches)
    assert without.shape == (3, 5, 16)
    assert not torch.allclose(without, output, atol=1e-4)


def test_chronos_bolt_random_init_and_cut(chronos_bolt_dir):
    saved = _file(chronos_bolt_dir)
    random = ChronosBoltBackbone(
        patch_length=BOLT_PATCH, n_patches=3, path=chronos_bolt_dir, pretrained=False
    )
    weight = random.embedding.hidden_layer.weight
    assert weight.shape == saved["input_patch_embedding.hidden_layer.weight"].shape
    assert not torch.equal(weight, saved["input_patch_embedding.hidden_layer.weight"])
    assert not torch.equal(
        random.body.encoder.block[0].layer[0].SelfAttention.q.weight,
        saved[Q_WEIGHT.format(0)],
    )
    cut = ChronosBoltBackbone(
        patch_length=BOLT_PATCH, n_patches=3, path=chronos_bolt_dir, n_layers=1
    )
    assert len(cut.body.encoder.block) == 1
    torch.testing.assert_close(
        cut.body.encoder.block[0].layer[0].SelfAttention.q.weight,
        saved[Q_WEIGHT.format(0)],
    )
    assert cut(torch.randn(2, 3, BOLT_PATCH)).shape == (2, 3, 16)


def test_chronos_bolt_reads_pytorch_bin_and_bfloat16(chronos_bolt_dir, tmp_path):
    saved = _file(chronos_bolt_dir)
    shutil.copy(chronos_bolt_dir / "config.json", tmp_path / "config.json")
    torch.save(
        {key: value.to(torch.bfloat16) for key, value in saved.items()},
        tmp_path / "pytorch_model.bin",
    )
    backbone = ChronosBoltBackbone(patch_length=BOLT_PATCH, n_patches=3, path=tmp_path)
    assert {p.dtype for p in backbone.parameters()} == {torch.float32}
    torch.testing.assert_close(
        backbone.embedding.residual_layer.weight,
        saved["input_patch_embedding.residual_layer.weight"].to(torch.bfloat16).float(),
    )
    assert backbone(torch.randn(2, 3, BOLT_PATCH)).dtype == torch.float32


def test_chronos_bolt_errors(chronos_bolt_dir, chronos_dir, tmp_path):
    with pytest.raises(ValueError) as error:
        ChronosBoltBackbone(patch_length=8, n_patches=3, path=chronos_bolt_dir)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        f"backbone 'chronos-bolt': the checkpoint at {chronos_bolt_dir} reads "
        "patches of 4 values; set the forecaster's patch_length=4 (and "
        "patch_stride=4), got patch_length=8"
    )
    with pytest.raises(ValueError, match=r"needs backbone_kwargs=\{'path'"):
        ChronosBoltBackbone(patch_length=4, n_patches=3)
    with pytest.raises(
        ValueError,
        match=r"is an original Chronos checkpoint \(T5ForConditionalGeneration\); "
        "use backbone 'chronos'",
    ):
        ChronosBoltBackbone(patch_length=4, n_patches=3, path=chronos_dir)
    # a Chronos-2 checkpoint (another architecture) is refused
    other = tmp_path / "chronos2"
    other.mkdir()
    config = json.loads((chronos_bolt_dir / "config.json").read_text())
    config["architectures"] = ["Chronos2Model"]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="is a Chronos2Model, not a Chronos"):
        ChronosBoltBackbone(patch_length=4, n_patches=3, path=other)
    # the weights lack the input residual block
    tensors = {
        key: value
        for key, value in _file(chronos_bolt_dir).items()
        if not key.startswith("input_patch_embedding.residual_layer")
    }
    broken = _copy_checkpoint(chronos_bolt_dir, tmp_path / "broken", tensors)
    with pytest.raises(
        ValueError,
        match=r"lacks input_patch_embedding weights \['residual_layer.bias', "
        r"'residual_layer.weight'\]",
    ):
        ChronosBoltBackbone(patch_length=4, n_patches=3, path=broken)
    # pretrained=False needs no weights of the residual block
    ChronosBoltBackbone(patch_length=4, n_patches=3, path=broken, pretrained=False)
    with pytest.raises(TypeError):
        ChronosBoltBackbone(patch_length=4, n_patches=3, path=chronos_bolt_dir, r=2)


# --------------------------------------------------------------------------
# strategies and the forecaster
# --------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["frozen", "layernorm", "lora"])
def test_builtin_strategies_adapt_chronos(strategy, chronos_dir, chronos_bolt_dir):
    kwargs = {"r": 2} if strategy == "lora" else {}
    for backbone, path in [
        ("chronos", chronos_dir),
        ("chronos-bolt", chronos_bolt_dir),
    ]:
        check_strategy(
            strategy,
            kwargs,
            backbone=backbone,
            backbone_kwargs={"path": str(path)},
            frozen=["backbone.body"] if strategy == "frozen" else [],
            trainable=["backbone.embedding", "head"],
            forecaster=False,
        )


@pytest.mark.parametrize(
    ("backbone", "strategy"), [("chronos-bolt", "lora"), ("chronos", "frozen")]
)
def test_forecaster_fits_and_predicts(
    backbone, strategy, chronos_dir, chronos_bolt_dir
):
    from pricetune import FineTunedPriceForecaster

    path = chronos_bolt_dir if backbone == "chronos-bolt" else chronos_dir
    forecaster = FineTunedPriceForecaster(
        backbone=backbone,
        backbone_kwargs={"path": str(path)},
        head="linear",
        strategy=strategy,
        strategy_kwargs={"r": 2} if strategy == "lora" else {},
        context_length=16,
        patch_length=BOLT_PATCH,
        patch_stride=BOLT_PATCH,
        max_epochs=1,
        batch_size=8,
        n_ensemble=1,  # one network: its backbone is read below
        random_state=0,
        verbose=0,
    ).fit(_series(), fh=[1, 2, 3])
    prediction = forecaster.predict()
    assert len(prediction) == 3
    assert np.isfinite(prediction.to_numpy()).all()
    # the pretrained weights stayed as the checkpoint has them
    body = forecaster.model_.backbone.body
    q = [
        parameter
        for name, parameter in body.named_parameters()
        if name.endswith("block.1.layer.0.SelfAttention.q.base_layer.weight")
        or name.endswith("block.1.layer.0.SelfAttention.q.weight")
    ]
    assert len(q) == 1
    torch.testing.assert_close(q[0].cpu(), _file(path)[Q_WEIGHT.format(1)])
    if strategy == "lora":
        assert any("lora_A" in name for name, _ in body.named_parameters())
