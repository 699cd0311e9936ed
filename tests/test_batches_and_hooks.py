"""Where batches are gathered (host or device) and the strategy hooks the
training loop calls: parameter groups, start of run, start of epoch, and
after each optimiser step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pricetune.components.contract import Strategy
from pricetune.components.heads import LinearHead
from pricetune.components.simple_backbones import LSTMBackbone
from pricetune.data.batches import (
    DeviceBatches,
    HostBatches,
    batch_source,
    device_bytes,
)
from pricetune.data.windows import PanelWindows, series_windows
from pricetune.nn.model import PatchForecastModel
from pricetune.training import Trainer, TrainingConfig, parameter_groups

CPU = torch.device("cpu")


def random_walk(n, seed):
    return 50 + np.cumsum(np.random.default_rng(seed).normal(size=n))


@pytest.fixture(scope="module")
def series():
    values = random_walk(80, 0)
    covariates = np.random.default_rng(1).normal(size=(80, 2))
    return series_windows(values, 12, 3, covariates)


@pytest.fixture(scope="module")
def plain():
    return series_windows(random_walk(80, 6), 12, 3)


@pytest.fixture(scope="module")
def panel():
    values = np.concatenate([random_walk(40, 2), random_walk(5, 3), random_walk(60, 4)])
    offsets = np.array([0, 40, 45, 105])
    covariates = np.random.default_rng(5).normal(size=(105, 2))
    return PanelWindows(values, offsets, 12, 3, covariates)


@pytest.mark.parametrize("kind", ["series", "panel"])
def test_device_batches_equal_host_batches(kind, series, panel):
    windows = series if kind == "series" else panel
    host, device = HostBatches(windows, CPU), DeviceBatches(windows, CPU)
    indices = np.array([0, 7, len(windows) - 1, 3, 3])
    for from_host, from_device in zip(
        host.batch(host.order(indices)),
        device.batch(device.order(indices)),
        strict=True,
    ):
        assert from_device.dtype == torch.float32
        assert from_device.shape == from_host.shape
        torch.testing.assert_close(from_device, from_host, rtol=0, atol=0)
    contexts = host.batch(indices)[0].numpy()
    expected = np.asarray(windows.contexts[indices], dtype=np.float32)
    np.testing.assert_array_equal(contexts, expected)


def test_device_bytes_counts_float32_copies(series, panel):
    n = len(series)
    assert device_bytes(series) == 4 * (n * 12 + n * 3 + n * 15 * 2)
    assert device_bytes(panel) == 4 * (105 + 2 * 4 + 105 * 2)


def test_batch_source_copies_small_data_only(series, monkeypatch):
    assert isinstance(batch_source(series, CPU), DeviceBatches)
    assert isinstance(batch_source(series, CPU, "host"), HostBatches)
    monkeypatch.setattr("pricetune.data.batches.HOST_COPY_LIMIT", 100)
    assert isinstance(batch_source(series, CPU), HostBatches)
    assert isinstance(batch_source(series, CPU, "device"), DeviceBatches)
    with pytest.raises(ValueError, match="placement must be"):
        batch_source(series, CPU, "gpu")


def lstm_model(seed=0, n_covariates=0):
    torch.manual_seed(seed)
    return PatchForecastModel(
        LSTMBackbone(patch_length=4, n_patches=5, hidden_size=6),
        LinearHead(hidden_size=6, n_patches=5, horizon=3),
        context_length=12,
        patch_length=4,
        patch_stride=2,
        horizon=3,
        n_covariate_features=n_covariates,
    )


def fit(model, windows, placement="auto", strategy=None, **settings):
    config = TrainingConfig(
        **{"max_epochs": 3, "batch_size": 8, "learning_rate": 1e-2, **settings}
    )
    trainer = Trainer(config, CPU, None, placement=placement)
    generator = torch.Generator().manual_seed(0)
    return trainer.fit(model, windows, generator, strategy=strategy)


def test_training_on_device_batches_matches_host_batches(panel):
    host_model = lstm_model(n_covariates=panel.n_covariate_features)
    device_model = lstm_model(n_covariates=panel.n_covariate_features)
    host = fit(host_model, panel, "host")
    device = fit(device_model, panel, "device")
    for a, b in zip(host, device, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["validation_loss"] == pytest.approx(b["validation_loss"], rel=1e-6)
    for a, b in zip(host_model.parameters(), device_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


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


def test_hooks_are_called_in_order(plain):
    strategy = Recorder()
    model = lstm_model()
    strategy.apply(model)
    fit(model, plain, strategy=strategy, validation_fraction=0.0, max_epochs=2)
    steps_per_epoch = int(np.ceil(len(plain) / 8))
    expected = [("begin", 2 * steps_per_epoch)]
    for epoch in (1, 2):
        expected.append(("epoch", epoch))
        first = (epoch - 1) * steps_per_epoch + 1
        expected += [("step", s) for s in range(first, first + steps_per_epoch)]
    assert strategy.calls == expected


def test_a_body_frozen_by_a_hook_stays_put_until_released(plain):
    strategy = Recorder(freeze_until=3)
    model = lstm_model()
    strategy.apply(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fit(model, plain, strategy=strategy, validation_fraction=0.0, max_epochs=2)
    after = dict(model.named_parameters())
    for name, value in before.items():
        moved = not torch.equal(value, after[name])
        assert moved == (not name.startswith("backbone.body")), name
    # a new run starts from what apply() made trainable; released at epoch 3
    strategy.apply(model)
    fit(model, plain, strategy=strategy, validation_fraction=0.0, max_epochs=3)
    assert not torch.equal(
        before["backbone.body.weight_ih_l0"], after["backbone.body.weight_ih_l0"]
    )


def body_at_tenth(model, learning_rate):
    return [
        {"params": list(model.backbone.body.parameters()), "lr": learning_rate / 10}
    ]


def test_parameter_groups_complete_the_strategy_groups():
    model = lstm_model()
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


def test_parameter_groups_are_checked():
    model = lstm_model()
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


def test_group_learning_rates_follow_the_schedule(plain):
    strategy = Recorder(body_at_tenth)
    model = lstm_model()
    strategy.apply(model)
    captured = {}
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        captured["lrs"] = [group["lr"] for group in self.param_groups]
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = spy
    try:
        fit(model, plain, strategy=strategy, lr_schedule="constant", max_epochs=1)
    finally:
        torch.optim.AdamW.step = original
    assert captured["lrs"] == pytest.approx([1e-3, 1e-2])


class ShiftOnlyFirst(LinearHead):
    """A head whose covariate shift moves nothing (to see ``shift`` used)."""

    def shift(self, prediction, offset):
        return prediction


def test_the_model_applies_covariate_effects_through_the_head():
    torch.manual_seed(0)
    model = PatchForecastModel(
        LSTMBackbone(patch_length=4, n_patches=5, hidden_size=6),
        ShiftOnlyFirst(hidden_size=6, n_patches=5, horizon=3),
        context_length=12,
        patch_length=4,
        patch_stride=2,
        horizon=3,
        n_covariate_features=2,
    )
    nn.init.ones_(model.covariate_effect.weight)
    context = torch.randn(4, 12).cumsum(1) + 10
    with torch.no_grad():
        one = model(context, torch.ones(4, 2))
        other = model(context, torch.full((4, 2), 5.0))
    torch.testing.assert_close(one, other)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_are_gathered_on_the_gpu(panel, series):
    cuda = torch.device("cuda")
    for windows in (panel, series):
        source = batch_source(windows, cuda)
        assert isinstance(source, DeviceBatches)
        indices = np.array([0, 5, len(windows) - 1])
        from_host = HostBatches(windows, CPU).batch(indices)
        for on_gpu, expected in zip(
            source.batch(source.order(indices)), from_host, strict=True
        ):
            assert on_gpu.device.type == "cuda"
            torch.testing.assert_close(on_gpu.cpu(), expected, rtol=0, atol=0)
