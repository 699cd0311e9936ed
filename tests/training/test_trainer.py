"""The training loop (pricetune.training.trainer), at the Trainer level:
learning-rate schedule, gradient clipping and accumulation, CSV log,
torch.compile, the moving average of the weights, and checkpoints that
resume an interrupted run where it stopped (pricetune.training.checkpoints).
The moving average, the CSV log and the checkpoints are callbacks, tested
here as the Trainer runs them."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from pricetune.components.contract import Strategy
from pricetune.components.heads import LinearHead, QuantileHead
from pricetune.components.simple_backbones import LSTMBackbone, NoBackbone
from pricetune.data.windows import PanelWindows, series_windows
from pricetune.nn.model import PatchForecastModel
from pricetune.training import Callback, Trainer, TrainingConfig, checkpoints
from pricetune.training.trainer import learning_rate_factor

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def windows(brent_monthly):
    return series_windows(brent_monthly.to_numpy(dtype=float), 16, 3)


def linear_model(seed=0):
    torch.manual_seed(seed)
    return PatchForecastModel(
        NoBackbone(patch_length=4, n_patches=7),
        LinearHead(hidden_size=4, n_patches=7, horizon=3),
        context_length=16,
        patch_length=4,
        patch_stride=2,
    )


def lstm_model(seed=0):
    torch.manual_seed(seed)
    return PatchForecastModel(
        LSTMBackbone(patch_length=4, n_patches=7, hidden_size=8),
        QuantileHead(hidden_size=8, n_patches=7, horizon=3, quantiles=[0.1, 0.5, 0.9]),
        context_length=16,
        patch_length=4,
        patch_stride=2,
    )


def train(model, windows, seed=0, run_seed=None, **settings):
    """Train with the standard callbacks of the settings; ``run_seed`` is
    the seed that identifies the run in checkpoints."""
    config = TrainingConfig(
        **{"max_epochs": 3, "batch_size": 32, "learning_rate": 1e-2, **settings}
    )
    history = Trainer(config, CPU, None).fit(
        model, windows, torch.Generator().manual_seed(seed), seed=run_seed
    )
    return model, history


def weights(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_cosine_schedule_warms_up_then_decays_to_zero():
    config = TrainingConfig(
        max_epochs=1, batch_size=1, learning_rate=1.0, warmup_fraction=0.1
    )
    factors = [learning_rate_factor(config, step, 100) for step in range(100)]
    assert factors[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(b <= a for a, b in zip(factors[10:], factors[11:], strict=False))
    assert factors[-1] < 0.001
    constant = TrainingConfig(lr_schedule="constant")
    assert {learning_rate_factor(constant, s, 100) for s in range(100)} == {1.0}


def test_history_records_the_learning_rate(windows):
    _, history = train(linear_model(), windows, validation_fraction=0.0)
    rates = [record["learning_rate"] for record in history]
    assert rates[0] > rates[1] > rates[2] == pytest.approx(0.0, abs=1e-12)


def test_gradient_clipping_limits_each_step(windows):
    start = weights(linear_model())
    clipped, _ = train(
        linear_model(),
        windows,
        gradient_clip=1e-8,
        max_epochs=1,
        lr_schedule="constant",
        learning_rate=1e-6,
    )
    free, _ = train(
        linear_model(),
        windows,
        gradient_clip=None,
        max_epochs=1,
        lr_schedule="constant",
        learning_rate=1e-6,
    )

    def moved(model):
        return sum(float((p - start[n]).abs().sum()) for n, p in weights(model).items())

    # AdamW's step size does not depend on the gradient's scale, but with a
    # norm of 1e-8 the gradients sit below Adam's epsilon: steps nearly vanish
    assert moved(clipped) < moved(free) / 10


def test_accumulating_two_batches_equals_one_batch_of_both(windows):
    settings = {"validation_fraction": 0.0, "gradient_clip": None, "max_epochs": 2}
    big, _ = train(linear_model(), windows, batch_size=32, **settings)
    accumulated, _ = train(
        linear_model(), windows, batch_size=16, accumulate_batches=2, **settings
    )
    for name, tensor in weights(big).items():
        torch.testing.assert_close(
            weights(accumulated)[name], tensor, rtol=1e-5, atol=1e-6
        )
    small, _ = train(linear_model(), windows, batch_size=16, **settings)
    assert not torch.allclose(
        weights(small)["head.projection.weight"], weights(big)["head.projection.weight"]
    )


def test_csv_log_has_a_row_per_epoch(windows, tmp_path):
    path = tmp_path / "log.csv"
    _, history = train(linear_model(), windows, log_csv=str(path))
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [r["epoch"] for r in history]
    assert float(rows[-1]["train_loss"]) == pytest.approx(history[-1]["train_loss"])


def test_compiled_training_matches_eager(windows):
    eager, eager_history = train(lstm_model(), windows, max_epochs=1)
    compiled, compiled_history = train(
        lstm_model(), windows, max_epochs=1, compile=True
    )
    assert compiled_history[0]["train_loss"] == pytest.approx(
        eager_history[0]["train_loss"], rel=1e-3
    )
    for name, tensor in weights(eager).items():
        torch.testing.assert_close(
            weights(compiled)[name], tensor, rtol=1e-3, atol=1e-4
        )


class RecordSteps(Strategy):
    """Keeps the weights after every optimiser step."""

    def __init__(self):
        self.steps = []

    def apply(self, model):
        pass

    def on_optimizer_step(self, model, step):
        self.steps.append(weights(model))


def test_without_validation_the_model_ends_on_the_moving_average(windows):
    model, strategy = linear_model(), RecordSteps()
    initial = weights(model)
    config = TrainingConfig(
        max_epochs=3,
        batch_size=32,
        learning_rate=1e-2,
        validation_fraction=0.0,
        ema_epochs=0.5,
    )
    Trainer(config, CPU, None).fit(
        model, windows, torch.Generator().manual_seed(0), strategy=strategy
    )
    steps_per_epoch = math.ceil(len(windows) / 32)
    assert len(strategy.steps) == 3 * steps_per_epoch
    decay = 1 - 1 / (0.5 * steps_per_epoch)
    for name, value in initial.items():
        expected = value
        for n, step in enumerate(strategy.steps):
            factor = min(decay, n / (n + 1))
            expected = factor * expected + (1 - factor) * step[name]
        torch.testing.assert_close(weights(model)[name], expected)
        assert not torch.allclose(expected, strategy.steps[-1][name])


def test_validation_scores_the_moving_average_and_keeps_its_best(windows):
    settings = {"max_epochs": 5, "patience": 100, "learning_rate": 3e-2}
    model, history = train(linear_model(), windows, ema_epochs=2, **settings)
    _, plain_history = train(linear_model(), windows, **settings)
    losses = [record["validation_loss"] for record in history]
    assert losses != [record["validation_loss"] for record in plain_history]
    assert [r["train_loss"] for r in history] == pytest.approx(
        [r["train_loss"] for r in plain_history], rel=1e-6
    )  # the average never feeds back into training
    _, validation = windows.split(0.2)
    config = TrainingConfig(max_epochs=1, batch_size=32, learning_rate=1e-2)
    kept = Trainer(config, CPU, None).evaluate(model, windows, validation)
    assert kept == pytest.approx(min(losses), rel=1e-5)


class Interrupted(Exception):
    pass


@pytest.mark.parametrize(
    "averaging",
    # without validation the model ends on the moving average, which the
    # checkpoint must carry across the interruption
    [{}, {"ema_epochs": 1.5, "validation_fraction": 0.0}],
    ids=["plain", "moving-average"],
)
def test_resumed_run_ends_where_the_uninterrupted_one_does(
    windows, tmp_path, monkeypatch, averaging
):
    settings = {"max_epochs": 6, "patience": 100, **averaging}
    reference, reference_history = train(lstm_model(), windows, **settings)

    directory = tmp_path / "run"
    saved = []
    original = checkpoints.save

    def crash_after_three(directory, state):
        original(directory, state)
        saved.append(state["history"][-1]["epoch"])
        if len(saved) == 3:
            raise Interrupted

    monkeypatch.setattr(checkpoints, "save", crash_after_three)
    with pytest.raises(Interrupted):
        train(lstm_model(), windows, checkpoint_dir=str(directory), **settings)
    monkeypatch.setattr(checkpoints, "save", original)

    # a fresh process would build the same initial model from the same seed;
    # the resumed run trains only the three missing epochs
    epochs_trained = []
    original_epoch = Trainer._train_epoch

    def counting(self, *args):
        epochs_trained.append(1)
        return original_epoch(self, *args)

    monkeypatch.setattr(Trainer, "_train_epoch", counting)
    resumed, history = train(
        lstm_model(), windows, checkpoint_dir=str(directory), **settings
    )
    assert len(epochs_trained) == 3
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose(
        [r["train_loss"] for r in history],
        [r["train_loss"] for r in reference_history],
        rtol=0,
        atol=0,
    )
    for name, tensor in weights(reference).items():
        assert torch.equal(weights(resumed)[name], tensor), name


def test_a_finished_checkpoint_is_not_trained_again(windows, tmp_path):
    directory = str(tmp_path)
    first, history = train(linear_model(), windows, checkpoint_dir=directory)
    # a different initial model: only the checkpoint can make them equal
    again, history_again = train(
        linear_model(seed=1), windows, checkpoint_dir=directory
    )
    assert history_again == history
    for name, tensor in weights(first).items():
        assert torch.equal(weights(again)[name], tensor)


def test_a_checkpoint_of_another_run_is_refused(windows, tmp_path):
    directory = str(tmp_path)
    train(linear_model(), windows, checkpoint_dir=directory)
    with pytest.raises(ValueError, match="belongs to another training run"):
        train(linear_model(), windows, checkpoint_dir=directory, learning_rate=0.5)
    with pytest.raises(ValueError, match="belongs to another training run"):
        train(linear_model(), windows, checkpoint_dir=directory, run_seed=1)


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (
            lambda data: data[:64] + bytes(b ^ 0x5A for b in data[64:200]) + data[200:],
            "tampered",
        ),
        (lambda data: b"not a checkpoint at all", "foreign"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_a_damaged_checkpoint_is_named_on_resume(windows, tmp_path, damage, problem):
    directory = str(tmp_path)
    train(linear_model(), windows, checkpoint_dir=directory)
    path = tmp_path / checkpoints.FILENAME
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(
        checkpoints.CheckpointError,
        match=r"checkpoint.pt is not a readable training checkpoint .*; delete it",
    ):
        train(linear_model(), windows, checkpoint_dir=directory)


def test_checkpoints_are_written_atomically_and_load_without_pickle(tmp_path):
    path = checkpoints.save(tmp_path, {"fingerprint": "x", "w": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
    assert checkpoints.load(tmp_path, "x")["w"].tolist() == [1.0, 1.0]
    assert checkpoints.load(tmp_path / "empty", "x") is None
    assert path.name == checkpoints.FILENAME


def test_compile_modes_reach_torch_compile(windows, monkeypatch, brent_monthly):
    modes = []

    def spy(model, mode=None):
        modes.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", spy)
    train(linear_model(), windows, max_epochs=1, compile="reduce-overhead")
    train(linear_model(), windows, max_epochs=1, compile=True)
    assert modes == ["reduce-overhead", None]

    from pricetune import FineTunedPriceForecaster

    with pytest.raises(ValueError, match="compile must be True, False or one of"):
        FineTunedPriceForecaster(
            backbone="none", strategy="full", compile="fast", verbose=0
        ).fit(brent_monthly[-60:], fh=[1])


def test_clip_gradients_equals_torch_clip_grad_norm():
    from pricetune.training.trainer import clip_gradients

    torch.manual_seed(0)
    for scale in (0.01, 100.0):  # under and over the limit
        params = [torch.randn(5, 3, requires_grad=True), torch.randn(7)]
        params[1].requires_grad_(True)
        grads = [torch.randn_like(p) * scale for p in params]
        ours = [p.detach().clone().requires_grad_(True) for p in params]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        for p, g in zip(ours, grads, strict=True):
            p.grad = g.clone()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        clip_gradients([*ours, torch.zeros(2, requires_grad=True)], 1.0)
        for theirs, mine in zip(params, ours, strict=True):
            assert torch.equal(theirs.grad, mine.grad)


class CountSteps(Callback):
    def __init__(self):
        self.steps = 0

    def on_step_end(self, run):
        self.steps += 1


def _panel_windows(n_series, length=120, seed=0):
    rng = np.random.default_rng(seed)
    values = 50 + np.cumsum(rng.normal(size=n_series * length))
    offsets = np.arange(n_series + 1) * length
    return PanelWindows(values, offsets, 16, 3)


@pytest.mark.parametrize("n_series", [2, 20])
def test_a_step_budget_does_not_grow_with_the_panel(n_series):
    """With steps_per_epoch, a fit takes max_epochs x steps_per_epoch
    optimiser steps on 2 series as on 20 (ten times the windows)."""
    windows = _panel_windows(n_series)
    counter = CountSteps()
    settings = dict(max_epochs=3, steps_per_epoch=5, batch_size=16, patience=100)
    config = TrainingConfig(learning_rate=1e-2, **settings)
    history = Trainer(config, CPU, None).fit(
        linear_model(),
        windows,
        torch.Generator().manual_seed(0),
        callbacks=[counter],
    )
    assert counter.steps == 15
    assert [r["epoch"] for r in history] == [1, 2, 3]
    # without the budget an epoch is a pass over every window
    plain = CountSteps()
    Trainer(
        TrainingConfig(learning_rate=1e-2, max_epochs=1, batch_size=16), CPU, None
    ).fit(linear_model(), windows, torch.Generator().manual_seed(0), callbacks=[plain])
    train, _ = windows.split(0.2)
    assert plain.steps == math.ceil(len(train) / 16)


def test_an_epoch_of_a_budget_is_the_start_of_a_new_shuffle():
    from pricetune.training.trainer import epoch_order

    train = np.arange(10)
    config = TrainingConfig(steps_per_epoch=3, batch_size=2)  # 6 windows
    generator = torch.Generator().manual_seed(0)
    first, second = (epoch_order(train, generator, config) for _ in range(2))
    assert len(first) == 6 and len(set(first.tolist())) == 6
    assert first.tolist() != second.tolist()  # a new draw each epoch
    # a budget longer than a pass over the windows: the pass, once
    longer = TrainingConfig(steps_per_epoch=4, batch_size=4)  # 16 > 10 windows
    order = epoch_order(train, torch.Generator().manual_seed(0), longer)
    assert sorted(order.tolist()) == list(range(10))
    everything = epoch_order(train, torch.Generator().manual_seed(0), TrainingConfig())
    assert sorted(everything.tolist()) == list(range(10))


def test_a_budget_longer_than_a_pass_trains_one_pass_per_epoch():
    windows = _panel_windows(2)
    counter = CountSteps()
    config = TrainingConfig(max_epochs=2, steps_per_epoch=1000, batch_size=16)
    Trainer(config, CPU, None).fit(
        linear_model(), windows, torch.Generator().manual_seed(0), callbacks=[counter]
    )
    train, _ = windows.split(0.2)
    assert counter.steps == 2 * math.ceil(len(train) / 16)


def test_a_resumed_budgeted_run_ends_where_the_uninterrupted_one_does(
    windows, tmp_path, monkeypatch
):
    settings = {"max_epochs": 4, "patience": 100, "steps_per_epoch": 3}
    reference, reference_history = train(lstm_model(), windows, **settings)
    original = checkpoints.save

    def crash_after_two(directory, state):
        original(directory, state)
        if state["history"][-1]["epoch"] == 2:
            raise Interrupted

    monkeypatch.setattr(checkpoints, "save", crash_after_two)
    with pytest.raises(Interrupted):
        train(lstm_model(), windows, checkpoint_dir=str(tmp_path), **settings)
    monkeypatch.setattr(checkpoints, "save", original)
    resumed, history = train(
        lstm_model(), windows, checkpoint_dir=str(tmp_path), **settings
    )
    assert [r["train_loss"] for r in history] == [
        r["train_loss"] for r in reference_history
    ]
    for name, tensor in weights(reference).items():
        assert torch.equal(weights(resumed)[name], tensor), name


def test_validation_on_a_capped_spread_of_the_held_out_windows():
    from pricetune.training.trainer import spread_subset

    windows = _panel_windows(5)
    _, validation = windows.split(0.2)
    subset = spread_subset(validation, 10)
    assert len(subset) == 10 and set(subset) <= set(validation)
    series, _ = windows.locate(subset)
    assert set(series.tolist()) == set(range(5))  # every series validates
    assert spread_subset(validation, None) is validation
    model, history = train(
        linear_model(), windows, max_epochs=1, max_validation_windows=10
    )
    config = TrainingConfig(max_epochs=1, batch_size=32)
    loss = Trainer(config, CPU, None).evaluate(model, windows, subset)
    assert history[0]["validation_loss"] == pytest.approx(loss, rel=1e-6)
