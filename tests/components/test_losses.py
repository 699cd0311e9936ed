"""The one pinball loss (pricetune.components.losses): by hand, on numpy
and torch alike, bit for bit as the two formulas it replaced, with
gradients."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from pricetune.backtesting import metrics
from pricetune.components.heads import QuantileHead
from pricetune.components.losses import pinball_loss

LEVELS = [0.2, 0.8]
# (h 2, q 2): errors [2, 1] and [1, -3]
TARGET = [3.0, 1.0]
PREDICTION = [[1.0, 2.0], [0.0, 4.0]]
# q e or (q - 1) e, whichever is larger
BY_HAND = [[0.2 * 2, 0.8 * 1], [0.2 * 1, (0.8 - 1) * -3]]


def old_torch_pinball(prediction, target, levels):
    """heads.pinball_loss before the merge, without its mean."""
    error = target.unsqueeze(-1) - prediction
    return torch.maximum(levels * error, (levels - 1.0) * error)


def old_numpy_pinball(y_true, quantiles, levels):
    """backtesting.metrics.pinball_loss before the merge."""
    y_true, quantiles, levels = (
        np.asarray(v, dtype=np.float64) for v in (y_true, quantiles, levels)
    )
    error = y_true[:, None] - quantiles
    return np.maximum(levels * error, (levels - 1.0) * error)


def random_case(seed, shape=(5, 7), n_levels=9):
    rng = np.random.default_rng(seed)
    levels = np.sort(rng.uniform(0.01, 0.99, n_levels))
    target = rng.normal(size=shape) * 10
    prediction = target[..., None] + rng.normal(size=(*shape, n_levels)) * 3
    return target, prediction, levels


def test_by_hand_on_numpy_and_torch():
    on_numpy = pinball_loss(np.array(TARGET), np.array(PREDICTION), np.array(LEVELS))
    assert isinstance(on_numpy, np.ndarray)
    np.testing.assert_allclose(on_numpy, BY_HAND)
    on_torch = pinball_loss(
        torch.tensor(TARGET), torch.tensor(PREDICTION), torch.tensor(LEVELS)
    )
    assert isinstance(on_torch, torch.Tensor)
    assert on_torch.shape == (2, 2)  # the prediction's shape: no mean
    np.testing.assert_allclose(on_torch.numpy(), BY_HAND, rtol=1e-6)


def test_a_perfect_forecast_costs_nothing_and_losses_are_not_negative():
    target, prediction, levels = random_case(0)
    assert not pinball_loss(target, target[..., None].repeat(9, -1), levels).any()
    assert (pinball_loss(target, prediction, levels) >= 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numpy_and_torch_give_the_same_numbers(dtype):
    target, prediction, levels = random_case(1)
    on_numpy = pinball_loss(target, prediction, levels)
    on_torch = pinball_loss(
        *(torch.tensor(v, dtype=torch.float64) for v in (target, prediction, levels))
    )
    np.testing.assert_array_equal(on_torch.numpy(), on_numpy)
    single = pinball_loss(*(torch.tensor(v, dtype=dtype) for v in random_case(1)))
    assert single.dtype == dtype
    np.testing.assert_allclose(single.numpy(), on_numpy, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [2, 3])
def test_bitwise_as_the_old_torch_formula(seed):
    for shape in [(4,), (6, 3), (2, 5, 3)]:
        target, prediction, levels = (
            torch.tensor(v, dtype=torch.float32) for v in random_case(seed, shape)
        )
        new = pinball_loss(target, prediction, levels)
        old = old_torch_pinball(prediction, target, levels)
        assert new.dtype == old.dtype and new.shape == old.shape
        assert torch.equal(new, old)
        assert torch.equal(new.mean(), old.mean())


@pytest.mark.parametrize("seed", [4, 5])
def test_bitwise_as_the_old_numpy_formula(seed):
    target, prediction, levels = random_case(seed, shape=(12,))
    expected = old_numpy_pinball(target, prediction, levels)
    np.testing.assert_array_equal(pinball_loss(target, prediction, levels), expected)
    # the metric keeps its signature and numbers, lists and tuples included
    np.testing.assert_array_equal(
        metrics.pinball_loss(list(target), prediction.tolist(), tuple(levels)),
        expected,
    )
    # as the interval calibration calls it: levels as a tuple of floats
    np.testing.assert_array_equal(
        pinball_loss(target, prediction, tuple(levels.tolist())), expected
    )


def test_the_quantile_head_loss_is_the_old_mean_bitwise():
    torch.manual_seed(0)
    head = QuantileHead(hidden_size=4, n_patches=3, horizon=5, quantiles=[0.1, 0.5])
    prediction = head(torch.randn(8, 3, 4))
    target = torch.randn(8, 5)
    old = old_torch_pinball(prediction, target, head.levels.to(prediction.dtype))
    assert torch.equal(head.loss(prediction, target), old.mean())


def test_gradients_flow_for_torch():
    target = torch.tensor(TARGET)
    prediction = torch.tensor(PREDICTION, requires_grad=True)
    pinball_loss(target, prediction, torch.tensor(LEVELS)).sum().backward()
    # d/df max(q (y - f), (q - 1) (y - f)): -q below the actual, 1 - q above
    expected = torch.tensor([[-0.2, -0.8], [-0.2, 0.2]])
    torch.testing.assert_close(prediction.grad, expected)


def test_torch_levels_may_be_a_sequence():
    target, prediction, levels = random_case(6)
    tensors = [torch.tensor(v, dtype=torch.float32) for v in (target, prediction)]
    as_list = pinball_loss(*tensors, levels.tolist())
    as_tensor = pinball_loss(*tensors, torch.tensor(levels, dtype=torch.float32))
    assert as_list.dtype == torch.float32
    assert torch.equal(as_list, as_tensor)


def test_the_module_imports_numpy_only():
    code = "import sys, pricetune.components.losses; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pinball_loss_matches_hand_computation():
    prediction = torch.tensor([[[1.0, 2.0]], [[0.0, 4.0]]])  # (batch 2, h 1, q 2)
    target = torch.tensor([[3.0], [1.0]])
    levels = torch.tensor([0.2, 0.8])
    # errors: [2, 1], [1, -3] -> losses 0.2*2, 0.8*1, 0.2*1, (0.8-1)*-3
    expected = (0.4 + 0.8 + 0.2 + 0.6) / 4
    loss = pinball_loss(target, prediction, levels).mean()
    assert float(loss) == pytest.approx(expected)
