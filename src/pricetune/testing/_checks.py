"""The contract checks behind :mod:`pricetune.testing`."""

from __future__ import annotations

import copy
import fnmatch
import functools
import io
import pickle
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

# tiny sizes: every check runs in about a second on a CPU
BATCH = 4
PATCH_LENGTH = 4
N_PATCHES = 3
HIDDEN_SIZE = 8
HORIZON = 3
# the forecaster settings of the in-forecaster checks: sktime's panel scenario
# has series of 10 points and fh=[1, 2, 3]
FORECASTER_SETTINGS = {
    "context_length": 6,
    "patch_length": 4,
    "max_epochs": 1,
    "batch_size": 16,
    "random_state": 0,
    "verbose": 0,
}
UNKNOWN_ARGUMENT = "pricetune_testing_unknown_argument"
KINDS = ("backbone", "head", "strategy", "augmentation")


class ContractError(AssertionError):
    """A component breaks its contract; the message says which one and how."""


@dataclass
class CheckReport:
    """What one ``check_*`` call verified.

    ``passed`` names the checks that ran and passed; ``notes`` holds
    observations that are not failures (a trainable parameter that never got
    a gradient, CUDA skipped because there is no GPU...).
    """

    kind: str
    name: str
    cls: type
    passed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.kind} {self.name!r} ({_qualname(self.cls)}): "]
        lines[0] += f"{len(self.passed)} checks passed"
        lines += [f"  ok: {check}" for check in self.passed]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class _Checker:
    """Shared plumbing: the component's label, failures and the report."""

    def __init__(self, kind: str, component, kwargs: Mapping | None):
        from pricetune.plugins import get_component, get_registry

        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if isinstance(component, str):
            self.cls = get_component(kind, component)
            self.name: str | None = component
        elif isinstance(component, type):
            self.cls = component
            self.name = next(
                (info.name for info in get_registry(kind) if info.cls is component),
                None,
            )
        else:
            raise TypeError(
                f"pass a {kind} class or its registered name, got {component!r}"
            )
        if kwargs is not None and not isinstance(kwargs, Mapping):
            raise TypeError(f"kwargs must be a dict or None, got {kwargs!r}")
        self.kind = kind
        self.kwargs = dict(kwargs or {})
        self.label = (
            f"{kind} {self.name or self.cls.__name__!r} ({_qualname(self.cls)})"
        )
        self.report = CheckReport(kind, self.name or self.cls.__name__, self.cls)

    def fail(self, message: str) -> None:
        raise ContractError(f"{self.label}: {message}")

    def passed(self, check: str) -> None:
        self.report.passed.append(check)

    def note(self, message: str) -> None:
        self.report.notes.append(message)

    def require_subclass(self, base: type) -> None:
        if not (isinstance(self.cls, type) and issubclass(self.cls, base)):
            self.fail(
                f"must subclass {_qualname(base)} (the contract in "
                "pricetune.components.contract)"
            )
        self.passed(f"subclasses {base.__name__}")

    def build(self, structural: dict, seed: int, **extra):
        """An instance built as the forecaster builds it, under ``seed``."""
        import torch

        arguments = {**structural, **self.kwargs, **extra}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                return self.cls(**arguments)
            except Exception as error:
                if extra:
                    raise
                raise ContractError(
                    f"{self.label}: could not be built with keyword arguments "
                    f"{sorted(arguments)}: {type(error).__name__}: {error}"
                ) from error

    def check_unknown_argument(self, structural: dict) -> None:
        try:
            self.build(structural, 0, **{UNKNOWN_ARGUMENT: 1})
        except TypeError:
            self.passed("rejects an unknown keyword argument with TypeError")
            return
        except Exception as error:  # noqa: BLE001 - reported below
            self.fail(
                f"an unknown keyword argument ({UNKNOWN_ARGUMENT}=1) must raise "
                f"TypeError so that typos in {self.kind}_kwargs are caught; it "
                f"raised {type(error).__name__}: {error}"
            )
        self.fail(
            f"accepted an unknown keyword argument ({UNKNOWN_ARGUMENT}=1) "
            f"silently; it must raise TypeError so that typos in "
            f"{self.kind}_kwargs are caught (do not take **kwargs, or check them)"
        )

    def check_tensor(self, value, what: str, shape: tuple, dtype=None) -> None:
        import torch

        dtype = dtype or torch.float32
        if not isinstance(value, torch.Tensor):
            self.fail(f"{what} must be a torch.Tensor, got {type(value).__name__}")
        if tuple(value.shape) != tuple(shape):
            self.fail(f"{what} has shape {tuple(value.shape)}, expected {shape}")
        if value.dtype != dtype:
            self.fail(f"{what} has dtype {value.dtype}, expected {dtype}")
        if not torch.isfinite(value).all():
            self.fail(f"{what} holds NaN or infinite values")

    def check_close(self, actual, expected, what: str, atol=1e-5, rtol=1e-4) -> None:
        import torch

        if not torch.allclose(actual, expected, atol=atol, rtol=rtol):
            difference = float((actual - expected).abs().max())
            self.fail(f"{what} (largest difference {difference:.3g})")


