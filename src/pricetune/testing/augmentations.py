"""``check_augmentation``: a training-window augmentation against its
contract."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pricetune.testing._common import (
    HORIZON,
    UNKNOWN_ARGUMENT,
    CheckReport,
    _Checker,
    _devices,
)
from pricetune.testing.in_forecaster import _check_augmentation_in_forecaster


def check_augmentation(
    augmentation,
    kwargs: Mapping | None = None,
    *,
    devices: Iterable[str] | None = None,
    forecaster: bool = True,
    seed: int = 0,
) -> CheckReport:
    """Check an augmentation class (or registered name) against the contract.

    It must reject unknown keyword arguments, return new float32 tensors of
    the input shapes on the input device without touching the inputs, give
    the same result for the same torch seed, and change something at its
    defaults (an augmentation that never does is a no-op). With
    ``forecaster``, a forecaster trains with it, its predictions are
    finite, and ``predict`` never calls it.
    """
    import torch

    from pricetune.components.contract import Augmentation

    checker = _Checker("augmentation", augmentation, kwargs)
    checker.require_subclass(Augmentation)
    instance = checker.build({}, seed)
    try:
        checker.cls(**checker.kwargs, **{UNKNOWN_ARGUMENT: 1})
    except TypeError:
        checker.passed("rejects unknown keyword arguments")
    else:
        checker.fail(f"accepted the unknown keyword argument {UNKNOWN_ARGUMENT!r}")
    generator = torch.Generator().manual_seed(seed)
    walk = 50 + torch.randn(32, 16 + HORIZON, generator=generator).cumsum(dim=1)
    for device in _devices(devices):
        context = walk[:, :16].to(device)
        target = walk[:, 16:].to(device)
        before = context.clone(), target.clone()

        def run(context=context, target=target, device=device):
            forked = [] if device == "cpu" else [torch.device(device).index or 0]
            with torch.random.fork_rng(devices=forked):
                torch.manual_seed(seed)
                return instance(context, target)

        result = run()
        if not (isinstance(result, tuple) and len(result) == 2):
            checker.fail(f"must return (context, target), got {type(result)}")
        for name, new, old in zip(("context", "target"), result, before, strict=True):
            if not isinstance(new, torch.Tensor):
                checker.fail(f"returned a {type(new).__name__} as the {name}")
            if new.shape != old.shape or new.dtype != torch.float32:
                checker.fail(
                    f"returned the {name} as {tuple(new.shape)} {new.dtype}; "
                    f"expected {tuple(old.shape)} torch.float32"
                )
            if new.device != old.device:
                checker.fail(f"moved the {name} from {old.device} to {new.device}")
            if not torch.isfinite(new).all():
                checker.fail(f"returned a {name} with NaN or infinite values")
        if not (torch.equal(context, before[0]) and torch.equal(target, before[1])):
            checker.fail("modified its input tensors in place; return new ones")
        again = run()
        if not all(torch.equal(a, b) for a, b in zip(result, again, strict=True)):
            checker.fail("gave different results under the same torch seed")
        if all(torch.equal(a, b) for a, b in zip(result, before, strict=True)):
            checker.fail("changed nothing in 32 windows at these settings")
        if getattr(checker.cls, "keeps_direction", False):
            moves = torch.sign(torch.cat(before, dim=1).diff(dim=1))
            if not torch.equal(torch.sign(torch.cat(result, dim=1).diff(dim=1)), moves):
                checker.fail(
                    "declares keeps_direction = True but turned a one-step move "
                    "of the window the other way"
                )
            checker.passed(f"keeps the direction of every move ({device})")
        checker.passed(f"shapes, dtype, device, inputs untouched, seeded ({device})")
    if forecaster:
        _check_augmentation_in_forecaster(checker, instance)
    return checker.report
