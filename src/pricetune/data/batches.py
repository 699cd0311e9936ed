"""Where training batches are gathered: on the host, or on the device.

The :class:`~pricetune.training.Trainer` asks a batch source for the windows
of each mini-batch as float32 tensors on the training device.

* :class:`HostBatches` gathers rows from the windows' numpy arrays and copies
  them over (through pinned memory on CUDA). It costs no device memory.
* :class:`DeviceBatches` copies the data to the device once, as float32, and
  gathers each batch there, so an accelerator never waits for the host
  between steps. A panel is copied as its series end to end (the index map
  of :class:`~pricetune.data.windows.PanelWindows` is evaluated on the device);
  the windows of one series are copied as their rows.

:func:`batch_source` chooses :class:`DeviceBatches` whenever the copy is
small next to the memory it lands in, :class:`HostBatches` otherwise.
"""

from __future__ import annotations

import numpy as np
import torch

from pricetune.data.windows import PanelWindows

#: largest share of an accelerator's free memory the training data may take
DEVICE_MEMORY_SHARE = 0.25
#: largest float32 copy of the training data kept for a CPU run
HOST_COPY_LIMIT = 256 * 2**20


class HostBatches:
    """Batches gathered on the host and copied to ``device``."""

    def __init__(self, windows, device: torch.device):
        self.windows = windows
        self.device = device

    def order(self, indices: np.ndarray) -> np.ndarray:
        """The epoch's window numbers in the form :meth:`batch` takes."""
        return np.asarray(indices)

    def _to_device(self, array: np.ndarray | None) -> torch.Tensor | None:
        if array is None:
            return None
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    def batch(self, indices):
        """``(contexts, targets, covariates or None)`` on the device."""
        return tuple(map(self._to_device, self.windows.batch(np.asarray(indices))))


class DeviceBatches:
    """The windows' data copied to ``device`` once; batches gathered there.

    Gives the same float32 values as :class:`HostBatches` for the same
    window numbers.
    """

    def __init__(self, windows, device: torch.device):
        self.device = device

        def tensor(array, dtype=np.float32):
            # converted on the host: the device holds the float32 copy only
            return torch.as_tensor(
                np.ascontiguousarray(array, dtype=dtype), device=device
            )

        self.panel = isinstance(windows, PanelWindows)
        if self.panel:
            self.context_length = windows.context_length
            self.values = tensor(windows.values)
            self.offsets = tensor(windows.offsets, np.int64)
            self.window_offsets = tensor(windows.window_offsets, np.int64)
            self.span = torch.arange(
                windows.context_length + windows.horizon, device=device
            )
            self.covariates = None
            if windows.covariates_data is not None:
                self.covariates = tensor(windows.covariates_data)
        else:
            self.contexts = tensor(windows.contexts)
            self.targets = tensor(windows.targets)
            self.covariates = None
            if windows.covariates is not None:
                self.covariates = tensor(windows.covariates).flatten(start_dim=1)

    def order(self, indices: np.ndarray) -> torch.Tensor:
        """The epoch's window numbers, copied to the device once per epoch."""
        return torch.as_tensor(np.asarray(indices, dtype=np.int64), device=self.device)

    def batch(self, indices: torch.Tensor):
        """``(contexts, targets, covariates or None)``, gathered on the device."""
        if not self.panel:
            covariates = None if self.covariates is None else self.covariates[indices]
            return self.contexts[indices], self.targets[indices], covariates
        series = torch.searchsorted(self.window_offsets, indices, right=True) - 1
        starts = self.offsets[series] + (indices - self.window_offsets[series])
        rows = starts[:, None] + self.span
        spans = self.values[rows]
        covariates = None
        if self.covariates is not None:
            covariates = self.covariates[rows].flatten(start_dim=1)
        return (
            spans[:, : self.context_length],
            spans[:, self.context_length :],
            covariates,
        )


def device_bytes(windows) -> int:
    """Bytes :class:`DeviceBatches` would hold for ``windows`` (float32)."""
    if isinstance(windows, PanelWindows):
        count = windows.values.size + 2 * windows.offsets.size
        if windows.covariates_data is not None:
            count += windows.covariates_data.size
        return 4 * count
    count = int(np.prod(windows.contexts.shape)) + int(np.prod(windows.targets.shape))
    if windows.covariates is not None:
        count += int(np.prod(windows.covariates.shape))
    return 4 * count


def batch_source(windows, device: torch.device, placement: str = "auto"):
    """A :class:`DeviceBatches` or :class:`HostBatches` for ``windows``.

    ``placement`` is ``"device"``, ``"host"`` or ``"auto"``. ``"auto"``
    takes the device when its copy is small: at most
    :data:`DEVICE_MEMORY_SHARE` of a CUDA device's free memory, at most
    :data:`HOST_COPY_LIMIT` bytes elsewhere (on the CPU a float32 copy
    gathers faster than numpy's float64 arrays; a panel's copy is half the
    size of its data). Other devices (MPS) gather on the host.
    """
    if placement not in ("auto", "device", "host"):
        raise ValueError(
            f"placement must be 'auto', 'device' or 'host', got {placement!r}"
        )
    if placement == "auto":
        size = device_bytes(windows)
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            fits = size <= DEVICE_MEMORY_SHARE * free
        else:
            fits = device.type == "cpu" and size <= HOST_COPY_LIMIT
        placement = "device" if fits else "host"
    if placement == "device":
        return DeviceBatches(windows, device)
    return HostBatches(windows, device)
