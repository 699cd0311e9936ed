"""What every check of :mod:`pricetune.testing` shares.

The error and report types, the tiny sizes the checks build components at,
:class:`_Checker` (a component's label, failures and report) and the checks
common to the module-level components: seeding, batch independence, the
state-dict round trip and devices. The other modules of the kit import this
one, never the reverse.
"""

from __future__ import annotations

import copy
import io
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from pricetune.registry import KINDS

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
    # the component in one network (the default would train three)
    "n_ensemble": 1,
    "random_state": 0,
    "verbose": 0,
}
UNKNOWN_ARGUMENT = "pricetune_testing_unknown_argument"


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