def _same_state(first: dict, second: dict) -> str | None:
    """Where two state dicts differ, or ``None``."""
    import torch

    if set(first) != set(second):
        only = sorted(set(first) ^ set(second))[:5]
        return f"their state dicts have different keys ({only})"
    for key in first:
        a, b = first[key], second[key]
        if isinstance(a, torch.Tensor):
            if a.shape != b.shape or not torch.equal(a, b):
                return f"{key!r} differs"
    return None


def _roundtrip_state(module) -> dict:
    import torch

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _devices(devices: Iterable[str] | None) -> list[str]:
    import torch

    if devices is None:
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return list(devices)


def _check_module_roundtrip(checker: _Checker, module, rebuild, inputs) -> None:
    """save/load: a state dict written with ``torch.save`` and read with
    ``weights_only=True`` loads into a fresh instance (other seed), which
    then computes the same outputs."""
    import torch

    module.eval()
    with torch.no_grad():
        expected = module(inputs)
    try:
        state = _roundtrip_state(module)
    except Exception as error:  # noqa: BLE001 - reported
        checker.fail(
            f"its state dict does not survive torch.save/torch.load(weights_only="
            f"True): {type(error).__name__}: {error}"
        )
    fresh = rebuild()
    try:
        fresh.load_state_dict(state, strict=True)
    except Exception as error:  # noqa: BLE001 - reported
        checker.fail(
            f"a saved state dict does not load into a new instance "
            f"(load_state_dict strict=True): {error}"
        )
    fresh.eval()
    with torch.no_grad():
        actual = fresh(inputs)
    checker.check_close(
        actual,
        expected,
        "an instance loaded from a saved state dict computes different outputs",
    )
    checker.passed("state dict save/load round trip gives the same outputs")


def _check_seeded(checker: _Checker, build, inputs) -> None:
    """Two instances built under the same seed are identical."""
    import torch

    first, second = build(), build()
    difference = _same_state(first.state_dict(), second.state_dict())
    if difference is not None:
        checker.fail(
            f"two instances built under the same torch seed differ: {difference}; "
            "draw random numbers from torch's generator only"
        )
    first.eval()
    second.eval()
    with torch.no_grad():
        checker.check_close(
            second(inputs),
            first(inputs),
            "two instances built under the same seed compute different outputs",
            atol=0,
            rtol=0,
        )
    checker.passed("deterministic under a seed")


def _check_batch_independence(checker: _Checker, module, inputs, what: str) -> None:
    import torch

    module.eval()
    with torch.no_grad():
        whole = module(inputs)
        again = module(inputs)
        alone = module(inputs[:1])
    checker.check_close(
        again,
        whole,
        f"{what} twice on the same input in eval mode gives different outputs",
        atol=0,
        rtol=0,
    )
    checker.check_close(
        alone,
        whole[:1],
        f"in eval mode, a sample's {what} output depends on the other samples "
        "of its batch",
    )
    checker.passed("eval outputs are deterministic and independent across a batch")


