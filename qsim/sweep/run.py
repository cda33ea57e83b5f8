"""``run_sweep``: spec -> points -> executor -> store -> one tidy DataFrame (a row per point)."""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pandas as pd

from qsim.files import atomic_write
from qsim.sweep.executor import chunk_size as default_chunk_size
from qsim.sweep.evaluate import evaluate_chunk
from qsim.sweep.executor import chunked, default_workers, run_dask, run_processes, run_serial
from qsim.sweep.accuracy import STORED, join_accuracy, run_accuracy
from qsim.sweep.constraints import add_constraints_column
from qsim.sweep.lock import StoreLock
from qsim.sweep.model import Point, SweepSpec
from qsim.sweep.pareto import add_pareto_column
from qsim.sweep.points import check_size, iter_points
from qsim.sweep.progress import Progress
from qsim.sweep.spec import load_spec
from qsim.sweep.store import ResultStore, id_keys, normalize, rows_to_frame


def _not_done(points: Iterator[Point], done: np.ndarray, block: int = 4096) -> Iterator[Point]:
    """The points whose ids are not in ``done`` (sorted id keys), checked a block at a time."""
    while block_points := list(itertools.islice(points, block)):
        if not len(done):
            yield from block_points
            continue
        keys = id_keys(p.point_id for p in block_points)
        slot = np.searchsorted(done, keys).clip(max=len(done) - 1)
        yield from (p for p, stored in zip(block_points, done[slot] == keys) if not stored)


