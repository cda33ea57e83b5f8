"""``run_sweep``: spec -> points -> executor -> store -> one tidy DataFrame (a row per point)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from qsim.yamlio import atomic_write
from qsim.sweep.executor import chunked, default_workers, run_dask, run_processes, run_serial
from qsim.sweep.pareto import add_pareto_column
from qsim.sweep.points import generate_points
from qsim.sweep.progress import Progress
from qsim.sweep.spec import SweepSpec, load_spec
from qsim.sweep.store import ResultStore, rows_to_frame


def run_sweep(spec: str | Path | Mapping | SweepSpec, out_dir: str | Path | None = None, workers: int | None = None,
              scheduler: Any = None, dask_local: bool = False, progress: bool | None = None, *,
              chunk_size: int | None = None, limit: int | None = None,
              on_chunk: Callable[[list[dict]], None] | None = None) -> pd.DataFrame:
    """Evaluate every point of a sweep spec; return one row per point, in spec order.

    ``out_dir``: store each finished chunk there (Parquet parts) and skip points already stored, so
    a rerun after an interruption resumes; a finished run also writes ``results.csv`` and
    ``results.parquet`` there. ``workers``: local processes (default: the usable cores; 1 runs in
    this process). ``scheduler``: a Dask scheduler address (``tcp://host:8786``) or a
    ``distributed.Client``; ``dask_local=True`` starts a ``LocalCluster`` of ``workers`` processes.
    ``progress``: a bar on stderr (default: only on a terminal). ``limit``: evaluate at most that
    many new points, then stop (the rest is left for a later run). ``on_chunk``: called with each
    finished chunk's rows after they are stored.

    Columns: ``point_id``, the axes (workload, precision, profile, batch, each override key), then
    status / reason, latency_s, energy_j, macs, params, weight_bytes, peak_activation_bytes,
    state_bytes, memory_bytes, emulated_nodes, tokens_per_s, fits, accuracy (NaN until simulated),
    fits_/need_/capacity_ per memory, and ``pareto`` (per workload and batch). ``df.attrs`` holds
    the spec's name and the number of points still to do."""
    spec = load_spec(spec)
    points = generate_points(spec)
    order = [p.point_id for p in points]
    store = ResultStore(out_dir) if out_dir is not None else None
    done = store.done_ids() if store else set()
    todo = [p for p in points if p.point_id not in done]
    if limit is not None:
        todo = todo[:limit]
    use_dask = scheduler is not None or dask_local
    workers = workers or (2 if use_dask else default_workers())
    collected: list[dict] = []
    bar = Progress(len(todo), progress)

    def on_done(rows: list[dict]) -> None:
        if store:
            store.append(rows)
        else:
            collected.extend(rows)
        bar.update(len(rows))
        if on_chunk:
            on_chunk(rows)

    chunks = chunked(todo, workers, chunk_size)
    try:
        if use_dask:
            run_dask(spec, chunks, on_done, scheduler, dask_local, workers)
        elif workers == 1 or len(chunks) <= 1:
            run_serial(spec, chunks, on_done)  # no pool to start: small sweeps and tests
        else:
            run_processes(spec, chunks, workers, on_done)
    finally:
        bar.close()
    frame = store.load(order) if store else rows_to_frame(collected, order)
    frame = add_pareto_column(frame)
    frame.attrs.update(sweep=spec.name, source=spec.source, points=len(points), pending=len(points) - len(frame))
    if store and not frame.attrs["pending"]:
        write_results(frame, Path(out_dir))
    return frame


def write_results(frame: pd.DataFrame, out_dir: Path) -> None:
    """results.csv and results.parquet, each written to a temporary name and renamed."""
    for name, write in (("results.csv", lambda p: frame.to_csv(p, index=False)),
                        ("results.parquet", lambda p: frame.to_parquet(p, index=False))):
        atomic_write(out_dir / name, write)
