"""Evaluating design points: runs in worker processes (local or Dask), one chunk of points per call.

Each worker builds a workload graph once per (workload, batch) and a profile once per override
combination, and keeps them for the following chunks of the same sweep. A point whose precision
the profile cannot run (no unit, nothing that emulates it) is a row with ``status = refused`` and
the reason; any other exception is a bug and propagates (what was computed before stays stored).
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from qsim.cost.estimate import estimate_graph
from qsim.report import band_columns
from qsim.errors import QsimError
from qsim.hw.profile import apply_overrides, build_profile
from qsim.ir.registry import numel
from qsim.precision import parse_plan
from qsim.sweep.model import Point, SweepSpec
from qsim.workload import load_workload, resolve_workload

# Filled after the points by ``qsim.sweep.accuracy`` (measured once per accuracy key) when the spec
# or the workload has an evaluation block; NaN / empty otherwise. The Pareto front uses ``accuracy``
# (higher is better) only where some point has a value.
ACCURACY_COLUMNS = ("accuracy", "accuracy_drop", "sqnr_db", "accuracy_metric", "evaluated_by", "accuracy_key")
METRIC_COLUMNS = ("status", "reason", "latency_s", "energy_j", "macs", "params", "weight_bytes",
                  "peak_activation_bytes", "state_bytes", "memory_bytes", "emulated_nodes", "tokens_per_s",
                  "fits", *ACCURACY_COLUMNS)

_cache: dict[str, Any] = {"fingerprint": None, "graphs": {}, "profiles": {}, "plans": {}}


def _cached(spec: SweepSpec) -> dict[str, Any]:
    """Per-process caches, reset when a different sweep (or edited files) arrives."""
    if _cache["fingerprint"] != spec.fingerprint:
        _cache.update(fingerprint=spec.fingerprint, graphs={}, profiles={}, plans={})
    return _cache


def _graph(spec: SweepSpec, workload: str, batch: int | None, params: dict | None = None):
    graphs = _cached(spec)["graphs"]
    key = (workload, batch, tuple(sorted((k, repr(v)) for k, v in (params or {}).items())))
    if key not in graphs:
        graphs[key] = load_workload(resolve_workload(spec.workloads[workload]), batch=batch, params=params).graph
    return graphs[key]


def _profile(spec: SweepSpec, label: str, overrides: dict):
    profiles = _cached(spec)["profiles"]
    key = (label, tuple(sorted((k, repr(v)) for k, v in overrides.items())))
    if key not in profiles:
        source, data = spec.profiles[label]
        profiles[key] = build_profile(apply_overrides(data, overrides) if overrides else data, source)
    return profiles[key]


def _plan(spec: SweepSpec, label: str):
    plans = _cached(spec)["plans"]
    if label not in plans:
        plans[label] = parse_plan(spec.plans[label], where=f"precision {label!r}")
    return plans[label]


def _tokens(graph) -> int | None:
    """Tokens a decoder (a graph that keeps a KV cache) processes per call: batch x new positions."""
    if not any(node.state for node in graph.nodes()):
        return None
    return numel(graph.tensor(graph.inputs[0]).shape)


def evaluate_point(spec: SweepSpec, point: Point) -> dict[str, Any]:
    row: dict[str, Any] = {"point_id": point.point_id, **point.axes}
    graph = _graph(spec, point.axes["workload"], point.batch, dict(point.params))
    profile = _profile(spec, point.axes["profile"], dict(point.overrides))
    try:
        est = estimate_graph(graph, _plan(spec, point.axes["precision"]), profile)
    except QsimError as exc:
        row.update(status="refused", reason=str(exc))
        return row
    t = est.totals
    memory = t["weight_bytes"] + t["peak_activation_bytes"] + t["state_bytes"]
    tokens = _tokens(graph)
    row.update(status="ok", reason="", latency_s=t["latency_s"], energy_j=t["energy_j"], macs=t["macs"],
               params=t["params"], weight_bytes=t["weight_bytes"], peak_activation_bytes=t["peak_activation_bytes"],
               state_bytes=t["state_bytes"], memory_bytes=memory, emulated_nodes=t["emulated_nodes"],
               tokens_per_s=tokens / t["latency_s"] if tokens else math.nan, fits=all(t["fits"].values()),
               **band_columns(profile, t["compute_units"]))
    for name, mem in profile.memories.items():
        row[f"fits_{name}"] = t["fits"][name]
        row[f"need_{name}_bytes"] = t["memory_need_bytes"][name]
        row[f"capacity_{name}_bytes"] = mem.capacity_bytes
    return row


def evaluate_chunk(spec: SweepSpec, points: list[Point]) -> list[dict[str, Any]]:
    return [evaluate_point(spec, p) for p in points]


def point_layers(spec: SweepSpec, row) -> pd.DataFrame:
    """The per-layer table (``qsim.cost.estimate_graph``) of one result row, recomputed. Override
    columns hold effective values, so applying them all reproduces the point."""
    overrides = {k: row[k] for k in spec.overrides if k in row and not pd.isna(row[k])}
    overrides = {k: (v.item() if hasattr(v, "item") else v) for k, v in overrides.items()}
    batch = None if pd.isna(row["batch"]) else int(row["batch"])
    params = {k: row[k] for k in spec.params if k in row and not pd.isna(row[k])}
    graph = _graph(spec, row["workload"], batch, {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()})
    profile = _profile(spec, row["profile"], overrides)
    return estimate_graph(graph, _plan(spec, row["precision"]), profile).layers
