"""Design points: the product (or the listed points) of a spec's axes, filtered, with stable ids.

A point's id is a hash of what it computes (workload, precision label and plan, profile, batch
and the overrides applied), not of its position, so an edited spec or a resumed run recognises
points already done. Axis columns hold the *effective* values: an override key a point does not
set shows the profile's own value, and ``batch`` shows the workload file's batch when not swept.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from qsim.sweep.spec import SweepError, SweepSpec, has_key, get_key, load_spec

AXIS_COLUMNS = ("workload", "precision", "profile", "batch")


@dataclass(frozen=True)
class Point:
    point_id: str
    axes: Mapping[str, Any]  # column -> effective value, for the result table
    overrides: Mapping[str, Any]  # dotted profile key -> value actually applied
    batch: int | None  # the batch to build the workload at; None keeps the workload's own


def point_id(spec: SweepSpec, workload: str, precision: str, profile: str, batch: int | None,
             overrides: Mapping[str, Any]) -> str:
    key = {"workload": workload, "precision": precision, "plan": spec.plans[precision], "profile": profile,
           "batch": batch, "overrides": dict(sorted(overrides.items()))}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _make(spec: SweepSpec, workload: str, precision: str, profile: str, batch: int | None,
          overrides: Mapping[str, Any]) -> Point:
    data = spec.profiles[profile][1]
    axes: dict[str, Any] = {"workload": workload, "precision": precision, "profile": profile,
                            "batch": batch if batch is not None else spec.workload_batch.get(workload)}
    for key in spec.overrides:
        axes[key] = overrides[key] if key in overrides else get_key(data, key)
    return Point(point_id(spec, workload, precision, profile, batch, overrides), axes, dict(overrides), batch)


def _candidates(spec: SweepSpec) -> list[Point]:
    if spec.mode == "points":
        return [_make(spec, p["workload"], p["precision"], p["profile"], p.get("batch"), p.get("overrides") or {})
                for p in spec.points]
    keys = list(spec.overrides)
    grid = itertools.product(spec.workloads, spec.plans, spec.profiles, spec.batch or (None,),
                             *(spec.overrides[k] for k in keys))
    return [_make(spec, w, prec, prof, b, dict(zip(keys, values))) for w, prec, prof, b, *values in grid]


def axes_frame(points: list[Point]) -> pd.DataFrame:
    return pd.DataFrame([dict(p.axes) for p in points], columns=None if points else list(AXIS_COLUMNS))


def _filter(spec: SweepSpec, points: list[Point], errors: list[str]) -> list[Point]:
    frame = axes_frame(points)
    keep = pd.Series(True, index=frame.index)
    for i, (kind, body, line) in enumerate(spec.filters):
        where = f"line {line}: filters[{i}].{kind}"
        if kind == "keep":
            try:
                mask = frame.eval(body)
            except Exception as exc:  # pandas raises many types for a bad expression; all are user errors
                errors.append(f"{where}: cannot evaluate {body!r}: {type(exc).__name__}: {exc} "
                              f"(columns: {', '.join(frame.columns)}; put dotted keys in backticks)")
                continue
            if not isinstance(mask, pd.Series) or mask.dtype != bool:
                errors.append(f"{where}: {body!r} is not a true/false condition")
                continue
            keep &= mask
            continue
        match = pd.Series(True, index=frame.index)
        for axis, values in body.items():
            if axis not in frame.columns:
                errors.append(f"{where}.{axis}: not an axis (axes: {', '.join(frame.columns)})")
                continue
            values = values if isinstance(values, list) else [values]
            known = set(frame[axis].dropna())
            for v in values:
                if v not in known:
                    errors.append(f"{where}.{axis}: {v!r} is not a value of this axis "
                                  f"(values: {', '.join(map(str, sorted(known, key=str)))})")
            match &= frame[axis].isin(values)
        keep &= ~match
    return [p for p, k in zip(points, keep) if k]


def _missing_keys(spec: SweepSpec, points: list[Point], errors: list[str]) -> None:
    seen = set()
    for p in points:
        for key in p.overrides:
            if (p.axes["profile"], key) not in seen and not has_key(spec.profiles[p.axes["profile"]][1], key):
                seen.add((p.axes["profile"], key))
                errors.append(f"line {spec.lines.get('overrides', 0)}: overrides.{key}: profile "
                              f"{p.axes['profile']!r} has no such key; skip those points with a filter "
                              f"(- skip: {{profile: {p.axes['profile']}}}) or use mode: points")


def _build(spec: SweepSpec) -> tuple[list[Point], list[str]]:
    errors: list[str] = []
    points = _filter(spec, _candidates(spec), errors)
    _missing_keys(spec, points, errors)
    ids: dict[str, int] = {}
    for i, p in enumerate(points):
        if p.point_id in ids:
            first = ids[p.point_id]
            errors.append(f"line {spec.lines.get('points', 0)}: points[{i}]: the same point as points[{first}]"
                          if spec.mode == "points" else f"line 0: point {i}: evaluated twice ({p.axes})")
        ids.setdefault(p.point_id, i)
    if not points and not errors:
        errors.append(f"line {spec.lines.get('filters', 0)}: filters: no point is left to evaluate")
    return points, errors


def point_errors(spec: SweepSpec) -> list[str]:
    return _build(spec)[1]


def generate_points(spec: SweepSpec | Any) -> list[Point]:
    """The points of a spec, in spec order (product: workloads, precisions, profiles, batch, overrides)."""
    spec = load_spec(spec)
    points, errors = _build(spec)
    if errors:
        raise SweepError(f"{spec.source}: {len(errors)} problem(s):\n" + "\n".join(
            f"  {spec.source}:{e[5:]}" for e in errors))
    return points
