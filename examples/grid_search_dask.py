"""The grid search of ``grid_search_vs_autoarima.py`` on a local Dask cluster.

Starts a ``dask.distributed.LocalCluster`` on this machine (loopback only,
one single-threaded worker process per CPU by default, no dashboard), runs
the same ``ForecastingGridSearchCV`` with ``backend="dask"`` (sktime then
computes the candidates on the active Dask client), prints the ranked table,
and shuts the cluster down. ``--compare-sequential`` runs the search again
without Dask and checks that the seeded results are the same.

    python examples/grid_search_dask.py
    python examples/grid_search_dask.py --quick --compare-sequential
    python examples/grid_search_dask.py --workers 4

To use a cluster that is already running, replace ``LocalCluster`` by
``Client("tcp://scheduler:8786")``: the search code does not change.
Needs ``pip install 'pricetune[dask,baselines]'``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

# the search itself is defined once, in the sibling example
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sktime_warnings import NOTICE, without_sktime_notice  # noqa: E402
from grid_search_vs_autoarima import (  # noqa: E402
    SCORE,
    build_parser,
    load_series,
    make_search,
    report,
)


def _hide_sktime_notice_in_worker() -> None:
    """Run in each worker: drop sktime 1.2's ``remember_data`` notice there."""
    import warnings

    show = warnings.showwarning

    def showwarning(message, category, *args, **kwargs):
        if NOTICE not in str(message):
            show(message, category, *args, **kwargs)

    warnings.showwarning = showwarning


def _worker_device() -> str:
    """Where ``device="auto"`` would train in this worker."""
    from pricetune.training import resolve_device

    return f"pid {os.getpid()}: {resolve_device('auto')}"


def main(argv=None) -> None:
    from dask.distributed import Client, LocalCluster

    parser = build_parser(__doc__.split("\n")[0])
    parser.set_defaults(backend="dask")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--compare-sequential",
        action="store_true",
        help="run the search again without Dask and compare",
    )
    args = parser.parse_args(argv)
    workers = args.workers

    y = load_series(args.dataset, args.quick)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,  # one fit per process at a time
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_hide_sktime_notice_in_worker)
        print(
            f"Dask cluster: {workers} worker processes at {cluster.scheduler_address}"
        )
        for line in client.run(_worker_device).values():
            print(f"  worker {line}")
        print()
        start = time.perf_counter()
        with without_sktime_notice():
            search = make_search(y, args)
            search.fit(y, fh=search.cv.fh)
            report(search, y, time.perf_counter() - start)

    if args.compare_sequential:
        import torch

        print()
        args.backend = None
        # one torch thread, as in each worker: the thread count changes the
        # order of floating-point sums, which training can amplify
        torch.set_num_threads(1)
        start = time.perf_counter()
        with without_sktime_notice(), threadpool_limits(limits=1, user_api="blas"):
            sequential = make_search(y, args).fit(y, fh=search.cv.fh)
        column = f"mean_{SCORE}"
        difference = np.max(
            np.abs(
                search.cv_results_[column].to_numpy()
                - sequential.cv_results_[column].to_numpy()
            )
        )
        same = sequential.best_params_ == search.best_params_
        print(f"Sequential run (one thread): {time.perf_counter() - start:.1f} s")
        print(f"Same best parameters as the sequential run: {same}")
        print(f"Largest difference of a mean score: {difference:.2e}")


if __name__ == "__main__":
    main()
