"""Pickling fitted estimators: a model on a GPU is pickled from a CPU copy,
so it unpickles on machines without one, and comes back to its device where
that device exists."""

from __future__ import annotations

import copy
import warnings

from pricetune.persistence.errors import PersistenceWarning


def cpu_copy(module):
    """A deep copy of ``module`` whose tensors are all on the CPU.

    The original is left as it is (same device, same tensors); no second copy
    of the weights is made on its device. Parameters keep ``requires_grad``,
    parameters shared between sub-modules stay shared, and plain tensor
    attributes of sub-modules are moved too.
    """
    import torch
    from torch import nn

    memo: dict[int, object] = {}
    for parameter in module.parameters():
        data = parameter.detach().to("cpu", copy=True)
        if type(parameter) is nn.Parameter:
            memo[id(parameter)] = nn.Parameter(data, parameter.requires_grad)
    for buffer in module.buffers():
        memo[id(buffer)] = buffer.detach().to("cpu", copy=True)
    copied = copy.deepcopy(module, memo)
    copied.to("cpu")  # parameter subclasses not covered above
    for sub_module in copied.modules():
        for name, value in list(vars(sub_module).items()):
            if isinstance(value, torch.Tensor) and value.device.type != "cpu":
                object.__setattr__(sub_module, name, value.to("cpu"))
    return copied


def _on_cpu(estimator) -> bool:
    import torch

    device = estimator.__dict__.get("device_")
    if isinstance(device, torch.device) and device.type != "cpu":
        return False
    model = estimator.__dict__["model_"]
    tensors = [*model.parameters(), *model.buffers()]
    return all(tensor.device.type == "cpu" for tensor in tensors)


def pickle_state(estimator, state: dict | None = None) -> dict:
    """The state to pickle (``__getstate__``): ``state`` (default: the
    instance's attributes; an estimator whose base class has its own
    ``__getstate__`` passes that one's result, e.g. scikit-learn's
    ``pickle_state(self, super().__getstate__())``), with a CPU copy of
    ``model_`` when the model lives on another device."""
    state = dict(estimator.__dict__ if state is None else state)
    if state.get("model_") is not None and not _on_cpu(estimator):
        state["model_"] = cpu_copy(state["model_"])
    return state


def _device_available(device) -> bool:
    import torch

    if device.type == "cpu":
        return True
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        return device.index is None or device.index < torch.cuda.device_count()
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return False


def unpickle_state(estimator, state: dict) -> None:
    """Restore pickled state (``__setstate__``): set the attributes, then
    :func:`restore_device`. (An estimator whose base class has its own
    ``__setstate__`` calls that one, then :func:`restore_device`.)"""
    estimator.__dict__.update(state)
    restore_device(estimator)


def restore_device(estimator) -> None:
    """Move an unpickled model back to ``device_``.

    The model comes back on ``device_`` where that device exists; elsewhere
    (a model fitted on a GPU, unpickled on a machine without one) it stays on
    the CPU, ``device_`` becomes the CPU, and a :class:`PersistenceWarning`
    says so.
    """
    model = estimator.__dict__.get("model_")
    device = estimator.__dict__.get("device_")
    if model is None or device is None or device.type == "cpu":
        return
    if _device_available(device):
        model.to(device)
        return
    import torch

    warnings.warn(
        f"this {type(estimator).__name__} was fitted on {device}, which is not "
        "available here; its model is on the CPU (device_ is now 'cpu')",
        PersistenceWarning,
        stacklevel=4,
    )
    model.to("cpu")
    estimator.device_ = torch.device("cpu")
    estimator._autocast_dtype = None
