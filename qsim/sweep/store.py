"""The result table's dtypes, and the on-disk store that makes an interrupted sweep resumable.

The store is a folder of Parquet part files, one per completed chunk, under ``OUT/parts/``. A part
is written to a hidden temporary name and renamed into place (atomic on POSIX), so a part is
either complete or absent: a crash loses at most the chunks in flight, never a row already
stored, and never leaves half a part. On restart the ids in the parts are skipped. One run writes
a folder at a time (``qsim.sweep.lock``); a run never deletes a part. A part that cannot be read
(truncated, empty, other columns) is named on stderr, moved into ``OUT/corrupt/`` and its points
are evaluated again.
"""
from __future__ import annotations

import numbers
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from qsim.files import atomic_write
from qsim.sweep.evaluate import METRIC_COLUMNS
from qsim.sweep.lock import holds
from qsim.sweep.model import AXIS_COLUMNS, SweepError

STRING = ("point_id", "workload", "precision", "profile", "status", "reason", "accuracy_metric", "accuracy_key",
          "evaluated_by", "key")
FLOAT = ("latency_s", "energy_j", "tokens_per_s", "accuracy", "accuracy_drop", "sqnr_db", "accuracy_fp32")
INTEGER = ("batch", "macs", "params", "weight_bytes", "peak_activation_bytes", "state_bytes", "memory_bytes",
           "emulated_nodes")


def _axis_dtype(values: pd.Series) -> str:
    """Override axes hold numbers, strings or booleans; pick one dtype from the values alone, so the
    table is the same however its rows were chunked."""
    present = [v for v in values if v is not None]
    is_bool = [isinstance(v, (bool, np.bool_)) for v in present]
    if present and all(is_bool):
        return "boolean"
    if any(is_bool):
        return "string"
    if present and all(isinstance(v, numbers.Integral) for v in present):
        return "Int64"
    if all(isinstance(v, numbers.Real) for v in present):
        return "float64"
    return "string"


def _dtype(column: str, values: pd.Series) -> str:
    if column in STRING:
        return "string"
    if column in FLOAT:
        return "float64"
    if column in INTEGER or (column.startswith(("need_", "capacity_")) and column.endswith("_bytes")):
        return "Int64"
    if column in ("fits", "pareto", "meets_constraints", "error_band_covers") or column.startswith("fits_"):
        return "boolean"
    return _axis_dtype(values)


def _column_order(columns: Iterable[str]) -> list[str]:
    columns = list(columns)
    metrics = [c for c in METRIC_COLUMNS if c in columns]
    memory = sorted(c for c in columns if c.startswith(("fits_", "need_", "capacity_")))
    head = ["point_id", *AXIS_COLUMNS]
    rest = [c for c in columns if c not in head and c not in metrics and c not in memory and c != "pareto"]
    tail = [c for c in ("pareto", "meets_constraints") if c in columns]
    rest = [c for c in rest if c not in tail]
    return [c for c in head if c in columns] + rest + metrics + memory + tail


def id_keys(ids: Iterable[str]) -> np.ndarray:
    """Point ids (16 hex digits) as uint64: 8 bytes per point where a set of strings takes ~100."""
    return np.fromiter((int(i, 16) for i in ids), dtype=np.uint64)


def _in_order(frame: pd.DataFrame, order: list[str] | np.ndarray) -> pd.DataFrame:
    """The rows whose ids are in ``order``, once each, in that order."""
    order = order if isinstance(order, np.ndarray) else id_keys(order)
    keys = id_keys(frame["point_id"])
    by_key = np.argsort(order, kind="stable")
    slot = np.searchsorted(order, keys, sorter=by_key).clip(max=max(len(order) - 1, 0))
    found = order[by_key[slot]] == keys if len(order) else np.zeros(len(keys), dtype=bool)
    rank = np.where(found, by_key[slot], -1)
    frame = frame.assign(_rank=rank)[found].drop_duplicates("point_id")
    return frame.sort_values("_rank", kind="stable").drop(columns="_rank")


def normalize(frame: pd.DataFrame, order: list[str] | np.ndarray | None = None) -> pd.DataFrame:
    """Fixed column order and dtypes; with ``order`` (point ids, or their ``id_keys``), only those
    rows, once each, in that order."""
    if order is not None:
        frame = _in_order(frame, order)
    frame = frame.reset_index(drop=True)[_column_order(frame.columns)]
    converted = {}
    for column in frame.columns:
        values = frame[column].astype(object).where(frame[column].notna(), None)
        dtype = _dtype(column, values)
        items = [v if v is None or dtype != "string" else str(v) for v in values]
        converted[column] = pd.array(items, dtype=dtype)
    return pd.DataFrame(converted, index=frame.index)