def _check_devices(checker: _Checker, module, inputs, devices) -> None:
    """The module moves to each device and computes what it does on the CPU."""
    import torch

    module.eval()
    with torch.no_grad():
        reference = module(inputs)
    for device in devices:
        if device == "cpu":
            continue
        if device.startswith("cuda") and not torch.cuda.is_available():
            checker.note(f"{device} not checked: no CUDA device")
            continue
        moved = copy.deepcopy(module).to(device)
        with torch.no_grad():
            output = moved(inputs.to(device))
            if not isinstance(output, torch.Tensor) or output.device.type != (
                torch.device(device).type
            ):
                checker.fail(
                    f"on {device}, forward returned a tensor on "
                    f"{getattr(output, 'device', '?')}; keep outputs on the "
                    "input's device"
                )
            checker.check_tensor(
                output, f"forward output on {device}", tuple(reference.shape)
            )
            checker.check_close(
                output.cpu(),
                reference,
                f"forward on {device} differs from the CPU",
                atol=1e-3,
                rtol=1e-2,
            )
            with torch.autocast(
                device_type=torch.device(device).type, dtype=torch.bfloat16
            ):
                autocast = moved(inputs.to(device))
            if not torch.isfinite(autocast.float()).all():
                checker.fail(f"forward under bfloat16 autocast on {device} gives NaN")
        checker.passed(f"runs on {device} (float32 and bfloat16 autocast)")


