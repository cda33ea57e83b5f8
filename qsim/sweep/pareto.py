"""Pareto fronts: the points no other point beats on every objective at once.

A point is dominated when another is at least as good on every objective and strictly better on
one. Points equal on every objective are all on the front. Refused points and points with a
missing objective value are never on it.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from qsim.errors import QsimError

# Accuracy counts where it was measured (an evaluation block): per group, an objective no point of
# the group has is left out, so a workload without evaluation data keeps a front over cost alone.
DEFAULT_OBJECTIVES = {"latency_s": "min", "energy_j": "min", "memory_bytes": "min", "accuracy": "max"}
GROUP_BY = ("workload", "batch")  # a front compares ways to run one job, not different jobs


def _objectives(df: pd.DataFrame, objectives: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    if objectives is None:
        return {c: d for c, d in DEFAULT_OBJECTIVES.items() if c in df.columns and df[c].notna().any()}
    if not isinstance(objectives, Mapping):
        objectives = {c: "min" for c in objectives}
    for column, direction in objectives.items():
        if column not in df.columns:
            raise QsimError(f"pareto objective {column!r} is not a column (columns: {', '.join(df.columns)})")
        if direction not in ("min", "max"):
            raise QsimError(f"pareto objective {column!r}: direction must be 'min' or 'max', got {direction!r}")
    return dict(objectives)


def _front(values: np.ndarray) -> np.ndarray:
    """Mask of non-dominated rows of an (n, k) array to minimise. After a lexicographic sort no
    later row can dominate an earlier one, so one pass against the front so far suffices:
    O(n x front size)."""
    mask = np.zeros(len(values), dtype=bool)
    front: list[int] = []
    for i in np.lexsort(values.T[::-1]):
        v = values[i]
        if front:
            f = values[front]
            if np.any(np.all(f <= v, axis=1) & np.any(f < v, axis=1)):
                continue
        front.append(i)
        mask[i] = True
    return mask


def pareto_front(df: pd.DataFrame, objectives: Sequence[str] | Mapping[str, str] | None = None,
                 by: Sequence[str] | None = None) -> pd.Series:
    """Boolean Series (index of ``df``): True for rows on the Pareto front.

    ``objectives``: column names to minimise, or ``{column: "min" | "max"}``; default latency_s,
    energy_j, memory_bytes (min) and accuracy (max) where present. ``by``: compute one front per
    group of these columns (None: one front over all rows)."""
    objs = _objectives(df, objectives)
    result = pd.Series(False, index=df.index, dtype=bool)
    if not objs or df.empty:
        return result
    values = pd.DataFrame({c: pd.to_numeric(df[c], errors="coerce").astype("float64") * (1 if d == "min" else -1)
                           for c, d in objs.items()}, index=df.index)
    usable = pd.Series(True, index=df.index) if "status" not in df.columns else (
        (df["status"] == "ok").fillna(False).astype(bool))
    groups = [df.index[usable]] if not by else [
        g.index for _, g in df[usable].groupby(list(by), dropna=False, sort=False)]
    for index in groups:
        group = values.loc[index]
        if objectives is None:  # a workload without accuracy (no evaluation) still has a front over cost
            group = group[[c for c in group.columns if group[c].notna().any()]]
        group = group[group.notna().all(axis=1)]
        if len(group.columns):
            result.loc[group.index] = _front(group.to_numpy())
    return result


def add_pareto_column(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    by = [c for c in GROUP_BY if c in frame.columns]
    frame["pareto"] = pd.array(pareto_front(frame, by=by).to_numpy(), dtype="boolean") if len(frame) else pd.array(
        [], dtype="boolean")
    return frame
