"""Data-parallel training (training/distributed.py, training/launch.py, the
loop's DDP path): ``n_processes=2`` on the CPU (gloo) trains, averages the
gradients (the replicas stay identical, each rank on its own windows, the
fit equals a single process's on the union of their batches), gives an
ordinary fitted estimator, surfaces a worker's error, and ``torchrun``
trains the same way (with gradual unfreezing, which changes what trains
from epoch to epoch, and with gradient accumulation)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.training import Callback, distributed
from pricetune.training.trainer import epoch_order

# one network (the default mixes three: test_ensembles.py)
SETTINGS = {
    "n_ensemble": 1,
    "backbone": "lstm",
    "backbone_kwargs": {"hidden_size": 8},
    "strategy": "full",
    "head": "quantile",
    "context_length": 16,
    "patch_length": 4,
    "max_epochs": 3,
    "steps_per_epoch": 4,
    "batch_size": 16,
    "learning_rate": 1e-2,
    "random_state": 0,
    "verbose": 0,
}

# a callback module the spawned workers can import (test modules cannot be
# imported by name: pytest runs with --import-mode=importlib)
PROBE = '''
import json
import os

import torch

from pricetune.training import Callback


class Probe(Callback):
    """After every optimiser step, gathers the trainable weights of every
    rank and keeps the largest difference from this rank's; remembers the
    contexts of the first training batch (their row sums)."""

    def __init__(self, directory):
        self.directory = directory

    def on_train_begin(self, run):
        self.first_batch, self.steps, self.difference = None, 0, 0.0
        self.handle = run.model.register_forward_pre_hook(self._record)

    def _record(self, module, args):
        if self.first_batch is None and module.training:
            self.first_batch = sorted(round(float(v), 3) for v in args[0].sum(1))

    def on_step_end(self, run):
        vector = torch.cat([p.detach().flatten() for p in run.trainable.values()])
        copies = [torch.empty_like(vector) for _ in range(run.world_size)]
        if run.world_size > 1:
            torch.distributed.all_gather(copies, vector)
        else:
            copies = [vector]
        for copy in copies:
            self.difference = max(self.difference, float((copy - vector).abs().max()))
        self.steps += 1

    def on_train_end(self, run):
        self.handle.remove()
        self.handle = None
        report = {
            "rank": run.rank,
            "world_size": run.world_size,
            "steps": self.steps,
            "difference": self.difference,
            "first_batch": self.first_batch,
        }
        path = os.path.join(self.directory, f"probe-{run.rank}.json")
        with open(path, "w") as handle:
            json.dump(report, handle)


class WritesAtExit(Callback):
    """Registers an exit handler in each worker that writes a file."""

    def __init__(self, directory):
        self.directory = directory

    def on_train_end(self, run):
        import atexit
        import pathlib

        path = pathlib.Path(self.directory, f"exit-{run.rank}.txt")
        atexit.register(path.write_text, "ran")


class FailOnRank(Callback):
    def __init__(self, rank):
        self.rank = rank

    def on_epoch_end(self, run, metrics):
        if run.rank == self.rank:
            raise ValueError(f"callback failed on rank {run.rank}")
'''


def synthetic_series(n: int = 240) -> pd.Series:
    """A seasonal price with a trend and a little noise: something a tiny
    model learns within a few steps."""
    t = np.arange(n)
    noise = np.random.default_rng(0).normal(0, 0.5, n)
    values = 50 + 0.05 * t + 8 * np.sin(2 * np.pi * t / 12) + noise
    return pd.Series(values, index=pd.period_range("2000-01", periods=n, freq="M"))


@pytest.fixture(scope="module")
def probe_module(tmp_path_factory):
    directory = tmp_path_factory.mktemp("probe-module")
    (directory / "ddp_probe.py").write_text(PROBE)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(directory))  # spawned workers inherit sys.path
        import ddp_probe

        yield ddp_probe


def read_probes(directory) -> dict:
    return {
        int(path.stem.split("-")[1]): json.loads(path.read_text())
        for path in directory.glob("probe-*.json")
    }


@pytest.fixture(scope="module")
def fits(probe_module, tmp_path_factory):
    """A fit with n_processes=2 and the same fit in one process with twice
    the batch (the union of the two ranks' batches)."""
    y = synthetic_series()
    parallel_dir = tmp_path_factory.mktemp("parallel")
    parallel = FineTunedPriceForecaster(
        **SETTINGS,
        n_processes=2,
        log_csv=str(parallel_dir / "log.csv"),
        callbacks=[probe_module.Probe(str(parallel_dir))],
    ).fit(y, fh=[1, 2, 3])
    single_dir = tmp_path_factory.mktemp("single")
    single = FineTunedPriceForecaster(
        **{**SETTINGS, "batch_size": 32},
        callbacks=[probe_module.Probe(str(single_dir))],
    ).fit(y, fh=[1, 2, 3])
    return {
        "y": y,
        "parallel": parallel,
        "parallel_dir": parallel_dir,
        "single": single,
        "single_dir": single_dir,
    }


def test_two_processes_train_an_ordinary_estimator(fits, tmp_path):
    forecaster = fits["parallel"]
    history = forecaster.training_history_
    assert list(history["epoch"]) == [1, 2, 3]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    prediction = forecaster.predict()
    assert len(prediction) == 3 and np.isfinite(prediction.to_numpy()).all()
    # rank 0 alone wrote the log: a header and one row per epoch
    rows = (fits["parallel_dir"] / "log.csv").read_text().splitlines()
    assert len(rows) == 1 + 3
    with pytest.warns(UserWarning, match="callbacks"):
        forecaster.save(tmp_path / "saved", serialization_format="safetensors")
    loaded = FineTunedPriceForecaster.load(tmp_path / "saved")
    pd.testing.assert_series_equal(loaded.predict(), prediction)
    clone = forecaster.clone()
    assert clone.get_params()["n_processes"] == 2
    assert not clone.is_fitted


def test_gradients_are_averaged_over_the_shards(fits):
    probes = read_probes(fits["parallel_dir"])
    assert sorted(probes) == [0, 1]
    for probe in probes.values():
        assert probe["world_size"] == 2
        assert probe["steps"] == 3 * 4  # steps_per_epoch steps of each rank
        assert probe["difference"] == 0.0  # identical replicas after each step
    # each rank trained on its own windows; together, on one process's batch
    first, second = probes[0]["first_batch"], probes[1]["first_batch"]
    assert len(first) == len(second) == 16
    assert not set(first) & set(second)
    (single,) = read_probes(fits["single_dir"]).values()
    assert sorted(first + second) == single["first_batch"]


def test_two_processes_match_one_process_on_the_union_batch(fits):
    parallel, single = fits["parallel"], fits["single"]
    columns = ["train_loss", "validation_loss", "learning_rate"]
    np.testing.assert_allclose(
        parallel.training_history_[columns].to_numpy(),
        single.training_history_[columns].to_numpy(),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        parallel.predict().to_numpy(), single.predict().to_numpy(), rtol=1e-4
    )


def test_the_default_ensemble_trains_each_member_in_its_own_workers():
    """The forecaster's default is three members; with n_processes each
    member trains in a round of workers of its own, from its own seed."""
    settings = {**SETTINGS, "n_ensemble": 2, "max_epochs": 2}
    y = synthetic_series()
    forecaster = FineTunedPriceForecaster(**settings, n_processes=2).fit(
        y, fh=[1, 2, 3]
    )
    history = forecaster.training_history_
    assert history.groupby("member")["epoch"].max().tolist() == [2, 2]
    members = forecaster.model_.members
    first, second = (m.head.projection.weight.detach() for m in members)
    assert not torch.equal(first, second)
    assert np.isfinite(forecaster.predict().to_numpy()).all()
    # the first member is the one-process ensemble's first member's run,
    # sharded: its first epoch's loss is over the same windows
    alone = FineTunedPriceForecaster(**{**settings, "batch_size": 32}).fit(
        y, fh=[1, 2, 3]
    )
    first_loss = alone.training_history_.query("member == 0")["train_loss"].iloc[0]
    assert history.query("member == 0")["train_loss"].iloc[0] == pytest.approx(
        first_loss, rel=1e-4
    )


def test_workers_run_their_exit_handlers_and_end_cleanly(probe_module, tmp_path):
    """A worker whose work is done exits without the interpreter's teardown
    (where gloo now and then aborted it), but after its exit handlers."""
    forecaster = FineTunedPriceForecaster(
        **{**SETTINGS, "max_epochs": 1},
        n_processes=2,
        callbacks=[probe_module.WritesAtExit(str(tmp_path))],
    ).fit(synthetic_series(), fh=[1, 2, 3])
    assert forecaster.is_fitted
    assert sorted(p.name for p in tmp_path.glob("exit-*.txt")) == [
        "exit-0.txt",
        "exit-1.txt",
    ]
    assert (tmp_path / "exit-1.txt").read_text() == "ran"


def test_an_error_in_a_worker_is_raised_in_the_parent(probe_module):
    forecaster = FineTunedPriceForecaster(
        **{**SETTINGS, "max_epochs": 1},
        n_processes=2,
        callbacks=[probe_module.FailOnRank(1)],
    )
    with pytest.raises(ValueError, match="callback failed on rank 1"):
        forecaster.fit(synthetic_series(), fh=[1, 2, 3])
    assert not forecaster.is_fitted


class _KeepsAnOpenRun(Callback):
    stays_in_process = True  # as MLflowLogger and OptunaPruning


def test_a_callback_that_stays_in_process_is_refused_before_any_worker_starts(
    monkeypatch,
):
    import torch.multiprocessing

    def never(*args, **kwargs):
        raise AssertionError("a worker was started")

    monkeypatch.setattr(torch.multiprocessing, "start_processes", never)
    forecaster = FineTunedPriceForecaster(
        **SETTINGS, n_processes=2, callbacks=[_KeepsAnOpenRun()]
    )
    with pytest.raises(
        ValueError,
        match=r"_KeepsAnOpenRun keeps its state in this "
        r"process and cannot follow a fit into n_processes=2",
    ):
        forecaster.fit(synthetic_series(), fh=[1, 2, 3])


def test_sharding_gives_every_rank_as_many_distinct_windows():
    order = np.arange(11) * 10
    shards = [distributed.shard(order, rank, 3) for rank in range(3)]
    assert [len(shard) for shard in shards] == [3, 3, 3]
    assert len(set(np.concatenate(shards))) == 9
    config = FineTunedPriceForecaster(**SETTINGS)._training_config()
    generator = torch.Generator().manual_seed(0)
    # with steps_per_epoch, each of 2 ranks takes that many batches
    assert len(epoch_order(np.arange(1000), generator, config, 2)) == 2 * 4 * 16
    assert distributed.world() == (0, 1)  # no group in the test process


TORCHRUN_SCRIPT = '''
import json
import sys

import numpy as np
import pandas as pd
import torch

from pricetune import FineTunedPriceForecaster
from pricetune.training import Callback


class Watch(Callback):
    """Each rank's replica after every step against the others', and the
    sums of the LSTM body's two layers at the start and after each epoch."""

    def on_train_begin(self, run):
        self.difference, self.layers = 0.0, [self.layer_sums(run)]

    def layer_sums(self, run):
        body = run.model.backbone.body
        return [
            sum(float(p.sum()) for n, p in body.named_parameters() if n.endswith(k))
            for k in ("_l0", "_l1")
        ]

    def on_step_end(self, run):
        vector = torch.cat([p.detach().flatten() for p in run.model.parameters()])
        copies = [torch.empty_like(vector) for _ in range(run.world_size)]
        torch.distributed.all_gather(copies, vector)
        for copy in copies:
            self.difference = max(self.difference, float((copy - vector).abs().max()))

    def on_epoch_end(self, run, metrics):
        self.layers.append(self.layer_sums(run))


if __name__ == "__main__":
    t = np.arange(240)
    y = pd.Series(50 + 8 * np.sin(2 * np.pi * t / 12),
                  index=pd.period_range("2000-01", periods=240, freq="M"))
    watch = Watch()
    settings = json.loads(sys.argv[2])
    forecaster = FineTunedPriceForecaster(**settings, callbacks=[watch])
    forecaster.fit(y, fh=[1, 2, 3])
    rank, size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    if rank == 0:
        report = {
            "world_size": size,
            "difference": watch.difference,
            "layers": watch.layers,
            "epochs": len(forecaster.training_history_),
            "prediction": forecaster.predict().tolist(),
        }
        with open(sys.argv[1], "w") as handle:
            json.dump(report, handle)
        print("rank 0 trained", size, "processes")
    torch.distributed.destroy_process_group()
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_torchrun_trains_on_the_group_with_gradual_unfreezing(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TORCHRUN_SCRIPT))
    settings = {
        **SETTINGS,
        "backbone_kwargs": {"hidden_size": 8, "num_layers": 2},
        "strategy": "gradual",
        "validation_fraction": 0.0,
        "accumulate_batches": 2,  # DDP's no_sync on the first batch of each step
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=2",
        "--nnodes=1",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{free_port()}",
        str(script),
        str(tmp_path / "report.json"),
        json.dumps(settings),
    ]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 trained 2 processes" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["world_size"] == 2 and report["epochs"] == 3
    assert report["difference"] == 0.0
    assert np.isfinite(report["prediction"]).all()
    # epoch 1 trains no layer of the body, epoch 2 its top one, epoch 3 both
    start, first, second, third = report["layers"]
    assert first == start
    assert second[0] == start[0] and second[1] != start[1]
    assert third[0] != start[0]