def run_sweep(spec: str | Path | Mapping | SweepSpec, out_dir: str | Path | None = None, workers: int | None = None,
              scheduler: Any = None, dask_local: bool = False, progress: bool | None = None, *,
              chunk_size: int | None = None, limit: int | None = None, yes: bool = False,
              on_chunk: Callable[[list[dict]], None] | None = None, ort_cpu: str | None = None) -> pd.DataFrame:
    """Evaluate every point of a sweep spec; return one row per point, in spec order.

    ``out_dir``: store each finished chunk there (Parquet parts) and skip points already stored, so
    a rerun after an interruption resumes; a finished run also writes ``results.csv`` and
    ``results.parquet`` there. One run writes a folder at a time: another run on the same folder
    raises SweepError at once (``qsim.sweep.lock``). ``workers``: local processes (default: the
    usable cores; 1 runs in this process). ``scheduler``: a Dask scheduler address
    (``tcp://host:8786``) or a ``distributed.Client``; ``dask_local=True`` starts a ``LocalCluster``
    of ``workers`` processes. ``progress``: a bar on stderr (default: only on a terminal).
    ``limit``: evaluate at most that many new points, then stop (the rest is left for a later run).
    ``yes``: allow more than ``POINT_LIMIT`` (100,000) points when the spec sets no ``max_points``.
    ``on_chunk``: called with each finished chunk's rows after they are stored. ``ort_cpu``: the CPU
    whose onnxruntime the accuracy step reproduces under the onnxruntime policy (host, avx2, vnni,
    arm64; default the spec's ``ort_cpu:``, else ``QSIM_ORT_CPU``, else host); it enters the accuracy
    keys, so a store filled for another kind is measured again, not reused.

    Points are streamed to the workers a few chunks at a time; the returned table (and the
    stored parts) hold a row per point.

    Columns: ``point_id``, the axes (workload, precision, profile, batch, each override key), then
    status / reason, latency_s, energy_j, macs, params, weight_bytes, peak_activation_bytes,
    state_bytes, memory_bytes, emulated_nodes, tokens_per_s, fits, accuracy, accuracy_drop, sqnr_db,
    accuracy_metric, evaluated_by and accuracy_key (measured when the spec or the workload has an
    ``evaluation:`` block, ``qsim.sweep.accuracy``; NaN otherwise), fits_/need_/capacity_ per memory,
    ``pareto`` (per workload and batch) and, with ``constraints:``, ``meets_constraints``.
    ``df.attrs`` holds the spec's name, the number of points, the number still to do, the parts set
    aside, the number of accuracy measurements made by this run and the constraints."""
    spec = load_spec(spec)
    total = check_size(spec, yes)  # before anything is created or evaluated
    if spec.evaluations:  # resolved here, once: the accuracy jobs carry the name to every worker
        from qsim.sim.int_runtime import ort_cpu_name

        spec = dataclasses.replace(spec, ort_cpu=ort_cpu_name(ort_cpu if ort_cpu is not None else spec.ort_cpu))
    with StoreLock(out_dir) if out_dir is not None else contextlib.nullcontext():
        store = ResultStore(out_dir) if out_dir is not None else None
        done = store.done_keys() if store else np.zeros(0, dtype=np.uint64)
        todo = _not_done(iter_points(spec), done)
        expected = max(total - len(done), 0) if limit is None else min(limit, total)
        if limit is not None:
            todo = itertools.islice(todo, limit)
        use_dask = scheduler is not None or dask_local
        workers = workers or (2 if use_dask else default_workers())
        size = chunk_size or default_chunk_size(expected, workers)
        collected: list[dict] = []
        bar = Progress(expected, progress)

        def on_done(rows: list[dict]) -> None:
            if store:
                store.append(rows)
            else:
                collected.extend(rows)
            bar.update(len(rows))
            if on_chunk:
                on_chunk(rows)

        def dispatch(task, chunks, on_done, serial: bool, sent: SweepSpec = spec) -> None:
            if use_dask:
                run_dask(sent, chunks, on_done, scheduler, dask_local, workers, task=task)
            elif workers == 1 or serial:
                run_serial(sent, chunks, on_done, task)  # no pool to start: small sweeps and tests
            else:
                run_processes(sent, chunks, workers, on_done, task)

        try:  # costing needs no evaluation data: the spec travels to each chunk without it
            dispatch(evaluate_chunk, chunked(todo, size), on_done, expected <= size,
                     dataclasses.replace(spec, evaluations={}))
        finally:
            bar.close()
        order = id_keys(p.point_id for p in iter_points(spec))  # 8 bytes a point
        frame = store.load(order) if store else rows_to_frame(collected, order)
        measured = 0
        if spec.evaluations:  # accuracy: once per distinct key, on the same executors, stored beside the parts
            accuracy_store = ResultStore(out_dir, "accuracy", STORED) if store else None
            frame, measured = run_accuracy(spec, frame, iter_points(spec), accuracy_store,
                                           lambda task, chunks, done, n: dispatch(task, chunks, done, n <= 1),
                                           progress)
        else:
            frame = join_accuracy(frame, {}, {}, pd.DataFrame(), with_key=False)
        frame = add_constraints_column(add_pareto_column(normalize(frame)), spec.constraints)
        frame.attrs.update(sweep=spec.name, source=spec.source, points=total, pending=total - len(frame),
                           set_aside=[str(p) for p in store.moved] if store else [], evaluations=measured,
                           constraints=dict(spec.constraints), ort_cpu=_ort_cpu_kind(spec),
                           param_axes=list(spec.params))  # workload-parameter axes (seq, context): undotted columns
        if store and not frame.attrs["pending"]:
            write_results(frame, Path(out_dir))
    return frame


def _ort_cpu_kind(spec: SweepSpec) -> str | None:
    """The CPU kind ("host" resolved) whose onnxruntime the accuracy step reproduced; None without one."""
    if not spec.evaluations:
        return None
    from qsim.sim.int_runtime import ort_cpu

    return ort_cpu(spec.ort_cpu)


def write_results(frame: pd.DataFrame, out_dir: Path) -> None:
    """results.csv and results.parquet, each written to a temporary name and renamed."""
    for name, write in (("results.csv", lambda p: frame.to_csv(p, index=False)),
                        ("results.parquet", lambda p: frame.to_parquet(p, index=False))):
        atomic_write(out_dir / name, write)