def rows_to_frame(rows: list[dict[str, Any]], order: list[str] | np.ndarray | None = None) -> pd.DataFrame:
    return normalize(pd.DataFrame(rows), order)


REQUIRED = ("point_id", "workload", "precision", "profile", "status")


class ResultStore:
    """Append-only Parquet parts under ``out_dir/parts``. Writing, and moving unreadable parts aside,
    need the folder's ``StoreLock`` held by this process; reading does not.

    ``folder`` and ``required``: another table kept the same way beside the points (the sweep's
    accuracy measurements under ``out_dir/accuracy``, one row per accuracy key in ``key``)."""

    def __init__(self, out_dir: str | Path, folder: str = "parts", required: tuple[str, ...] = ()):
        try:
            import pyarrow  # noqa: F401  (pandas needs it for Parquet)
        except ImportError:
            raise SweepError("storing sweep results needs pyarrow: pip install pyarrow "
                             "(or run without an output folder)") from None
        self.out = Path(out_dir)
        self.dir = self.out / folder
        self.required = required or REQUIRED
        self.id_column = self.required[0]
        self.run = uuid.uuid4().hex[:8]  # parts of different runs never collide
        self.seq = 0
        self.moved: list[Path] = []  # unreadable parts moved into corrupt/ by this store
        if holds(self.out):
            self.dir.mkdir(parents=True, exist_ok=True)
            for stale in self.dir.glob(".*.tmp"):  # an interrupted write of a run that no longer holds the lock
                stale.unlink()

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet"))

    def _read(self, part: Path, columns: list[str] | None = None) -> pd.DataFrame | None:
        """A part's rows, or None for a part that cannot be read (moved aside when writing)."""
        try:
            frame = pd.read_parquet(part)
            missing = [c for c in self.required if c not in frame.columns]
            if missing:
                raise ValueError(f"no column {', '.join(missing)}")
            ids = frame[self.id_column]
            if ids.isna().any() or not ids.map(lambda i: isinstance(i, str)).all():
                raise ValueError("ids missing")
        except FileNotFoundError:  # moved aside meanwhile by the writer
            return None
        except Exception as exc:  # pyarrow raises many types for a damaged file; all mean "unreadable"
            self._set_aside(part, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return None
        return frame[columns] if columns else frame

    def _set_aside(self, part: Path, why: str) -> None:
        if not holds(self.out):
            print(f"qsim: {part} cannot be read ({why}); skipped", file=sys.stderr)
            return
        target = self.out / "corrupt" / part.name
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            target = target.with_name(f"{part.stem}-{uuid.uuid4().hex[:6]}{part.suffix}")
        os.replace(part, target)
        self.moved.append(target)
        print(f"qsim: {part} cannot be read ({why}); moved to {target}, its points are evaluated again",
              file=sys.stderr)

    def done_keys(self) -> np.ndarray:
        """The stored points' ids as sorted ``id_keys``; unreadable parts are set aside first."""
        keys = [id_keys(frame[self.id_column]) for part in self.parts()
                if (frame := self._read(part, [self.id_column])) is not None]
        return np.unique(np.concatenate(keys)) if keys else np.zeros(0, dtype=np.uint64)

    def done_ids(self) -> set[str]:
        return {f"{int(k):016x}" for k in self.done_keys()}

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if not holds(self.out):
            raise SweepError(f"{self.out}: writing a sweep store needs its lock (qsim.sweep.lock.StoreLock)")
        name = f"part-{self.run}-{self.seq:06d}.parquet"
        self.seq += 1
        frame = rows_to_frame(rows)
        atomic_write(self.dir / name, lambda tmp: frame.to_parquet(tmp, index=False), durable=True)

    def load(self, order: list[str] | np.ndarray | None = None) -> pd.DataFrame:
        parts = [frame for part in self.parts() if (frame := self._read(part)) is not None]
        if not parts:
            return normalize(pd.DataFrame({self.id_column: pd.Series([], dtype=object)}), order)
        return normalize(pd.concat(parts, ignore_index=True), order)