# ------------------------------------------------------------------ backbone
def check_backbone(
    backbone,
    kwargs: Mapping | None = None,
    *,
    patch_length: int = PATCH_LENGTH,
    n_patches: int = N_PATCHES,
    devices: Iterable[str] | None = None,
    forecaster: bool = True,
    forecaster_params: Mapping | None = None,
    sktime: bool = False,
    seed: int = 0,
) -> CheckReport:
    """Check a backbone class (or registered name) against the contract.

    Parameters
    ----------
    backbone : type or str
        the class, or the name it is registered under.
    kwargs : dict, optional
        ``backbone_kwargs`` to build it with (a checkpoint path, a small
        ``hidden_size``...).
    patch_length, n_patches : int
        the structural arguments of the module-level checks.
    devices : iterable of str, optional
        default: the CPU, and CUDA when a GPU is present.
    forecaster : bool, default True
        also fit, predict, save and load a ``FineTunedPriceForecaster`` using
        the backbone (with head ``"linear"`` and strategy ``"full"`` unless
        ``forecaster_params`` says otherwise).
    forecaster_params : dict, optional
        extra forecaster parameters for that check.
    sktime : bool, default False
        also run sktime's ``check_estimator`` on that forecaster (slow:
        about a minute).
    seed : int, default 0
    """
    import torch

    from pricetune.components.contract import Backbone

    checker = _Checker("backbone", backbone, kwargs)
    checker.require_subclass(Backbone)
    structural = {"patch_length": patch_length, "n_patches": n_patches}
    module = checker.build(structural, seed)
    checker.check_unknown_argument(structural)

    hidden_size = getattr(module, "hidden_size", None)
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int):
        checker.fail(f"hidden_size must be an int, got {hidden_size!r}")
    if hidden_size < 1:
        checker.fail(f"hidden_size must be positive, got {hidden_size}")
    for attribute in ("embedding", "body"):
        if attribute not in dir(module):
            checker.fail(
                f"has no {attribute!r} attribute; call super().__init__() first, "
                "which sets embedding and body to None"
            )
        value = getattr(module, attribute)
        if value is not None and not isinstance(value, torch.nn.Module):
            checker.fail(
                f"{attribute} must be an nn.Module or None, got {type(value).__name__}"
            )
    names = module.position_embedding_names
    if not isinstance(names, tuple | list) or not all(
        isinstance(n, str) for n in names
    ):
        checker.fail(f"position_embedding_names must be a tuple of str, got {names!r}")
    targets = module.lora_target_modules
    if targets is not None and (
        not isinstance(targets, list | tuple)
        or not all(isinstance(t, str) for t in targets)
    ):
        checker.fail(
            f"lora_target_modules must be a list of str or None, got {targets!r}"
        )
    checker.passed("has hidden_size, embedding, body and the optional attributes")

    generator = torch.Generator().manual_seed(seed)
    patches = torch.randn(BATCH, n_patches, patch_length, generator=generator)
    module.eval()
    with torch.no_grad():
        output = module(patches)
    checker.check_tensor(
        output,
        f"forward((batch={BATCH}, n_patches={n_patches}, patch_length="
        f"{patch_length})) output",
        (BATCH, n_patches, hidden_size),
    )
    checker.passed(
        "forward: (batch, n_patches, patch_length) -> "
        "(batch, n_patches, hidden_size), float32"
    )
    _check_batch_independence(checker, module, patches, "forward")

    # gradients flow from the output back to the patches and the embedding
    module.train()
    module.requires_grad_(True)
    inputs = patches.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    module(inputs).square().mean().backward()
    if inputs.grad is None or not torch.any(inputs.grad != 0):
        checker.fail("no gradient flows from the output back to the input patches")
    if module.embedding is not None:
        dead = [
            name
            for name, parameter in module.embedding.named_parameters()
            if parameter.grad is None or not torch.any(parameter.grad != 0)
        ]
        if dead:
            checker.fail(
                f"embedding parameters {dead} get no gradient: forward must use "
                "the embedding"
            )
    unused = [
        name for name, parameter in module.named_parameters() if parameter.grad is None
    ]
    if unused:
        checker.note(f"parameters that forward never uses: {unused[:10]}")
    module.zero_grad(set_to_none=True)
    checker.passed("gradients flow back to the patches and the embedding")

    def rebuild(offset=0):
        return checker.build(structural, seed + offset)

    _check_seeded(checker, rebuild, patches)
    _check_module_roundtrip(checker, module, lambda: rebuild(1), patches)
    _check_devices(checker, module, patches, _devices(devices))
    if forecaster:
        _check_in_forecaster(
            checker,
            {"head": "linear", "strategy": "full", **(forecaster_params or {})},
            sktime=sktime,
            devices=_devices(devices),
        )
    return checker.report


# ---------------------------------------------------------------------- head
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


# ------------------------------------------------------------------ strategy
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


# ------------------------------------------------------------- in forecaster
_registered_in_process: dict[tuple[str, type], str] = {}
_counter: list[None] = []


def _registered_name(checker: _Checker) -> str:
    """The component's registered name; an unregistered class is registered
    in-process under a generated name (once per class)."""
    from types import SimpleNamespace

    from pricetune.hookspecs import hookimpl
    from pricetune.plugins import _HOOK_FOR_KIND, get_registry, register_plugin

    if checker.name is not None:
        return checker.name
    key = (checker.kind, checker.cls)
    name = _registered_in_process.get(key)
    registry = get_registry(checker.kind)
    if name is None or name not in registry or registry.get(name) is not checker.cls:
        # first time, or the plugins were reloaded since
        _counter.append(None)
        number = len(_counter)
        name = f"pricetune-testing-{checker.kind}-{number}"
        cls, kind, added = checker.cls, checker.kind, name

        @hookimpl
        def register(registry):
            registry.add(added, cls)

        plugin = SimpleNamespace(**{_HOOK_FOR_KIND[kind]: register})
        register_plugin(plugin, name=f"pricetune-testing-{number}")
        if name not in get_registry(kind):
            checker.fail("could not be registered in-process for the forecaster check")
        _registered_in_process[key] = name
    return _registered_in_process[key]


def _importable(cls: type) -> bool:
    """Whether pickle can find ``cls`` by its module and qualified name."""
    import importlib

    try:
        found = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return False
    return found is cls


