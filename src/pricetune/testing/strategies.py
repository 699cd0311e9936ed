"""``check_strategy``: a strategy against its contract, applied to a small
model that trains while the frozen parameters are watched; and
``reference_checkpoint``, the tiny GPT-2 it applies strategies to."""

from __future__ import annotations

import fnmatch
import functools
import shutil
import tempfile
from collections.abc import Iterable, Mapping

from pricetune.testing._common import (
    BATCH,
    HORIZON,
    PATCH_LENGTH,
    CheckReport,
    _Checker,
    _devices,
    _roundtrip_state,
    _same_state,
)
from pricetune.testing.in_forecaster import _check_in_forecaster


@functools.cache
def reference_checkpoint() -> str:
    """A tiny randomly initialised GPT-2 saved as a local Hugging Face
    checkpoint (2 layers, width 16), made once per process in a temporary
    directory: the default backbone (``"hf"``) of :func:`check_strategy`."""
    import atexit

    import torch
    from transformers import GPT2Config, GPT2Model

    path = tempfile.mkdtemp(prefix="pricetune-testing-gpt2-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    from pricetune.components.huggingface import quiet_transformers

    config = GPT2Config(
        n_layer=2,
        n_embd=16,
        n_head=2,
        n_positions=32,
        vocab_size=16,
        bos_token_id=0,
        eos_token_id=0,
    )
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(0)
        GPT2Model(config).save_pretrained(path)
    return path


def _build_model(
    backbone_cls, backbone_kwargs, head_cls, head_kwargs, context_length, horizon
):
    from pricetune.nn.model import PatchForecastModel, count_patches

    stride = max(1, PATCH_LENGTH // 2)
    n_patches = count_patches(context_length, PATCH_LENGTH, stride)
    backbone = backbone_cls(
        patch_length=PATCH_LENGTH, n_patches=n_patches, **backbone_kwargs
    )
    head = head_cls(
        hidden_size=backbone.hidden_size,
        n_patches=n_patches,
        horizon=horizon,
        **head_kwargs,
    )
    return PatchForecastModel(
        backbone,
        head,
        context_length=context_length,
        patch_length=PATCH_LENGTH,
        patch_stride=stride,
        horizon=horizon,
    )


def _matches(name: str, patterns: Iterable[str]) -> str | None:
    for pattern in patterns:
        if fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern + "."):
            return pattern
    return None


def check_strategy(
    strategy,
    kwargs: Mapping | None = None,
    *,
    backbone="hf",
    backbone_kwargs: Mapping | None = None,
    head="linear",
    head_kwargs: Mapping | None = None,
    trainable: Iterable[str] | None = None,
    frozen: Iterable[str] | None = None,
    steps: int = 2,
    devices: Iterable[str] | None = None,
    forecaster: bool = True,
    forecaster_params: Mapping | None = None,
    sktime: bool = False,
    seed: int = 0,
) -> CheckReport:
    """Check a strategy class (or registered name) against the contract.

    The strategy is applied to a small model (by default a tiny GPT-2 through
    backbone ``"hf"``, see :func:`reference_checkpoint`, and head
    ``"linear"``), which then trains for ``steps`` optimiser steps per epoch
    over two epochs, calling the strategy's optional hooks
    (``parameter_groups``, ``on_train_begin``, ``on_epoch_start``,
    ``on_optimizer_step``) as the trainer does. Checked:

    * at least one parameter trains, and at least one gets a gradient;
    * **no gradient leaks into a frozen part**: a parameter whose
      ``requires_grad`` is off never changes in an optimiser step;
    * what the strategy says: parameters matching a ``frozen`` pattern are
      frozen, those matching a ``trainable`` pattern train; with
      ``trainable`` alone, *every other* parameter must be frozen. Patterns
      are :mod:`fnmatch` patterns or dotted prefixes of parameter names
      (``"head"``, ``"backbone.body.*.weight"``);
    * ``parameter_groups`` holds trainable parameters only, each once;
    * applying it under a seed is deterministic; the trained state dict
      loads into a new model with the strategy applied and computes the same
      outputs;
    * on a backbone without a body (``"none"``), ``apply`` either works or
      raises ``ValueError`` naming the backbone;
    * optionally, a forecaster fits with it (backbone as above).
    """
    import torch

    from pricetune.components.contract import Strategy
    from pricetune.plugins import get_component

    checker = _Checker("strategy", strategy, kwargs)
    checker.require_subclass(Strategy)
    checker.build({}, seed)
    checker.check_unknown_argument({})

    backbone_kwargs = dict(backbone_kwargs or {})
    backbone_cls = (
        get_component("backbone", backbone) if isinstance(backbone, str) else backbone
    )
    if backbone_cls.__name__ == "HuggingFaceBackbone" and "path" not in backbone_kwargs:
        backbone_kwargs["path"] = reference_checkpoint()
    head_cls = get_component("head", head) if isinstance(head, str) else head
    head_kwargs = dict(head_kwargs or {})
    context_length = 8

    def applied(model_seed: int, device: str = "cpu"):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(model_seed)
            model = _build_model(
                backbone_cls,
                backbone_kwargs,
                head_cls,
                head_kwargs,
                context_length,
                HORIZON,
            )
            instance = checker.build({}, model_seed)
            try:
                instance.apply(model)
            except ValueError as error:
                checker.fail(
                    f"cannot apply to {backbone_cls.__name__}: {error}. Pass "
                    "backbone=... (and backbone_kwargs) naming a backbone it "
                    "supports"
                )
            except Exception as error:  # noqa: BLE001 - reported
                checker.fail(
                    f"apply raised {type(error).__name__} on {backbone_cls.__name__} "
                    f"(only ValueError is allowed, for a backbone it cannot "
                    f"adapt): {error}"
                )
        return model.to(device), instance

    model, _ = applied(seed)
    names = [name for name, _ in model.named_parameters()]
    trainable_now = {name for name, p in model.named_parameters() if p.requires_grad}
    if not trainable_now:
        checker.fail("leaves no parameter trainable")
    _check_declared(checker, names, trainable_now, trainable, frozen)

    generator = torch.Generator().manual_seed(seed)
    contexts = 50 + torch.randn(BATCH, context_length, generator=generator).cumsum(1)
    targets = torch.randn(BATCH, HORIZON, generator=generator)
    model.eval()
    with torch.no_grad():
        output = model(contexts)
    if not isinstance(output, torch.Tensor) or output.shape[:2] != (BATCH, HORIZON):
        checker.fail(
            "after apply, the model's output has shape "
            f"{getattr(output, 'shape', '?')}, "
            f"expected ({BATCH}, {HORIZON}, n_outputs): a wrapped body must keep "
            "the backbone's forward working"
        )
    checker.passed("the model still computes forecasts of the right shape after apply")

    for device in _devices(devices):
        if device.startswith("cuda") and not torch.cuda.is_available():
            checker.note(f"{device} not checked: no CUDA device")
            continue
        trained, trained_strategy = applied(seed, device)
        _train_and_watch(
            checker,
            trained,
            trained_strategy,
            contexts.to(device),
            targets.to(device),
            steps,
        )
        checker.passed(f"trains on {device}; frozen parameters never change")
        if device == "cpu":
            model = trained

    again, _ = applied(seed)
    fresh, _ = applied(seed)
    difference = _same_state(again.state_dict(), fresh.state_dict())
    if difference is not None or {
        n for n, p in again.named_parameters() if p.requires_grad
    } != {n for n, p in fresh.named_parameters() if p.requires_grad}:
        checker.fail(
            "applying it twice under the same seed gives different models: "
            f"{difference or 'different trainable parameters'}"
        )
    checker.passed("deterministic under a seed")

    other, _ = applied(seed + 1)
    model.eval()
    try:
        other.load_state_dict(_roundtrip_state(model), strict=True)
    except Exception as error:  # noqa: BLE001 - reported
        checker.fail(
            f"the trained state dict does not load into a new model with the "
            f"strategy applied: {type(error).__name__}: {error}"
        )
    other.eval()
    with torch.no_grad():
        checker.check_close(
            other(contexts),
            model(contexts),
            "a model loaded from the trained state dict computes different outputs",
        )
    checker.passed("state dict save/load round trip gives the same outputs")

    _check_no_body(checker, head_cls, head_kwargs, context_length, seed)
    if forecaster:
        params = {"backbone": backbone, "head": head, **(forecaster_params or {})}
        if isinstance(backbone, str) and backbone_kwargs:
            params.setdefault("backbone_kwargs", backbone_kwargs)
        if isinstance(head, str) and head_kwargs:
            params.setdefault("head_kwargs", head_kwargs)
        if isinstance(backbone, str) and isinstance(head, str):
            _check_in_forecaster(
                checker, params, sktime=sktime, devices=_devices(devices)
            )
        else:
            checker.note("forecaster not checked: backbone and head must be names")
    return checker.report


def _check_declared(checker, names, trainable_now, trainable, frozen) -> None:
    trainable = list(trainable or [])
    frozen_patterns = list(frozen or [])
    for name in names:
        pattern = _matches(name, frozen_patterns)
        if pattern is not None and name in trainable_now:
            checker.fail(
                f"parameter {name!r} should be frozen (it matches {pattern!r}) but "
                "is trainable: gradients would leak into a frozen part"
            )
        pattern = _matches(name, trainable)
        if pattern is not None and name not in trainable_now:
            checker.fail(
                f"parameter {name!r} should train (it matches {pattern!r}) but "
                "is frozen"
            )
        if trainable and frozen is None and pattern is None and name in trainable_now:
            checker.fail(
                f"parameter {name!r} is trainable, but only parameters matching "
                f"{trainable} should train: gradients leak into a part that "
                "should stay frozen"
            )
    for pattern in [*trainable, *frozen_patterns]:
        if not any(_matches(name, [pattern]) for name in names):
            checker.fail(f"pattern {pattern!r} matches no parameter of the model")
    if trainable or frozen_patterns:
        checker.passed("trains exactly what it says (trainable/frozen patterns)")


def _train_and_watch(checker, model, strategy, contexts, targets, steps) -> None:
    """A small training run, as the trainer does it, watching the frozen
    parameters at every optimiser step."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = _parameter_groups(checker, model, strategy, trainable)
    optimiser = torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.1)
    by_id = {id(p): name for name, p in model.named_parameters()}
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    got_gradient: set[str] = set()
    _call_hook(checker, strategy, "on_train_begin", model, 2 * steps)
    step = 0
    model.train()
    for epoch in (1, 2):
        _call_hook(checker, strategy, "on_epoch_start", model, epoch)
        for _ in range(steps):
            frozen = {
                name: p.detach().clone()
                for name, p in model.named_parameters()
                if not p.requires_grad
            }
            optimiser.zero_grad(set_to_none=True)
            loss = model.head.loss(model(contexts), targets)
            loss.backward()
            for parameter in trainable:
                if parameter.grad is not None:
                    got_gradient.add(by_id[id(parameter)])
            optimiser.step()
            step += 1
            for name, parameter in model.named_parameters():
                if name in frozen and not torch.equal(parameter.detach(), frozen[name]):
                    checker.fail(
                        f"frozen parameter {name!r} (requires_grad=False) changed "
                        f"in optimiser step {step}: a gradient leaks into a "
                        "frozen part (a tied weight, or an optimiser group "
                        "holding it?)"
                    )
            _call_hook(checker, strategy, "on_optimizer_step", model, step)
    if not got_gradient:
        checker.fail("none of the trainable parameters received a gradient")
    changed = [
        name
        for name, parameter in model.named_parameters()
        if not torch.equal(parameter.detach(), start[name])
    ]
    if not changed:
        checker.fail(f"no parameter changed in {2 * steps} optimiser steps")
    never = sorted(by_id[id(p)] for p in trainable if by_id[id(p)] not in got_gradient)
    if never:
        checker.note(
            f"trainable parameters that never received a gradient: {never[:10]}"
        )


def _parameter_groups(checker, model, strategy, trainable) -> list[dict]:
    method = getattr(strategy, "parameter_groups", None)
    if method is None:
        return [{"params": trainable}]
    try:
        from pricetune.training import parameter_groups
    except ImportError:  # an older pricetune: no optional hooks
        return [{"params": trainable}]
    try:
        return parameter_groups(model, strategy, trainable, 1e-2)
    except (TypeError, ValueError) as error:
        checker.fail(f"parameter_groups is wrong: {error}")


def _call_hook(checker, strategy, hook: str, *args) -> None:
    method = getattr(strategy, hook, None)
    if method is None:
        return
    try:
        method(*args)
    except Exception as error:  # noqa: BLE001 - reported
        checker.fail(f"{hook} raised {type(error).__name__}: {error}")


def _check_no_body(checker, head_cls, head_kwargs, context_length, seed) -> None:
    """On a backbone without a body, apply works or raises ValueError naming it."""
    import torch

    from pricetune.components.simple_backbones import NoBackbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_model(
            NoBackbone, {}, head_cls, head_kwargs, context_length, HORIZON
        )
        try:
            checker.build({}, seed).apply(model)
        except ValueError as error:
            if "NoBackbone" not in str(error):
                checker.fail(
                    "on a backbone without a body (NoBackbone) it raised "
                    f"ValueError({str(error)!r}), which must name the backbone "
                    "class so that users know which one it cannot adapt"
                )
            checker.passed("raises ValueError naming a backbone it cannot adapt")
            return
        except Exception as error:  # noqa: BLE001 - reported
            checker.fail(
                f"on a backbone without a body (NoBackbone) apply raised "
                f"{type(error).__name__}: {error}; it must work or raise ValueError"
            )
    checker.passed("applies to a backbone without a body")
