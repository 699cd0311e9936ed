"""``check_head``: a head against its contract."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping

from pricetune.testing._common import (
    BATCH,
    HIDDEN_SIZE,
    HORIZON,
    N_PATCHES,
    CheckReport,
    _check_batch_independence,
    _check_devices,
    _check_module_roundtrip,
    _check_seeded,
    _Checker,
    _devices,
)
from pricetune.testing.in_forecaster import _check_in_forecaster


def check_head(
    head,
    kwargs: Mapping | None = None,
    *,
    hidden_size: int = HIDDEN_SIZE,
    n_patches: int = N_PATCHES,
    horizon: int = HORIZON,
    devices: Iterable[str] | None = None,
    forecaster: bool = True,
    forecaster_params: Mapping | None = None,
    sktime: bool = False,
    seed: int = 0,
) -> CheckReport:
    """Check a head class (or registered name) against the contract.

    Besides shapes and dtypes: quantiles never cross, ``shift`` moves every
    quantile by the offset, the loss is a finite scalar whose gradient
    reaches the head and the hidden states, and a few optimiser steps lower
    it. The forecaster check uses backbone ``"none"`` and strategy
    ``"full"`` unless ``forecaster_params`` says otherwise. Other parameters
    as :func:`check_backbone`.
    """
    import torch

    from pricetune.components.contract import Head, check_quantile_levels

    checker = _Checker("head", head, kwargs)
    checker.require_subclass(Head)
    probabilistic = getattr(checker.cls, "probabilistic", None)
    if not isinstance(probabilistic, bool):
        checker.fail(
            f"class attribute probabilistic must be a bool, got {probabilistic!r}"
        )
    structural = {
        "hidden_size": hidden_size,
        "n_patches": n_patches,
        "horizon": horizon,
    }
    module = checker.build(structural, seed)
    checker.check_unknown_argument(structural)

    n_outputs = module.n_outputs
    if isinstance(n_outputs, bool) or not isinstance(n_outputs, int) or n_outputs < 1:
        checker.fail(f"n_outputs must be a positive int, got {n_outputs!r}")
    quantiles = module.quantiles
    if quantiles is not None:
        try:
            check_quantile_levels(quantiles)
        except ValueError as error:
            checker.fail(f"quantiles are not valid levels: {error}")
    if probabilistic != (quantiles is not None):
        checker.fail(
            f"probabilistic is {probabilistic} but quantiles is {quantiles!r}: "
            "a probabilistic head has quantiles, a point head has None"
        )
    checker.passed("has n_outputs, quantiles and probabilistic, consistent")

    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(BATCH, n_patches, hidden_size, generator=generator)
    module.eval()
    with torch.no_grad():
        prediction = module(hidden)
    checker.check_tensor(
        prediction,
        f"forward((batch={BATCH}, n_patches={n_patches}, hidden_size="
        f"{hidden_size})) output",
        (BATCH, horizon, n_outputs),
    )
    checker.passed(
        "forward: (batch, n_patches, hidden_size) -> "
        "(batch, horizon, n_outputs), float32"
    )
    _check_batch_independence(checker, module, hidden, "forward")

    n_values = len(quantiles) if quantiles is not None else 1
    to_quantiles = getattr(module, "to_quantiles", None)
    with torch.no_grad():
        for scale in (1.0, 10.0):
            output = module(hidden * scale)
            values = to_quantiles(output) if to_quantiles is not None else output
            checker.check_tensor(
                values,
                "the forecast values (to_quantiles of forward's output)",
                (BATCH, horizon, n_values),
            )
            if n_values > 1 and torch.any(values.diff(dim=-1) < -1e-6):
                checker.fail(
                    "quantiles cross: the forecast values must be non-decreasing "
                    "along the last axis"
                )
        shift = getattr(module, "shift", None)
        if shift is not None:
            offset = torch.randn(BATCH, horizon, generator=generator)
            shifted = shift(prediction, offset)
            checker.check_tensor(
                shifted, "shift(prediction, offset)", tuple(prediction.shape)
            )
            moved = to_quantiles(shifted) if to_quantiles is not None else shifted
            unmoved = (
                to_quantiles(prediction) if to_quantiles is not None else prediction
            )
            checker.check_close(
                moved,
                unmoved + offset.unsqueeze(-1),
                "shift(prediction, offset) must move every forecast value by the "
                "offset",
                atol=1e-4,
            )
    checker.passed("forecast values have the right shape and never cross")

    target = torch.randn(BATCH, horizon, generator=generator)
    module.train()
    module.requires_grad_(True)
    inputs = hidden.clone().requires_grad_(True)
    loss = module.loss(module(inputs), target)
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        checker.fail(
            f"loss(prediction, target) must return a scalar tensor, got "
            f"{getattr(loss, 'shape', type(loss).__name__)}"
        )
    if not loss.dtype.is_floating_point or not torch.isfinite(loss):
        checker.fail(f"loss must be a finite float, got {loss}")
    loss.backward()
    if inputs.grad is None or not torch.any(inputs.grad != 0):
        checker.fail("the loss's gradient does not reach the hidden states")
    parameters = [p for p in module.parameters()]
    if parameters and all(p.grad is None for p in parameters):
        checker.fail("the loss's gradient reaches none of the head's parameters")
    checker.passed("loss is a finite scalar; gradients reach the head and its input")

    if parameters:
        learner = copy.deepcopy(module)
        learner.zero_grad(set_to_none=True)
        optimiser = torch.optim.Adam(learner.parameters(), lr=1e-2)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            first = None
            for _ in range(30):
                optimiser.zero_grad()
                step_loss = learner.loss(learner(hidden), target)
                step_loss.backward()
                optimiser.step()
                first = float(step_loss.detach()) if first is None else first
            with torch.no_grad():
                last = float(learner.loss(learner.eval()(hidden), target))
        if not last < first:
            checker.fail(
                f"30 Adam steps on one fixed batch did not lower the loss "
                f"({first:.4g} -> {last:.4g})"
            )
        checker.passed("a few optimiser steps lower the loss")
    module.zero_grad(set_to_none=True)

    def rebuild(offset=0):
        return checker.build(structural, seed + offset)

    _check_seeded(checker, rebuild, hidden)
    _check_module_roundtrip(checker, module, lambda: rebuild(1), hidden)
    _check_devices(checker, module, hidden, _devices(devices))
    if forecaster:
        _check_in_forecaster(
            checker,
            {"backbone": "none", "strategy": "full", **(forecaster_params or {})},
            sktime=sktime,
            devices=_devices(devices),
        )
    return checker.report
