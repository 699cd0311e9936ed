"""The strategies (pricetune.components.strategies and peft_strategies):
full, frozen, layernorm, lora, adalora, ia3, prefix and prompt tuning
(through peft), bottleneck adapters, gradual unfreezing, and discriminative
learning rates. For each: what trains (parameter counts), that gradients
reach nothing else, that frozen weights stay as shipped, and that it works
inside the forecaster (and survives saving). Then the hooks the training
loop calls on a strategy: parameter groups, start of run, start of epoch,
after each optimiser step, and the loss penalty."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pricetune import FineTunedPriceForecaster
from pricetune.components.contract import Strategy
from pricetune.components.heads import QuantileHead
from pricetune.components.language_model import MiniLMBackbone, minilm_path
from pricetune.components.layers import layer_parameters
from pricetune.components.peft_strategies import AdaLoRA
from pricetune.components.simple_backbones import LSTMBackbone
from pricetune.components.strategies import BottleneckAdapters, GradualUnfreezing
from pricetune.data.windows import series_windows
from pricetune.nn.model import PatchForecastModel
from pricetune.plugins import get_component
from pricetune.training import Trainer, TrainingConfig, checkpoints, parameter_groups

HIDDEN, INTERMEDIATE = 384, 1536  # all-MiniLM-L6-v2

N_PATCHES = 7  # context_length 16, patch_length 4, stride 2


def minilm_model(n_layers=1, seed=0):
    torch.manual_seed(seed)
    return PatchForecastModel(
        MiniLMBackbone(patch_length=4, n_patches=N_PATCHES, n_layers=n_layers),
        QuantileHead(
            hidden_size=HIDDEN, n_patches=N_PATCHES, horizon=3, quantiles=[0.1, 0.9]
        ),
        context_length=16,
        patch_length=4,
        patch_stride=2,
    )


def lstm_model(num_layers=3, seed=0):
    torch.manual_seed(seed)
    return PatchForecastModel(
        LSTMBackbone(
            patch_length=4, n_patches=N_PATCHES, hidden_size=8, num_layers=num_layers
        ),
        QuantileHead(
            hidden_size=8, n_patches=N_PATCHES, horizon=3, quantiles=[0.1, 0.9]
        ),
        context_length=16,
        patch_length=4,
        patch_stride=2,
    )


def apply(model, name, **kwargs):
    strategy = get_component("strategy", name)(**kwargs)
    strategy.apply(model)
    return strategy


def n_trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def shipped_name(name):
    """A body parameter's name in the shipped checkpoint: without peft's
    wrapper prefixes and its ``base_layer``."""
    for prefix in ("base_model.model.", "base_model."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.replace(".base_layer", "")


# --------------------------------------------------- what each strategy trains
# one network (the default mixes three: test_ensembles.py)
CHEAP = {
    "max_epochs": 2,
    "batch_size": 32,
    "random_state": 0,
    "verbose": 0,
    "n_ensemble": 1,
}


def _trainable(forecaster, part):
    return {
        name: p
        for name, p in getattr(forecaster.model_.backbone, part).named_parameters()
        if p.requires_grad
    }


def _n(parameters):
    return sum(p.numel() for p in parameters)


def _fit_minilm(brent_monthly, strategy, **extra):
    return FineTunedPriceForecaster(
        **CHEAP,
        backbone="minilm",
        backbone_kwargs={"n_layers": 2},
        strategy=strategy,
        context_length=16,
        patch_length=4,
        **extra,
    ).fit(brent_monthly, fh=[1])


def _embedding_and_head(forecaster):
    model = forecaster.model_
    return _n(model.backbone.embedding.parameters()) + _n(model.head.parameters())


def test_lora_trains_adapters_embedding_and_head_only(brent_monthly):
    r, hidden, layers = 4, 384, 2
    forecaster = _fit_minilm(brent_monthly, "lora", strategy_kwargs={"r": r})
    body = _trainable(forecaster, "body")
    assert body and all("lora_" in name for name in body)
    # LoRA on query and value of each layer: r * (in + out) per adapted matrix
    expected_lora = layers * 2 * r * (hidden + hidden)
    assert _n(body.values()) == expected_lora
    assert forecaster.n_trainable_parameters_ == expected_lora + _embedding_and_head(
        forecaster
    )


def test_layernorm_trains_norms_and_positions_only(brent_monthly):
    forecaster = _fit_minilm(brent_monthly, "layernorm")
    body = _trainable(forecaster, "body")
    assert all("LayerNorm" in name or "position_embeddings" in name for name in body)
    hidden, layers, positions = 384, 2, 512
    # two LayerNorms (weight + bias) per layer, one after the embeddings,
    # and the position table
    expected = (layers * 2 + 1) * 2 * hidden + positions * hidden
    assert _n(body.values()) == expected
    assert forecaster.n_trainable_parameters_ == expected + _embedding_and_head(
        forecaster
    )


def test_frozen_trains_embedding_and_head_only(brent_monthly):
    forecaster = _fit_minilm(brent_monthly, "frozen")
    assert _trainable(forecaster, "body") == {}
    assert forecaster.n_trainable_parameters_ == _embedding_and_head(forecaster)


def test_full_trains_everything(brent_monthly):
    forecaster = _fit_minilm(brent_monthly, "full")
    assert forecaster.n_trainable_parameters_ == forecaster.n_parameters_


def test_strategies_refuse_backbones_they_cannot_adapt(brent_monthly):
    for backbone, strategy, message in [
        ("none", "lora", "has none"),
        ("none", "frozen", "has none"),
        ("lstm", "layernorm", "needs LayerNorm.*backbone='minilm'"),
        ("lstm", "lora", "target_modules.*backbone='minilm'"),
    ]:
        forecaster = FineTunedPriceForecaster(
            **CHEAP, backbone=backbone, strategy=strategy, context_length=16
        )
        with pytest.raises(ValueError, match=message):
            forecaster.fit(brent_monthly, fh=[1])


def test_frozen_fit_leaves_pretrained_weights_as_shipped(brent_monthly):
    shipped = load_file(str(minilm_path() / "model.safetensors"))
    forecaster = _fit_minilm(brent_monthly, "frozen")
    body = dict(forecaster.model_.backbone.body.named_parameters())
    for name in ["encoder.layer.1.output.dense.weight", "embeddings.LayerNorm.weight"]:
        torch.testing.assert_close(body[name], shipped[name], rtol=0, atol=0)


# per strategy on a 1-layer MiniLM: kwargs, trainable body parameters, and a
# marker every trainable body parameter's name has
COUNTS = {
    # AdaLoRA on query and value: A (r x in), B (out x r), E (r) per matrix
    "adalora": ({}, 2 * 12 * (HIDDEN + HIDDEN + 1), "lora_"),
    # (IA)^3: key, value, attention.output.dense scale outputs/inputs (384
    # each); the feed-forward output.dense scales its 1536 inputs
    "ia3": ({}, 3 * HIDDEN + INTERMEDIATE, "ia3_l"),
    # prefix: a key and a value per virtual token and layer
    "prefix": ({"num_virtual_tokens": 8}, 8 * 1 * 2 * HIDDEN, "prompt_encoder"),
    # prompt tuning: one embedding per virtual token
    "prompt": (
        {"num_virtual_tokens": 8, "mode": "prompt"},
        8 * HIDDEN,
        "prompt_encoder",
    ),
    # a bottleneck of 16: down (384 x 16 + 16) and up (16 x 384 + 384)
    "adapter": ({"size": 16}, 2 * HIDDEN * 16 + 16 + HIDDEN, "bottleneck_adapter"),
}


def _strategy_of(case):
    return "prefix" if case == "prompt" else case


@pytest.mark.parametrize("case", sorted(COUNTS))
def test_trainable_parameters_per_strategy(case):
    kwargs, expected, marker = COUNTS[case]
    model = minilm_model()
    apply(model, _strategy_of(case), **kwargs)
    body = model.backbone.body
    trainable = {n: p for n, p in body.named_parameters() if p.requires_grad}
    assert trainable and all(marker in name for name in trainable)
    assert n_trainable(body) == expected
    outside = n_trainable(model.backbone.embedding) + n_trainable(model.head)
    assert n_trainable(model) == expected + outside
    # the embedding and the head train whole
    assert n_trainable(model.head) == sum(p.numel() for p in model.head.parameters())


@pytest.mark.parametrize("case", sorted(COUNTS))
def test_gradients_reach_the_trainable_parameters_only(case):
    kwargs, _, _ = COUNTS[case]
    model = minilm_model()
    apply(model, _strategy_of(case), **kwargs)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    context = torch.randn(8, 16).cumsum(dim=1) + 50
    target = torch.randn(8, 3)
    optimiser = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=0.1, weight_decay=0.1
    )
    model.head.loss(model(context), target).backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None, name
        else:
            assert parameter.grad is None, name
    optimiser.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and not changed & frozen


# ----------------------------------------------------------- in the forecaster
FIT = dict(
    n_ensemble=1,  # one network: its weights are read below
    backbone="minilm",
    backbone_kwargs={"n_layers": 1},
    head="quantile",
    head_kwargs={"quantiles": [0.1, 0.5, 0.9]},
    context_length=16,
    patch_length=4,
    max_epochs=1,
    batch_size=32,
    random_state=0,
    verbose=0,
    device="cpu",
)


def fit(y, strategy, **params):
    return FineTunedPriceForecaster(**{**FIT, "strategy": strategy, **params}).fit(
        y, fh=[1, 2]
    )


@pytest.fixture(scope="module")
def y(brent_monthly):
    return brent_monthly.iloc[-90:]


@pytest.fixture(scope="module")
def shipped():
    return load_file(str(minilm_path() / "model.safetensors"))


@pytest.mark.parametrize("case", sorted(COUNTS))
def test_each_strategy_in_the_forecaster_keeps_the_pretrained_weights(y, shipped, case):
    kwargs, expected, _ = COUNTS[case]
    forecaster = fit(y, _strategy_of(case), strategy_kwargs=kwargs)
    prediction = forecaster.predict()
    assert np.isfinite(prediction.to_numpy()).all()
    assert prediction.abs().max() < 10 * y.abs().max()
    interval = forecaster.predict_interval(coverage=0.8)
    assert (interval.iloc[:, 0] <= interval.iloc[:, 1]).all()
    model = forecaster.model_
    outside = n_trainable(model.backbone.embedding) + n_trainable(model.head)
    assert forecaster.n_trainable_parameters_ == expected + outside
    compared = 0
    for name, parameter in model.backbone.body.named_parameters():
        key = shipped_name(name)
        if key == "embeddings.word_embeddings.weight":
            continue  # replaced by a one-row stand-in: never read
        if not parameter.requires_grad and key in shipped:
            assert torch.equal(parameter, shipped[key]), name
            compared += 1
    assert compared >= 16  # every weight of the layer and the embeddings


def test_prefix_and_prompt_tuning_on_a_gpt2_checkpoint(y, tiny_gpt2_dir):
    for kwargs, expected in [({}, 4 * 2 * 2 * 32), ({"mode": "prompt"}, 4 * 32)]:
        forecaster = fit(
            y,
            "prefix",
            backbone="hf",
            backbone_kwargs={"path": str(tiny_gpt2_dir)},
            strategy_kwargs={"num_virtual_tokens": 4, **kwargs},
        )
        assert np.isfinite(forecaster.predict().to_numpy()).all()
        assert n_trainable(forecaster.model_.backbone.body) == expected


def test_prefix_names_the_backbones_it_supports(y, tiny_gpt2_dir):
    for backbone in ["lstm", "none"]:
        with pytest.raises(ValueError, match="'minilm' or 'hf'"):
            fit(y, "prefix", backbone=backbone, backbone_kwargs={})
    # the virtual tokens take positions: 7 patches + 60 > GPT-2's 64 here
    with pytest.raises(ValueError, match="exceed the 64 positions"):
        fit(
            y,
            "prefix",
            backbone="hf",
            backbone_kwargs={"path": str(tiny_gpt2_dir)},
            strategy_kwargs={"num_virtual_tokens": 60},
        )
    with pytest.raises(ValueError, match="mode must be one of"):
        fit(y, "prefix", strategy_kwargs={"mode": "suffix"})


def test_strategies_refuse_what_they_cannot_adapt(y):
    for strategy, backbone, message in [
        ("adalora", "lstm", "target_modules"),
        ("ia3", "lstm", "target_modules"),
        ("adapter", "lstm", "no list of layers"),
        ("adapter", "none", "has none"),
        ("gradual", "none", "has none"),
    ]:
        with pytest.raises(ValueError, match=message):
            fit(y, strategy, backbone=backbone, backbone_kwargs={})
    with pytest.raises(ValueError, match="cannot find the layers"):
        layer_parameters(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("strategy", ["ia3", "adapter"])
def test_saved_and_loaded_strategies_predict_the_same(y, tmp_path, strategy):
    forecaster = fit(y, strategy)
    path = forecaster.save(tmp_path / strategy, serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(path)
    assert loaded.predict().equals(forecaster.predict())
    assert loaded.predict_interval(coverage=0.8).equals(
        forecaster.predict_interval(coverage=0.8)
    )


# --------------------------------------------------------------------- adalora
def test_adalora_schedules_the_run_and_reallocates_ranks(y, monkeypatch):
    steps, totals = [], []
    update, begin = AdaLoRA.on_optimizer_step, AdaLoRA.on_train_begin

    def spy_update(self, model, step):
        steps.append(step)
        update(self, model, step)

    def spy_begin(self, model, total_steps):
        totals.append(total_steps)
        begin(self, model, total_steps)

    monkeypatch.setattr(AdaLoRA, "on_optimizer_step", spy_update)
    monkeypatch.setattr(AdaLoRA, "on_train_begin", spy_begin)
    forecaster = fit(
        y,
        "adalora",
        max_epochs=3,
        batch_size=16,
        validation_fraction=0.0,
        strategy_kwargs={"init_r": 4, "target_r": 2, "final_fraction": 0.3},
    )
    assert len(totals) == 1 and steps == list(range(1, totals[0] + 1))
    body = forecaster.model_.backbone.body
    config = body.peft_config["default"]
    assert (config.total_step, config.tinit, config.tfinal) == (
        totals[0],
        int(0.1 * totals[0]),
        int(0.3 * totals[0]),
    )
    # ranks were cut from 4 per matrix to an average of 2: masked entries of
    # the singular values are zero
    assert config.rank_pattern is not None
    kept = sum(
        int(mask.sum()) for mask in map(torch.as_tensor, config.rank_pattern.values())
    )
    assert kept == 2 * 2  # two adapted matrices, target_r 2
    singular = [p for n, p in body.named_parameters() if "lora_E" in n]
    assert sum(int((p != 0).sum()) for p in singular) == kept


def test_adalora_checks_its_options():
    with pytest.raises(ValueError, match="target_r"):
        AdaLoRA(init_r=4, target_r=8)
    with pytest.raises(ValueError, match="sum"):
        AdaLoRA(init_fraction=0.5, final_fraction=0.5)


def test_adalora_adds_peft_orthogonality_penalty_to_training_only():
    model = minilm_model()
    strategy = apply(model, "adalora", init_r=4, target_r=2, orth_reg_weight=0.5)
    penalty = strategy.loss_penalty(model)
    # peft's formula, written out: the mean over lora_A and lora_B matrices
    # of ||A A^T - I||_F (A) and ||B^T B - I||_F (B), times the weight
    distances = []
    for name, weight in model.backbone.body.named_parameters():
        if "lora_A" in name:
            gram = weight @ weight.T
        elif "lora_B" in name:
            gram = weight.T @ weight
        else:
            continue
        distances.append(torch.linalg.norm(gram - torch.eye(len(gram)), "fro"))
    assert len(distances) == 4  # query and value, A and B each
    assert float(penalty) == pytest.approx(0.5 * float(sum(distances)) / 4, rel=1e-5)
    penalty.backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0
        for n, p in model.named_parameters()
        if "lora_A" in n
    )
    off = apply(minilm_model(), "adalora", init_r=4, target_r=2, orth_reg_weight=0)
    assert off.loss_penalty(model) is None
    with pytest.raises(ValueError, match="orth_reg_weight must not be negative"):
        get_component("strategy", "adalora")(orth_reg_weight=-1)


# --------------------------------------------------------------------- adapter
def test_new_adapters_leave_the_model_unchanged_and_pickle():
    model = minilm_model(n_layers=2)
    context = torch.randn(4, 16).cumsum(dim=1)
    before = model(context)
    apply(model, "adapter", size=8)
    layers = model.backbone.body.encoder.layer
    assert all(hasattr(layer, "bottleneck_adapter") for layer in layers)
    torch.testing.assert_close(model(context), before, rtol=0, atol=0)
    # once trained, the adapters act; copies and pickles keep them working
    with torch.no_grad():
        for layer in layers:
            layer.bottleneck_adapter.up.weight.normal_()
    adapted = model(context)
    assert not torch.allclose(adapted, before)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        torch.testing.assert_close(clone(context), adapted, rtol=0, atol=0)
    with pytest.raises(ValueError, match="activation"):
        BottleneckAdapters(activation="swish")


# --------------------------------------------------------------------- gradual
def _trainable_layers(model):
    names = [n for n, p in model.backbone.body.named_parameters() if p.requires_grad]
    return sorted({int(n.rsplit("_l", 1)[1]) for n in names})


def test_gradual_unfreezes_the_top_layer_first_one_more_per_epoch():
    model = lstm_model(num_layers=3)
    strategy = apply(model, "gradual")
    assert n_trainable(model) == sum(p.numel() for p in model.parameters())
    seen = {}
    for epoch in [1, 2, 3, 4, 5]:
        strategy.on_epoch_start(model, epoch)
        seen[epoch] = _trainable_layers(model)
        # the embedding and the head always train
        assert all(p.requires_grad for p in model.backbone.embedding.parameters())
        assert all(p.requires_grad for p in model.head.parameters())
    assert seen == {1: [], 2: [2], 3: [1, 2], 4: [0, 1, 2], 5: [0, 1, 2]}
    faster = apply(lstm_model(), "gradual", layers_per_epoch=2, initial_layers=1)
    faster.on_epoch_start(model, 1)
    assert _trainable_layers(model) == [2]
    faster.on_epoch_start(model, 2)
    assert _trainable_layers(model) == [0, 1, 2]
    # depends on the epoch only: going back gives the same state again
    strategy.on_epoch_start(model, 2)
    assert _trainable_layers(model) == [2]


def test_gradual_stages_of_a_transformer():
    model = minilm_model(n_layers=2)
    body = model.backbone.body
    stages = GradualUnfreezing.stages(body)
    names = {id(p): n for n, p in body.named_parameters()}
    stage_names = [{names[id(p)] for p in stage} for stage in stages]
    assert len(stages) == 3
    assert all(n.startswith("encoder.layer.1.") for n in stage_names[0])
    assert all(n.startswith("encoder.layer.0.") for n in stage_names[1])
    # then what lies outside the layers: the embeddings' tables and LayerNorm
    assert "embeddings.position_embeddings.weight" in stage_names[2]
    strategy = apply(model, "gradual")
    strategy.on_epoch_start(model, 2)
    trainable = {n for n, p in body.named_parameters() if p.requires_grad}
    assert trainable == stage_names[0]


def test_gradual_fit_never_moves_layers_still_frozen(y, monkeypatch):
    snapshot = {}
    original = GradualUnfreezing.apply

    def spy(self, model):
        original(self, model)
        snapshot.update({n: p.detach().clone() for n, p in model.named_parameters()})

    monkeypatch.setattr(GradualUnfreezing, "apply", spy)
    forecaster = fit(
        y,
        "gradual",
        backbone="lstm",
        backbone_kwargs={"hidden_size": 8, "num_layers": 3},
        max_epochs=2,
        validation_fraction=0.0,
        learning_rate=0.01,
    )
    for name, parameter in forecaster.model_.backbone.body.named_parameters():
        moved = not torch.equal(parameter, snapshot[f"backbone.body.{name}"])
        assert moved == name.endswith("_l2"), name  # only the top layer trained


class Interrupted(Exception):
    pass


def test_gradual_resumed_run_matches_the_uninterrupted_one(
    brent_monthly, tmp_path, monkeypatch
):
    windows = series_windows(brent_monthly.to_numpy(dtype=float)[-120:], 16, 3)

    def train(**settings):
        model = lstm_model(num_layers=2)
        strategy = apply(model, "gradual")
        config = TrainingConfig(
            max_epochs=4, batch_size=32, learning_rate=1e-2, patience=100, **settings
        )
        generator = torch.Generator().manual_seed(0)
        Trainer(config, torch.device("cpu"), None).fit(
            model, windows, generator, strategy=strategy
        )
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    reference = train()
    original = checkpoints.save

    def crash_after_two(directory, state):
        original(directory, state)
        if state["history"][-1]["epoch"] == 2:
            raise Interrupted

    directory = str(tmp_path / "run")
    monkeypatch.setattr(checkpoints, "save", crash_after_two)
    with pytest.raises(Interrupted):
        train(checkpoint_dir=directory)
    monkeypatch.setattr(checkpoints, "save", original)
    resumed = train(checkpoint_dir=directory)
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name


# ----------------------------------------------- discriminative learning rates
def test_body_lr_factor_gives_the_body_its_own_group():
    model = lstm_model()
    strategy = apply(model, "full", body_lr_factor=0.1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = parameter_groups(model, strategy, trainable, 1e-3)
    assert [g.get("lr") for g in groups] == [pytest.approx(1e-4), None]
    body = {id(p) for p in model.backbone.body.parameters()}
    assert {id(p) for p in groups[0]["params"]} == body
    assert not body & {id(p) for p in groups[1]["params"]}
    # an adapter strategy: its adapters are the body's trainable parameters
    model = minilm_model()
    strategy = apply(model, "lora", r=2, body_lr_factor=0.5)
    trainable = [p for p in model.parameters() if p.requires_grad]
    body_group, rest = parameter_groups(model, strategy, trainable, 1e-3)
    assert body_group["lr"] == pytest.approx(5e-4)
    assert sum(p.numel() for p in body_group["params"]) == 2 * 2 * (2 * HIDDEN)
    # without the option: one group
    plain = apply(lstm_model(), "full")
    assert len(parameter_groups(model, plain, trainable, 1e-3)) == 1


def test_fitting_with_body_lr_factor_uses_both_rates(y, monkeypatch):
    optimisers = []

    class SpyAdamW(torch.optim.AdamW):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            optimisers.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", SpyAdamW)
    fit(
        y,
        "gradual",
        backbone="lstm",
        backbone_kwargs={"hidden_size": 8},
        learning_rate=0.02,
        strategy_kwargs={"body_lr_factor": 0.25},
    )
    (optimiser,) = optimisers
    rates = [group["initial_lr"] for group in optimiser.param_groups]
    assert rates == [pytest.approx(0.005), pytest.approx(0.02)]


def test_body_lr_factor_is_checked(y):
    with pytest.raises(ValueError, match="body_lr_factor must be positive"):
        fit(
            y,
            "full",
            backbone="none",
            backbone_kwargs={},
            strategy_kwargs={"body_lr_factor": 0},
        )
    with pytest.raises(TypeError, match="body_lr_factor"):
        fit(
            y,
            "frozen",
            backbone="lstm",
            backbone_kwargs={},
            strategy_kwargs={"body_lr_factor": 0.1},
        )


# --------------------------------------------------- the training loop's hooks
@pytest.fixture(scope="module")
def plain(random_walk):
    return series_windows(random_walk(80, 6), 12, 3)


class Recorder(Strategy):
    """Trains everything; records the hook calls; optional groups."""

    def __init__(self, groups=None, freeze_until=None):
        self.calls = []
        self.groups = groups
        self.freeze_until = freeze_until

    def apply(self, model):
        model.requires_grad_(True)

    def parameter_groups(self, model, learning_rate):
        if self.groups is None:
            return None
        return self.groups(model, learning_rate)

    def on_train_begin(self, model, total_steps):
        self.calls.append(("begin", total_steps))

    def on_epoch_start(self, model, epoch):
        self.calls.append(("epoch", epoch))
        if self.freeze_until is not None:
            model.backbone.body.requires_grad_(epoch >= self.freeze_until)

    def on_optimizer_step(self, model, step):
        self.calls.append(("step", step))


def test_hooks_are_called_in_order(plain, small_lstm_model, train_on_cpu):
    strategy = Recorder()
    model = small_lstm_model()
    strategy.apply(model)
    train_on_cpu(model, plain, strategy=strategy, validation_fraction=0.0, max_epochs=2)
    steps_per_epoch = int(np.ceil(len(plain) / 8))
    expected = [("begin", 2 * steps_per_epoch)]
    for epoch in (1, 2):
        expected.append(("epoch", epoch))
        first = (epoch - 1) * steps_per_epoch + 1
        expected += [("step", s) for s in range(first, first + steps_per_epoch)]
    assert strategy.calls == expected


def test_a_body_frozen_by_a_hook_stays_put_until_released(
    plain, small_lstm_model, train_on_cpu
):
    strategy = Recorder(freeze_until=3)
    model = small_lstm_model()
    strategy.apply(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_on_cpu(model, plain, strategy=strategy, validation_fraction=0.0, max_epochs=2)
    after = dict(model.named_parameters())
    for name, value in before.items():
        moved = not torch.equal(value, after[name])
        assert moved == (not name.startswith("backbone.body")), name
    # a new run starts from what apply() made trainable; released at epoch 3
    strategy.apply(model)
    train_on_cpu(model, plain, strategy=strategy, validation_fraction=0.0, max_epochs=3)
    assert not torch.equal(
        before["backbone.body.weight_ih_l0"], after["backbone.body.weight_ih_l0"]
    )


def body_at_tenth(model, learning_rate):
    return [
        {"params": list(model.backbone.body.parameters()), "lr": learning_rate / 10}
    ]


def test_parameter_groups_complete_the_strategy_groups(small_lstm_model):
    model = small_lstm_model()
    model.requires_grad_(True)
    trainable = list(model.parameters())
    groups = parameter_groups(model, Recorder(body_at_tenth), trainable, 0.5)
    assert len(groups) == 2
    assert groups[0]["lr"] == 0.05
    assert "lr" not in groups[1]  # the optimiser's default: the base rate
    body = {id(p) for p in model.backbone.body.parameters()}
    assert {id(p) for p in groups[0]["params"]} == body
    assert {id(p) for p in groups[1]["params"]} == {
        id(p) for p in trainable if id(p) not in body
    }
    assert parameter_groups(model, None, trainable, 0.5) == [{"params": trainable}]


def test_parameter_groups_are_checked(small_lstm_model):
    model = small_lstm_model()
    model.requires_grad_(True)
    model.head.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    head = list(model.head.parameters())
    twice = list(model.backbone.body.parameters())[:1]
    cases = [
        (lambda m, lr: [{"params": head}], "not trainable"),
        (lambda m, lr: [{"params": twice}, {"params": twice}], "more than one"),
        (lambda m, lr: [list(twice)], "dicts with 'params'"),
    ]
    for groups, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            parameter_groups(model, Recorder(groups), trainable, 0.1)


def test_group_learning_rates_follow_the_schedule(
    plain, small_lstm_model, train_on_cpu
):
    strategy = Recorder(body_at_tenth)
    model = small_lstm_model()
    strategy.apply(model)
    captured = {}
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        captured["lrs"] = [group["lr"] for group in self.param_groups]
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = spy
    try:
        train_on_cpu(
            model, plain, strategy=strategy, lr_schedule="constant", max_epochs=1
        )
    finally:
        torch.optim.AdamW.step = original
    assert captured["lrs"] == pytest.approx([1e-3, 1e-2])


def test_the_trainer_adds_a_strategy_penalty_to_training_losses_only(y):
    class Penalised(get_component("strategy", "full")):
        def loss_penalty(self, model):
            return torch.tensor(100.0)

    windows = series_windows(y.to_numpy(dtype=float), 16, 3)
    histories = []
    for strategy in (get_component("strategy", "full")(), Penalised()):
        model = lstm_model(num_layers=1)
        strategy.apply(model)
        config = TrainingConfig(max_epochs=1, batch_size=32, learning_rate=1e-3)
        histories.append(
            Trainer(config, torch.device("cpu"), None).fit(
                model, windows, torch.Generator().manual_seed(0), strategy=strategy
            )[0]
        )
    plain, penalised = histories
    # a constant penalty has no gradient: the same weights, the same
    # validation loss, and a training loss 100 higher
    assert penalised["train_loss"] == pytest.approx(plain["train_loss"] + 100.0)
    assert penalised["validation_loss"] == pytest.approx(plain["validation_loss"])


# ---------------------------------------------------- where 0.1.0 pickled them
def test_the_strategies_stay_where_pricetune_0_1_0_pickled_them():
    # pickles written by 0.1.0 name pricetune.components.strategies.<class>
    import importlib

    from pricetune.components import layers, peft_strategies

    old = importlib.import_module("pricetune.components.strategies")
    for module, names in [
        (peft_strategies, ["PeftStrategy", "LoRA", "AdaLoRA", "IA3", "PrefixTuning"]),
        (layers, ["DiscriminativeLearningRates", "is_norm_layer", "layer_parameters"]),
    ]:
        for name in names:
            assert getattr(old, name) is getattr(module, name)
    kept = ["FullFineTuning", "FrozenBackbone", "LayerNormOnly", "BottleneckAdapter",
            "BottleneckAdapters", "GradualUnfreezing"]  # fmt: skip
    for name in kept:
        assert getattr(old, name).__module__ == "pricetune.components.strategies"