def _series(length: int = 48, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    values = 60 + np.cumsum(rng.normal(0, 1, length))
    index = pd.period_range("2000-01", periods=length, freq="M")
    return pd.Series(values, index=index, name="price")


@contextmanager
def _temporary_directory():
    path = tempfile.mkdtemp(prefix="pricetune-testing-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _check_in_forecaster(
    checker: _Checker, params: dict, *, sktime: bool, devices
) -> None:
    """Fit, predict, refit, pickle, save and load a forecaster that uses the
    component; optionally sktime's ``check_estimator``."""
    import pandas as pd

    from pricetune import FineTunedPriceForecaster

    params = {**FORECASTER_SETTINGS, "device": "cpu", **params}
    params[checker.kind] = _registered_name(checker)
    if checker.kwargs:
        params[f"{checker.kind}_kwargs"] = checker.kwargs
    y, fh = _series(), [1, 2, 3]
    shown = {k: v for k, v in params.items() if k not in FORECASTER_SETTINGS}

    def fitted(**overrides):
        forecaster = FineTunedPriceForecaster(**{**params, **overrides})
        try:
            return forecaster.fit(y, fh=fh)
        except Exception as error:
            raise ContractError(
                f"{checker.label}: FineTunedPriceForecaster({shown}) failed to fit: "
                f"{type(error).__name__}: {error}"
            ) from error

    forecaster = fitted()
    prediction = forecaster.predict()
    if len(prediction) != len(fh) or not np.isfinite(prediction.to_numpy()).all():
        checker.fail(f"the forecaster's predict gave {prediction.to_numpy()}")
    if forecaster.get_tag("capability:pred_int"):
        interval = forecaster.predict_interval(coverage=0.8)
        lower, upper = interval.iloc[:, 0].to_numpy(), interval.iloc[:, 1].to_numpy()
        if not (np.isfinite(interval.to_numpy()).all() and np.all(lower <= upper)):
            checker.fail(f"predict_interval gave crossing or NaN bounds: {interval}")
    checker.passed("a FineTunedPriceForecaster fits and predicts with it")

    again = fitted().predict()
    if not np.array_equal(again.to_numpy(), prediction.to_numpy()):
        checker.fail(
            "two fits with random_state=0 on the CPU give different forecasts "
            f"({prediction.to_numpy()} vs {again.to_numpy()})"
        )
    checker.passed("forecaster fits are reproducible with a seed")

    if _importable(checker.cls):
        restored = pickle.loads(pickle.dumps(forecaster))
        pd.testing.assert_series_equal(restored.predict(), prediction)
    else:
        checker.note(
            f"pickle not checked: {checker.cls.__qualname__} cannot be imported "
            f"from {checker.cls.__module__!r} (a class made in a function or a "
            "notebook); users of a packaged plugin can pickle"
        )
    with _temporary_directory() as directory:
        path = forecaster.save(f"{directory}/model", serialization_format="safetensors")
        try:
            loaded = FineTunedPriceForecaster.load(path)
        except Exception as error:  # noqa: BLE001 - reported
            checker.fail(
                f"a forecaster saved with serialization_format='safetensors' does "
                f"not load: {type(error).__name__}: {error}"
            )
        if not np.allclose(loaded.predict().to_numpy(), prediction.to_numpy()):
            checker.fail("a forecaster loaded from safetensors forecasts differently")
    checker.passed("the fitted forecaster survives pickle and safetensors save/load")

    for device in devices:
        if device == "cpu":
            continue
        import torch

        if device.startswith("cuda") and not torch.cuda.is_available():
            continue
        on_device = fitted(device=device).predict()
        if not np.isfinite(on_device.to_numpy()).all():
            checker.fail(f"the forecaster fitted on {device} predicts NaN")
        checker.passed(f"the forecaster fits and predicts on {device}")

    if sktime:
        from sktime.utils.estimator_checks import check_estimator

        try:
            results = check_estimator(
                FineTunedPriceForecaster(**params), raise_exceptions=True, verbose=False
            )
        except Exception as error:
            raise ContractError(
                f"{checker.label}: sktime's check_estimator failed for "
                f"FineTunedPriceForecaster({shown}): {type(error).__name__}: {error}"
            ) from error
        failed = {
            name: result for name, result in results.items() if result != "PASSED"
        }
        if failed:
            checker.fail(f"sktime's check_estimator failed: {failed}")
        checker.passed(f"sktime's check_estimator passes ({len(results)} checks)")


# -------------------------------------------------------------------- plugin
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


def _check_augmentation_in_forecaster(checker: _Checker, instance) -> None:
    from pricetune import FineTunedPriceForecaster
    from pricetune.components.contract import Augmentation

    class Counting(Augmentation):
        """Wraps the augmentation and counts the windows it is given."""

        def __init__(self):
            self.windows = 0

        def __call__(self, context, target):
            self.windows += len(context)
            return instance(context, target)

    counting = Counting()
    params = {
        **FORECASTER_SETTINGS,
        "backbone": "none",
        "strategy": "full",
        "device": "cpu",
        "augmentations": [counting],
    }
    try:
        forecaster = FineTunedPriceForecaster(**params).fit(_series(), fh=[1, 2, 3])
    except Exception as error:
        raise ContractError(
            f"{checker.label}: a forecaster training with it failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    if counting.windows == 0:
        checker.fail("was never called while the forecaster trained")
    seen = counting.windows
    prediction = forecaster.predict()
    if not np.isfinite(prediction.to_numpy()).all():
        checker.fail("a forecaster trained with it predicts NaN or infinity")
    if counting.windows != seen:
        checker.fail("was called during predict; augmentations are for training")
    checker.passed("trains a forecaster, and predict never calls it")


_CHECKS = {
    "backbone": check_backbone,
    "head": check_head,
    "strategy": check_strategy,
    "augmentation": check_augmentation,
}


def check_component(kind: str, component, kwargs: Mapping | None = None, **options):
    """``check_backbone``, ``check_head``, ``check_strategy`` or
    ``check_augmentation``, by ``kind``."""
    if kind not in _CHECKS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return _CHECKS[kind](component, kwargs, **options)


def check_plugin(
    distribution: str,
    kwargs: Mapping[str, Mapping] | None = None,
    *,
    skip: Iterable[str] = (),
    **options,
) -> list[CheckReport]:
    """Check every component that an installed distribution registers.

    Parameters
    ----------
    distribution : str
        the distribution's name (``"pricetune-example"``), or the plugin's
        entry-point name.
    kwargs : dict, optional
        ``{component name: kwargs}`` for components that need arguments
        (a checkpoint path...).
    skip : iterable of str
        component names not to check.
    **options
        passed to every check (``sktime=True``, ``devices=...``).

    Raises :class:`ContractError` when the plugin was skipped at load time,
    registers nothing, or any component fails its checks.
    """
    from pricetune.plugins import broken_plugins, list_components

    broken = [
        plugin
        for plugin in broken_plugins()
        if distribution in (plugin.distribution, plugin.name)
    ]
    if broken:
        plugin = broken[0]
        raise ContractError(
            f"plugin {plugin.name!r} ({plugin.distribution}) was skipped at "
            f"{plugin.stage}: {plugin.error}"
        )
    infos = [
        info
        for info in list_components()
        if distribution in (info.distribution, info.plugin)
    ]
    if not infos:
        raise ContractError(
            f"no component is registered by {distribution!r}: is it installed "
            "(pip install ...) with an entry point in the 'pricetune' group?"
        )
    kwargs = dict(kwargs or {})
    unknown = sorted(set(kwargs) - {info.name for info in infos})
    if unknown:
        raise ValueError(
            f"kwargs names components that {distribution!r} lacks: {unknown}"
        )
    reports = []
    for info in infos:
        if info.name in skip:
            continue
        reports.append(
            check_component(info.kind, info.name, kwargs.get(info.name), **options)
        )
    return reports
