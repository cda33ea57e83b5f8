"""The result table's dtypes, and the on-disk store that makes an interrupted sweep resumable.

The store is a folder of Parquet part files, one per completed chunk, under ``OUT/parts/``. A part
is written to a hidden temporary name and renamed into place (atomic on POSIX), so a part is
either complete or absent: a crash loses at most the chunks in flight, never a row already
stored, and never leaves half a part. On restart the ids in the parts are skipped; a point stored
twice (two runs sharing a folder) is kept once. One sweep at a time per folder.
"""
from __future__ import annotations

import numbers
import os
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from qsim.sweep.evaluate import METRIC_COLUMNS
from qsim.sweep.points import AXIS_COLUMNS
from qsim.sweep.spec import SweepError

STRING = ("point_id", "workload", "precision", "profile", "status", "reason", "accuracy_metric")
FLOAT = ("latency_s", "energy_j", "tokens_per_s", "accuracy")
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
    if column == "fits" or column.startswith("fits_") or column == "pareto":
        return "boolean"
    return _axis_dtype(values)


def _column_order(columns: Iterable[str]) -> list[str]:
    columns = list(columns)
    metrics = [c for c in METRIC_COLUMNS if c in columns]
    memory = sorted(c for c in columns if c.startswith(("fits_", "need_", "capacity_")))
    head = ["point_id", *AXIS_COLUMNS]
    rest = [c for c in columns if c not in head and c not in metrics and c not in memory and c != "pareto"]
    return [c for c in head if c in columns] + rest + metrics + memory + (["pareto"] if "pareto" in columns else [])


def normalize(frame: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Fixed column order and dtypes; with ``order`` (point ids), only those rows, once each, in that order."""
    if order is not None:
        rank = {pid: i for i, pid in enumerate(order)}
        frame = frame[frame["point_id"].isin(rank)].drop_duplicates("point_id")
        frame = frame.iloc[frame["point_id"].map(rank).argsort(kind="stable")]
    frame = frame.reset_index(drop=True)[_column_order(frame.columns)]
    converted = {}
    for column in frame.columns:
        values = frame[column].astype(object).where(frame[column].notna(), None)
        dtype = _dtype(column, values)
        items = [v if v is None or dtype != "string" else str(v) for v in values]
        converted[column] = pd.array(items, dtype=dtype)
    return pd.DataFrame(converted, index=frame.index)


def rows_to_frame(rows: list[dict[str, Any]], order: list[str] | None = None) -> pd.DataFrame:
    return normalize(pd.DataFrame(rows), order)


class ResultStore:
    """Append-only Parquet parts under ``out_dir/parts``."""

    def __init__(self, out_dir: str | Path):
        try:
            import pyarrow  # noqa: F401  (pandas needs it for Parquet)
        except ImportError:
            raise SweepError("storing sweep results needs pyarrow: pip install pyarrow "
                             "(or run without an output folder)") from None
        self.dir = Path(out_dir) / "parts"
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):  # a part whose write was interrupted: its rows are redone
            stale.unlink()
        self.run = uuid.uuid4().hex[:8]  # parts of different runs never collide
        self.seq = 0

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet"))

    def done_ids(self) -> set[str]:
        done: set[str] = set()
        for part in self.parts():
            done.update(pd.read_parquet(part, columns=["point_id"])["point_id"])
        return done

    def append(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        name = f"part-{self.run}-{self.seq:06d}.parquet"
        self.seq += 1
        tmp = self.dir / f".{name}.tmp"
        rows_to_frame(rows).to_parquet(tmp, index=False)
        with open(tmp, "rb") as fh:  # the data reaches the disk before the name does
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / name)

    def load(self, order: list[str] | None = None) -> pd.DataFrame:
        parts = [pd.read_parquet(p) for p in self.parts()]
        if not parts:
            return normalize(pd.DataFrame({"point_id": pd.Series([], dtype=object)}), order)
        return normalize(pd.concat(parts, ignore_index=True), order)
