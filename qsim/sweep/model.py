"""The data a sweep passes between its modules: the validated spec, a design point, dotted keys.

Kept apart from ``spec.py`` (which reads and checks YAML) and ``points.py`` (which expands a spec
into points) so that each imports this module and neither imports the other.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from qsim.errors import Problem, SweepError  # SweepError re-exported: qsim.sweep.SweepError

AXIS_COLUMNS = ("workload", "precision", "profile", "batch")


@dataclass(frozen=True)
class SweepSpec:
    """Plain data only (it travels to worker processes and Dask workers)."""

    name: str
    source: str
    mode: str
    workloads: Mapping[str, str]  # label -> shipped name (resolved on the worker) or absolute path
    workload_batch: Mapping[str, Any]  # label -> the workload file's own batch (None if it has none)
    plans: Mapping[str, Any]  # label -> precision spec (string or {default, overrides})
    profiles: Mapping[str, tuple[str, dict]]  # label -> (source path, validated raw data)
    overrides: Mapping[str, tuple]  # product mode: dotted key -> values; points mode: keys seen
    batch: tuple | None = None
    points: tuple = ()
    filters: tuple = ()  # (kind, body, line)
    description: str = ""
    lines: Mapping[str, int] = field(default_factory=dict)  # top-level key -> line, for later errors
    max_points: int | None = None  # the spec's own cap on its point count (see qsim.sweep.points)
    counted: tuple = ()  # (points, cap) counted while loading; points > cap means "more than cap"
    params: Mapping[str, tuple] = field(default_factory=dict)  # workload parameter -> values (product mode)
    # workload label -> its Evaluation (the spec's evaluation block, else the workload file's own);
    # an Evaluation holds its data as arrays, so it travels to the workers with the spec
    evaluations: Mapping[str, Any] = field(default_factory=dict)
    constraints: Mapping[str, Any] = field(default_factory=dict)  # max_accuracy_drop, fits, native_only
    # the CPU whose onnxruntime the accuracy step reproduces under the onnxruntime policy (host, avx2,
    # vnni, arm64); None: QSIM_ORT_CPU, else host. run_sweep resolves it once, on the client, and the
    # accuracy jobs carry it to the workers (a Dask worker has neither the context nor the environment)
    ort_cpu: str | None = None

    @cached_property  # computed once per process: workers compare it on every point
    def fingerprint(self) -> str:
        """Changes when anything a worker caches could change (files' contents included)."""
        evaluations = {k: ev.fingerprint for k, ev in self.evaluations.items()}
        blob = json.dumps([self.workloads, self.plans, self.profiles, evaluations], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    point_id: str
    axes: Mapping[str, Any]  # column -> effective value, for the result table
    overrides: Mapping[str, Any]  # dotted profile key -> value actually applied
    batch: int | None  # the batch to build the workload at; None keeps the workload's own
    params: Mapping[str, Any] = field(default_factory=dict)  # workload parameters (seq, context, ...) set


def plain(value: Any) -> Any:
    """LocatedDict -> dict, recursively: smaller to pickle, and equal across runs."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


_MISSING = object()


def get_key(data: Mapping, dotted: str, default: Any = None) -> Any:
    """The value at a dotted key, or ``default`` where the profile has no such key."""
    node: Any = data
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def has_key(data: Mapping, dotted: str) -> bool:
    return get_key(data, dotted, _MISSING) is not _MISSING


def dotted_keys(data: Mapping, prefix: str = "") -> list[str]:
    """Every leaf of a profile as a dotted key (``memories.sram.capacity_kib``): what overrides may name."""
    out = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        out.extend(dotted_keys(value, path + ".") if isinstance(value, Mapping) else [path])
    return out


def close_key(data: Mapping, dotted: str) -> str:
    """`` (did you mean 'X'?)`` for a dotted key a profile lacks, or ``""``."""
    import difflib

    close = difflib.get_close_matches(dotted, sorted(dotted_keys(data)), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def problems(source: str, errors: list[Problem]) -> SweepError:
    """One error holding every problem, each located in ``source`` (``source:N: key: problem``)."""
    return SweepError(file=source, problems=errors)
