"""Where chunks of points are evaluated: in this process, in local worker processes, or on Dask.

All three call ``task`` on each chunk (``evaluate_chunk`` for points, ``measure_chunk`` for
accuracy jobs) and hand each finished chunk to ``on_done`` in this process, as it completes
(not in order): the caller stores it at once, so stopping at any moment (Ctrl-C, a killed job, a
failing point) keeps every chunk that finished. Pending chunks are cancelled.
Chunks are drawn from an iterator and only a few per worker are in flight at once, so memory
follows the chunk size, not the number of points.
"""
from __future__ import annotations

import multiprocessing
import itertools
import os
import sys
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator, Sequence

from qsim.sweep.evaluate import evaluate_chunk
from qsim.sweep.model import Point, SweepError, SweepSpec

OnDone = Callable[[list[dict[str, Any]]], None]
Chunks = Iterable[Sequence]  # chunks of points (or of accuracy jobs: ``task`` says what to do with one)
Task = Callable[[SweepSpec, Sequence], list[dict[str, Any]]]
IN_FLIGHT_PER_WORKER = 4  # enough queued work to keep a worker busy while its last result travels back


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def chunk_size(points: int, workers: int) -> int:
    """Chunks big enough to amortise a task's overhead, small enough that a stop loses little and
    every worker gets several (about 8 per worker, 4..64 points each)."""
    return max(4, min(64, points // (workers * 8)))


def chunked(points: Iterable[Point], size: int) -> Iterator[list[Point]]:
    """Consecutive chunks of ``size`` points, drawn lazily. Points arrive grouped by workload, so a
    chunk mostly reuses one cached graph."""
    points = iter(points)
    while chunk := list(itertools.islice(points, size)):
        yield chunk


def run_serial(spec: SweepSpec, chunks: Chunks, on_done: OnDone, task: Task = evaluate_chunk) -> None:
    for chunk in chunks:
        on_done(task(spec, chunk))


def _can_fork() -> bool:
    """fork starts fast and needs no ``if __name__ == "__main__"`` guard in the caller's script, but
    copying a process that runs other threads (a Dask client, a notebook's) can copy a held lock, and
    GNU OpenMP aborts a child forked after its threads started (numba's parallel kernels, once the
    simulator ran here): spawn then."""
    if threading.active_count() != 1 or "fork" not in multiprocessing.get_all_start_methods():
        return False
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return not getattr(parallel, "_is_initialized", False)


def worker_threads(workers: int) -> str:
    """Each worker's share of the cores for the simulator's kernels (``QSIM_THREADS``), unless the user
    set it: a worker that took every core (the default of a compiled model) ran its parallel regions
    with more threads than the machine has cores, and every region then waited for the scheduler
    (MobileNetV2 at batch 1, 2 cores, beside one other such process: 66 ms against 5 ms alone)."""
    from qsim.sim.compiled import physical_cores

    return os.environ.get("QSIM_THREADS") or str(max(1, physical_cores() // max(1, workers)))


def _set_threads(threads: str) -> None:
    os.environ["QSIM_THREADS"] = threads


def run_processes(spec: SweepSpec, chunks: Chunks, workers: int, on_done: OnDone,
                  task: Task = evaluate_chunk) -> None:
    ctx = multiprocessing.get_context("fork" if _can_fork() else "spawn")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_set_threads, initargs=(worker_threads(workers),))
    try:
        chunks = iter(chunks)
        pending = {pool.submit(task, spec, c) for c in itertools.islice(chunks, workers * IN_FLIGHT_PER_WORKER)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                on_done(future.result())
                pending |= {pool.submit(task, spec, c) for c in itertools.islice(chunks, 1)}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _client(scheduler: Any, dask_local: bool, workers: int):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError('the Dask executor needs dask.distributed: pip install "dask[distributed]" '
                         '(or run on local processes: drop --scheduler / --dask)') from None
    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler, None, False  # a Client the caller owns (and closes)
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="20s"), None, True
        except OSError as exc:
            raise SweepError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           env={"QSIM_THREADS": worker_threads(workers)})
    return Client(cluster), cluster, True


def run_dask(spec: SweepSpec, chunks: Chunks, on_done: OnDone, scheduler: Any = None,
             dask_local: bool = False, workers: int = 2, task: Task = evaluate_chunk) -> None:
    client, cluster, owned = _client(scheduler, dask_local, workers)  # raises a clear error without Dask
    from distributed import as_completed

    futures: set = set()
    try:
        spec_future = client.scatter(spec, broadcast=True)  # sent once per worker, not once per chunk
        chunks = iter(chunks)
        in_flight = max(1, sum(client.nthreads().values())) * IN_FLIGHT_PER_WORKER
        futures = {client.submit(task, spec_future, c, pure=False) for c in itertools.islice(chunks, in_flight)}
        queue = as_completed(futures)
        for future in queue:
            futures.discard(future)
            on_done(future.result())
            for c in itertools.islice(chunks, 1):
                nxt = client.submit(task, spec_future, c, pure=False)
                futures.add(nxt)
                queue.add(nxt)
    finally:
        if futures:
            client.cancel(list(futures))
        if owned:
            client.close()
        if cluster is not None:
            cluster.close()
