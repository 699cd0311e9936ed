"""Training one model data-parallel in worker processes (``n_processes``).

:func:`train_in_processes` is what an estimator's fit calls when
``n_processes`` > 1 and no process group is initialised: it starts that
many processes with ``torch.multiprocessing`` (start method ``"spawn"``),
which meet through a file in a temporary folder (no network), each
receives the model, the windows, the config, the strategy, the seed and
the callbacks (pickled once, together, so that what they share stays
shared), trains its shard (:class:`~pricetune.training.trainer.Trainer`
in the group, :mod:`pricetune.training.distributed`), and rank 0 sends the
trained weights and the epoch records back. The callbacks run in the
workers: what they record (a user callback's state) stays there, except
for what rank 0 writes to files.
"""

from __future__ import annotations

import atexit
import os
import pickle
import socket
import sys
import tempfile

import torch

from pricetune.training import distributed

_JOB, _RESULT, _RENDEZVOUS = "job.pt", "result.pt", "rendezvous"


def train_in_processes(
    n_processes: int,
    model: torch.nn.Module,
    windows,
    config,
    *,
    strategy=None,
    callbacks=None,
    seed: int,
    device: torch.device,
    autocast_dtype=None,
    run_info: dict | None = None,
) -> list[dict]:
    """Train ``model`` in place, data-parallel in ``n_processes`` processes.

    Parameters
    ----------
    n_processes : int
        the number of worker processes (at least 2).
    model : torch.nn.Module
        the model to train; its trained weights are loaded back into it.
    windows, config, strategy, callbacks
        as :meth:`~pricetune.training.trainer.Trainer.fit` takes them; they
        must pickle (callbacks defined at module level).
    seed : int
        seeds the shuffling (alike in every worker, so they share one
        order out) and dropout and augmentations (``seed + rank``).
    device : torch.device
        ``"cpu"``: every worker on the CPU, with
        ``os.cpu_count() // n_processes`` threads; CUDA: worker ``r`` on
        ``cuda:r`` (so ``n_processes`` GPUs).
    autocast_dtype : torch.dtype, optional
        the fit's autocast dtype.
    run_info : dict, optional
        ``member``, ``update``, ``seed`` for the callbacks.

    Returns
    -------
    list of dict
        the epoch records (the same in every worker).

    Raises
    ------
    Exception
        the exception a worker raised (the first by rank), chained to the
        worker's traceback; ``RuntimeError`` when a worker died without one.
    """
    import torch.multiprocessing as mp

    staying = [type(c).__name__ for c in callbacks or () if c.stays_in_process]
    if staying:
        raise ValueError(
            f"{', '.join(staying)} keeps its state in this process and cannot "
            f"follow a fit into n_processes={n_processes} worker processes: fit "
            "with n_processes=1, or start the processes with torchrun"
        )

    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"n_processes={n_processes} trains on the CPU or CUDA GPUs, not "
            f"on {device}; set device='cpu'"
        )
    if device.type == "cuda" and torch.cuda.device_count() < n_processes:
        raise ValueError(
            f"n_processes={n_processes} on CUDA needs one GPU per process, but "
            f"{torch.cuda.device_count()} are visible"
        )
    with tempfile.TemporaryDirectory(prefix="pricetune-ddp-") as directory:
        job = {
            "model": model,
            "windows": windows,
            "config": config,
            "strategy": strategy,
            "callbacks": callbacks,
            "seed": int(seed),
            "device": device,
            "autocast_dtype": autocast_dtype,
            "run_info": dict(run_info or {}),
        }
        torch.save(job, os.path.join(directory, _JOB))
        try:
            mp.start_processes(
                _worker,
                args=(n_processes, directory),
                nprocs=n_processes,
                join=True,
                start_method="spawn",
            )
        except Exception as error:  # ProcessRaisedException, ProcessExitedException
            raise _worker_error(directory, n_processes, error) from error
        result = torch.load(
            os.path.join(directory, _RESULT), map_location="cpu", weights_only=False
        )
    model.load_state_dict(result["state"])
    return result["history"]


def _worker(rank: int, world_size: int, directory: str) -> None:
    """One worker of :func:`train_in_processes` (module-level: the spawned
    process imports it)."""
    from pricetune.training.trainer import train_member

    try:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        job = torch.load(
            os.path.join(directory, _JOB), map_location="cpu", weights_only=False
        )
        device = job["device"]
        if device.type == "cuda":
            device = torch.device("cuda", rank)
        else:
            _gloo_on_loopback()
        distributed.init_group(
            device,
            init_method="file://" + os.path.join(directory, _RENDEZVOUS),
            rank=rank,
            world_size=world_size,
        )
        try:
            model = job["model"].to(device)
            history = train_member(
                model,
                job["windows"],
                job["config"],
                device,
                job["autocast_dtype"],
                job["seed"],
                rank,
                strategy=job["strategy"],
                callbacks=job["callbacks"],
                **job["run_info"],
            )
            if rank == 0:
                state = {n: t.detach().cpu() for n, t in model.state_dict().items()}
                result = {"state": state, "history": history}
                torch.save(result, os.path.join(directory, _RESULT))
        finally:
            torch.distributed.destroy_process_group()
    except BaseException as error:
        _save_error(directory, rank, error)
        raise
    _exit_without_teardown()


def _exit_without_teardown() -> None:
    """End a worker whose work is done without the interpreter's and the C++
    libraries' teardown.

    Now and then (about one worker exit in 150 on a 2-core machine under
    load, torch 2.13 on the CPU) that teardown aborted the worker after
    its group was destroyed and rank 0 had sent its result back: the
    process died of SIGABRT with "terminate called without an active
    exception" and no Python frame left, and the parent failed a finished
    fit. Written by hand because neither torch nor multiprocessing offers
    a worker exit that skips it; the worker's exit handlers (logging,
    tracking clients) still run first.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _gloo_on_loopback() -> None:
    """Workers on one machine talk over the loopback interface (unless
    ``GLOO_SOCKET_IFNAME`` says otherwise), not over whatever address the
    host name resolves to."""
    if "GLOO_SOCKET_IFNAME" in os.environ:
        return
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (AttributeError, OSError):
        return
    loopback = [name for name in names if name.startswith("lo")]
    if loopback:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback[0]


def _save_error(directory: str, rank: int, error: BaseException) -> None:
    """Leave the worker's exception for the parent to raise."""
    try:
        data = pickle.dumps(error)
        pickle.loads(data)
    except Exception:  # an exception that does not pickle: its text
        data = pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"))
    with open(os.path.join(directory, f"error-{rank}.pickle"), "wb") as handle:
        handle.write(data)


def _worker_error(directory: str, world_size: int, error: Exception) -> Exception:
    """The exception to raise in the parent for a failed worker: the first
    one a worker left (the others' are most often the group breaking up
    after it), or a ``RuntimeError`` naming how a worker ended."""
    paths = [
        os.path.join(directory, f"error-{rank}.pickle") for rank in range(world_size)
    ]
    paths = sorted(
        (path for path in paths if os.path.exists(path)),
        key=lambda path: os.stat(path).st_mtime_ns,
    )
    if not paths:
        return RuntimeError(f"a training worker process failed: {error}")
    with open(paths[0], "rb") as handle:
        return pickle.load(handle)  # noqa: S301 - written by our own worker
