"""Augmentations of training windows and adversarial training: what each
augmentation does, that only training batches see them, and that fits stay
reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.components.augmentations import (
    Augmentation,
    Jitter,
    MagnitudeWarp,
    Scaling,
    WindowSlice,
    build_augmentations,
    typical_move,
)
from pricetune.components.heads import LinearHead
from pricetune.components.simple_backbones import NoBackbone
from pricetune.data.windows import series_windows
from pricetune.nn.model import PatchForecastModel
from pricetune.training import Trainer, TrainingConfig

CPU = torch.device("cpu")


def batch(seed=0, n=6, length=12, horizon=4):
    generator = torch.Generator().manual_seed(seed)
    walk = 60 + torch.randn(n, length + horizon, generator=generator).cumsum(1)
    return walk[:, :length].clone(), walk[:, length:].clone()


@pytest.mark.parametrize(
    "augmentation",
    [Jitter(p=1), Scaling(p=1), MagnitudeWarp(p=1), WindowSlice(0.7, p=1)],
    ids=repr,
)
def test_augmentations_keep_shapes_and_leave_their_inputs_alone(augmentation):
    context, target = batch()
    before = context.clone(), target.clone()
    torch.manual_seed(0)
    new_context, new_target = augmentation(context, target)
    assert new_context.shape == context.shape and new_target.shape == target.shape
    assert torch.equal(context, before[0]) and torch.equal(target, before[1])
    assert not torch.equal(new_context, context)


def test_jitter_adds_noise_of_the_typical_move_to_the_context_only():
    context, target = batch(n=2000)
    torch.manual_seed(0)
    noisy, same = Jitter(sigma=0.5, p=1)(context, target)
    assert torch.equal(same, target)
    ratio = (noisy - context) / typical_move(context)
    assert float(ratio.std()) == pytest.approx(0.5, rel=0.05)
    assert float(ratio.mean()) == pytest.approx(0.0, abs=0.02)


def test_p_is_the_share_of_windows_touched():
    context, target = batch(n=4000)
    torch.manual_seed(0)
    noisy, _ = Jitter(p=0.25)(context, target)
    touched = (noisy != context).any(dim=1).float().mean()
    assert float(touched) == pytest.approx(0.25, abs=0.03)


def test_scaling_multiplies_each_window_by_one_factor():
    context, target = batch()
    torch.manual_seed(0)
    scaled_context, scaled_target = Scaling(sigma=0.2, p=1)(context, target)
    factors = torch.cat([scaled_context / context, scaled_target / target], dim=1)
    torch.testing.assert_close(factors, factors[:, :1].expand_as(factors))
    assert float(factors[:, 0].std()) > 0


def test_magnitude_warp_rescales_moves_and_keeps_the_start():
    context, target = batch()
    torch.manual_seed(0)
    warped_context, warped_target = MagnitudeWarp(sigma=0.3, p=1)(context, target)
    assert torch.equal(warped_context[:, 0], context[:, 0])
    window = torch.cat([context, target], dim=1)
    warped = torch.cat([warped_context, warped_target], dim=1)
    factor = warped.diff(dim=1) / window.diff(dim=1)
    assert bool((factor >= 0).all())  # moves keep their direction
    assert float((factor - 1).abs().max()) > 0.01
    # a tiny sigma leaves the window as it was
    torch.manual_seed(0)
    still = MagnitudeWarp(sigma=1e-7, p=1)(context, target)
    torch.testing.assert_close(still[0], context)
    torch.testing.assert_close(still[1], target)


def test_window_slice_stretches_a_slice_and_ratio_one_is_identity():
    context, target = batch()
    torch.manual_seed(0)
    same = WindowSlice(ratio=1.0, p=1)(context, target)
    torch.testing.assert_close(same[0], context)
    torch.testing.assert_close(same[1], target)
    # a linear ramp stays a ramp: a slice of it stretched is a gentler ramp
    ramp = torch.arange(16.0).repeat(3, 1)
    sliced_context, sliced_target = WindowSlice(ratio=0.5, p=1)(
        ramp[:, :12], ramp[:, 12:]
    )
    steps = torch.cat([sliced_context, sliced_target], dim=1).diff(dim=1)
    torch.testing.assert_close(steps, torch.full_like(steps, 0.5))


def test_augmentation_specs_and_their_errors():
    built = build_augmentations(["jitter", ("window_slice", {"ratio": 0.8})])
    assert [type(a) for a in built] == [Jitter, WindowSlice]
    assert built[1].ratio == 0.8
    assert [type(a) for a in build_augmentations({"scaling": {"sigma": 0.3}})] == [
        Scaling
    ]
    assert build_augmentations(None) == []
    custom = Jitter(sigma=0.2)
    assert build_augmentations(custom) == [custom]
    with pytest.raises(ValueError, match="unknown augmentation 'jiter'"):
        build_augmentations(["jiter"])
    with pytest.raises(TypeError, match="augmentation 'jitter'"):
        build_augmentations([("jitter", {"sigm": 1})])
    with pytest.raises(ValueError, match="p must be in"):
        build_augmentations([("jitter", {"p": 0})])
    with pytest.raises(TypeError, match="augmentations must be"):
        build_augmentations(3)


class Spy(Augmentation):
    """Counts the windows it sees and spoils their targets: a loss computed on
    what it returns is far larger than on clean windows."""

    def __init__(self):
        self.windows = 0

    def __call__(self, context, target):
        self.windows += len(context)
        return context, target + 1e3


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return PatchForecastModel(
        NoBackbone(patch_length=4, n_patches=5),
        LinearHead(hidden_size=4, n_patches=5, horizon=3),
        context_length=12,
        patch_length=4,
        patch_stride=2,
    )


def test_only_training_batches_are_augmented(brent_monthly):
    windows = series_windows(brent_monthly.to_numpy(dtype=float), 12, 3)
    spy = Spy()
    config = TrainingConfig(
        max_epochs=2,
        batch_size=16,
        learning_rate=1e-3,
        augmentations=(spy,),
        lr_schedule="constant",
        patience=10,
    )
    trainer = Trainer(config, CPU, None)
    model = tiny_model()
    history = trainer.fit(model, windows, torch.Generator().manual_seed(0))
    train, validation = windows.split(config.validation_fraction)
    assert spy.windows == 2 * len(train)
    # the spoiled targets show in the training loss, not in validation
    assert history[-1]["train_loss"] > 1e4
    assert history[-1]["validation_loss"] < 1e3
    # the best weights are back: their clean validation loss is the best one
    assert min(r["validation_loss"] for r in history) == pytest.approx(
        trainer.evaluate(model, windows, validation)
    )
    assert spy.windows == 2 * len(train)  # evaluate() did not augment


def test_forecaster_with_augmentations_is_reproducible_and_predicts_clean(
    brent_monthly,
):
    params = dict(
        backbone="none",
        head="quantile",
        strategy="full",
        context_length=12,
        max_epochs=2,
        random_state=0,
        verbose=0,
    )
    y = brent_monthly[-150:]
    spy = Spy()
    plain = FineTunedPriceForecaster(**params).fit(y, fh=[1, 2, 3])
    augmented = FineTunedPriceForecaster(
        **params, augmentations=["jitter", "magnitude_warp"]
    ).fit(y, fh=[1, 2, 3])
    again = FineTunedPriceForecaster(
        **params, augmentations=["jitter", "magnitude_warp"]
    ).fit(y, fh=[1, 2, 3])
    np.testing.assert_array_equal(augmented.predict(), again.predict())
    assert not np.allclose(augmented.predict(), plain.predict())
    spied = FineTunedPriceForecaster(**params, augmentations=[spy]).fit(y, fh=[1, 2, 3])
    seen = spy.windows
    spied.predict()
    spied.predict_interval()
    assert spy.windows == seen  # prediction inputs are never augmented


def test_adversarial_term_raises_the_loss_and_changes_the_fit(brent_monthly):
    windows = series_windows(brent_monthly.to_numpy(dtype=float), 12, 3)
    contexts, targets, _ = windows.batch(np.arange(64))
    clean_batch = (
        torch.tensor(contexts, dtype=torch.float32),
        torch.tensor(targets, dtype=torch.float32),
        None,
    )
    model = tiny_model()
    settings = dict(max_epochs=1, batch_size=64, learning_rate=1e-3)
    clean = Trainer(TrainingConfig(**settings), CPU, None)
    fgsm = Trainer(TrainingConfig(**settings, adversarial_epsilon=0.5), CPU, None)
    clean_loss = clean._data_loss(model, clean_batch, model).detach()
    mixed_loss = fgsm._data_loss(model, clean_batch, model).detach()
    # the mean of the clean and the adversarial loss: above the clean one
    assert float(mixed_loss) > float(clean_loss)
    adversarial = 2 * float(mixed_loss) - float(clean_loss)
    assert adversarial > 1.05 * float(clean_loss)

    params = dict(
        backbone="none", strategy="full", context_length=12, max_epochs=2,
        random_state=0, verbose=0,
    )  # fmt: skip
    y = brent_monthly[-150:]
    plain = FineTunedPriceForecaster(**params).fit(y, fh=[1, 2, 3])
    robust = FineTunedPriceForecaster(**params, adversarial_epsilon=0.5).fit(
        y, fh=[1, 2, 3]
    )
    assert not np.allclose(plain.predict(), robust.predict())
    with pytest.raises(ValueError, match="adversarial_epsilon"):
        FineTunedPriceForecaster(**params, adversarial_epsilon=-1).fit(y, fh=[1])
    with pytest.raises(ValueError, match="unknown augmentation"):
        FineTunedPriceForecaster(**params, augmentations=["noise"]).fit(y, fh=[1])
