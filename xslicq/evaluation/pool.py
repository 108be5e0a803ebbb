"""A bounded pool of spawned worker processes for scoring jobs (BSSEval, HAAQI).

    jobs (key, args), consumed lazily -> worker(*args) in N processes -> collect(key, result)

The producer (separation, in the main process) runs at most two jobs per worker ahead of
the scoring, so memory stays bounded however many tracks there are. Each worker gets its
share of the cores for BLAS / OpenMP.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator

__all__ = ["run_in_processes", "worker_threads"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""The environment variables that set the BLAS / OpenMP thread counts of a worker."""


@contextlib.contextmanager
def worker_threads(workers: int) -> Iterator[None]:
    """Give each spawned worker its share of the cores (``cpu_count // workers``, at least 1)
    through :data:`THREAD_VARIABLES`; the caller's values are restored on exit."""
    share = str(max(1, (os.cpu_count() or 1) // max(workers, 1)))
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: share for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_in_processes(
    worker: Callable, jobs: Iterable[tuple], workers: int, collect: Callable, failed: Callable
) -> None:
    """Run ``worker(*args)`` for every ``(key, args)`` of ``jobs`` in ``workers`` spawned
    processes, consuming ``jobs`` lazily with at most two jobs per worker queued ahead, and
    call ``collect(key, result)`` in completion order. A job that raises stops the run with
    the exception ``failed(key, err)`` (chained to ``err``); queued jobs are dropped.

    ``worker`` must be importable by its module path in a fresh process (a module-level
    function of a module that is not ``__main__``), and its arguments picklable.
    """
    context = multiprocessing.get_context("spawn")  # safe after torch started threads
    with (
        worker_threads(workers),
        concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool,
    ):
        pending: dict = {}

        def drain(until: int):
            while len(pending) > until:
                done, _ = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for fut in done:
                    key = pending.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as err:
                        raise failed(key, err) from err
                    collect(key, result)

        try:
            for key, args in jobs:
                pending[pool.submit(worker, *args)] = key
                drain(2 * workers)
            drain(0)
        except BaseException:
            # drop the queued jobs; the pool still waits for the ones running
            pool.shutdown(wait=False, cancel_futures=True)
            raise
