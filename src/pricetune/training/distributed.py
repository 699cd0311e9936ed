"""Process groups and sharding for data-parallel training.

pricetune trains data-parallel through ``torch.distributed``: every
process holds the whole model, trains on its shard of each epoch's
windows, and ``DistributedDataParallel`` averages the gradients at each
optimiser step, so the replicas stay identical. This module finds (or,
under ``torchrun``, starts) the process group, picks each process's
device, shards the windows and combines the numbers every process must
agree on (the losses of the epoch record, the decision to stop). The
loop that uses it is :class:`~pricetune.training.trainer.Trainer`; the
launcher of ``n_processes`` workers is :mod:`pricetune.training.launch`.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch

#: how long a collective (a gradient all-reduce, the rendezvous) waits for
#: the other processes before it fails with an error instead of hanging
TIMEOUT = timedelta(minutes=15)


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised default process group.

    Returns
    -------
    tuple of int
        this process's rank and the number of processes; ``(0, 1)`` when
        ``torch.distributed`` is unavailable or no group is initialised.
    """
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def backend_for(device: torch.device) -> str:
    """The process group backend for ``device``: ``"nccl"`` on CUDA,
    ``"gloo"`` elsewhere."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_group(
    device: torch.device,
    *,
    init_method: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> None:
    """Initialise the default process group for training on ``device``.

    Parameters
    ----------
    device : torch.device
        the device this process trains on (chooses the backend, see
        :func:`backend_for`; a CUDA device becomes the current one).
    init_method : str, optional
        where the processes meet (``"file://..."``, ``"tcp://..."``);
        ``None`` reads ``torchrun``'s environment (``MASTER_ADDR``,
        ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``).
    rank, world_size : int, optional
        needed with ``init_method``.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    options = {"backend": backend_for(device), "timeout": TIMEOUT}
    if init_method is not None:
        options.update(init_method=init_method, rank=rank, world_size=world_size)
    torch.distributed.init_process_group(**options)


def init_from_environment(device: torch.device) -> bool:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), initialise
    the default process group if none is; does nothing otherwise.

    Parameters
    ----------
    device : torch.device
        the device the fit resolved (see :func:`process_device`).

    Returns
    -------
    bool
        whether a group was initialised here.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or world()[1] > 1:
        return False
    if not torch.distributed.is_available():
        raise RuntimeError(
            "WORLD_SIZE > 1 asks for distributed training, but this torch "
            "build has no torch.distributed"
        )
    if torch.distributed.is_initialized():  # a group of one process
        return False
    init_group(process_device(device))
    return True


def process_device(device: torch.device) -> torch.device:
    """The device this process trains on, given the fit's ``device``.

    A CPU (or MPS) device is shared by every process. A CUDA device becomes
    one GPU per process: ``cuda:LOCAL_RANK`` under ``torchrun``, else
    ``cuda:<rank % visible GPUs>``. Without a group of several processes,
    ``device`` itself.
    """
    device = torch.device(device)
    rank, size = world()
    if device.type != "cuda":
        return device
    from pricetune.training.devices import local_gpu

    local = local_gpu()  # cuda:LOCAL_RANK under torchrun
    if local.index is not None:
        return local
    if size == 1:
        return device
    return torch.device("cuda", rank % torch.cuda.device_count())


def shard(order, rank: int, world_size: int):
    """``rank``'s share of an epoch's windows ``order``.

    Every rank gets the same number of windows (so every rank takes the
    same number of optimiser steps and none waits for a gradient that never
    comes): ``order`` is cut to a multiple of ``world_size`` (at most
    ``world_size - 1`` windows of the epoch are left out; the next epoch's
    shuffle leaves out others), then dealt out in turn.

    Parameters
    ----------
    order : numpy.ndarray
        the window indices of the epoch, in the order the ranks share.
    rank, world_size : int

    Returns
    -------
    numpy.ndarray
        ``len(order) // world_size`` indices.
    """
    usable = len(order) - len(order) % world_size
    return order[:usable][rank::world_size]


def sum_over_ranks(values, device: torch.device) -> list[float]:
    """The element-wise sum of ``values`` (numbers) over every process, in
    float64; every process gets the same result."""
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    tensor = tensor.to(device)
    torch.distributed.all_reduce(tensor)
    return tensor.cpu().tolist()


def mean_over_ranks(total: float, count: int, device: torch.device) -> float:
    """``sum(total) / sum(count)`` over every process: the mean loss of an
    epoch from each process's summed loss and number of windows."""
    total, count = sum_over_ranks([total, count], device)
    return total / max(count, 1.0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any process (every process gets the
    same answer: a stop decided on one stops them all)."""
    return sum_over_ranks([bool(flag)], device)[0] > 0


def gather(value) -> list:
    """``value`` (picklable) from every process, by rank."""
    values = [None] * world()[1]
    torch.distributed.all_gather_object(values, value)
    return values


def wrap(model: torch.nn.Module, device: torch.device, find_unused: bool):
    """``model`` in ``torch.nn.parallel.DistributedDataParallel`` (which
    broadcasts rank 0's weights to every replica first).

    ``find_unused`` lets parameters take no part in a step (a strategy
    that freezes layers for a while, as gradual unfreezing does): such a
    parameter, unused on every rank, keeps no gradient and is not updated.
    """
    from torch.nn.parallel import DistributedDataParallel

    device = torch.device(device)
    device_ids = None
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        device_ids = [index]
    return DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused
    )
