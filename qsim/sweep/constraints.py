"""``constraints:`` of a sweep spec: what a point must meet to be picked as the best.

* ``max_accuracy_drop: D``: its measured accuracy drop against fp32 is at most D (a point whose
  accuracy was not measured does not meet it; a drop equal to D, up to float rounding, does);
* ``fits: true``: its weights and activations fit the profile's memories;
* ``native_only: true``: every node runs natively (no emulated precision on that chip).

``add_constraints_column`` adds the boolean ``meets_constraints`` (only when the spec has
constraints); the report's best point is chosen among those points.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

ROUNDING = 1e-12  # 0.9667 - 0.9567 is 0.010000000000000009: a drop of exactly the budget meets it


def meets(frame: pd.DataFrame, constraints: Mapping[str, Any]) -> pd.Series:
    """Boolean Series: ok points that meet every constraint."""
    keep = (frame["status"] == "ok").fillna(False).astype(bool)
    if "max_accuracy_drop" in constraints:
        drop = pd.to_numeric(frame["accuracy_drop"], errors="coerce").astype("float64")
        keep &= drop.notna() & (drop <= constraints["max_accuracy_drop"] + ROUNDING)
    if constraints.get("fits"):
        keep &= frame["fits"].fillna(False).astype(bool)
    if constraints.get("native_only"):
        keep &= (pd.to_numeric(frame["emulated_nodes"], errors="coerce") == 0).fillna(False).astype(bool)
    return keep


def add_constraints_column(frame: pd.DataFrame, constraints: Mapping[str, Any]) -> pd.DataFrame:
    if not constraints:
        return frame
    frame = frame.copy()
    frame["meets_constraints"] = pd.array(meets(frame, constraints).to_numpy(), dtype="boolean") if len(frame) \
        else pd.array([], dtype="boolean")
    return frame


def describe(constraints: Mapping[str, Any]) -> str:
    """``accuracy drop <= 0.01, fits in memory, native precisions only``."""
    parts = []
    if "max_accuracy_drop" in constraints:
        parts.append(f"accuracy drop <= {constraints['max_accuracy_drop']:g}")
    if constraints.get("fits"):
        parts.append("fits in memory")
    if constraints.get("native_only"):
        parts.append("native precisions only")
    return ", ".join(parts) or "none"
