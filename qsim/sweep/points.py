"""Design points: the product (or the listed points) of a spec's axes, filtered, with stable ids.

Points are generated one at a time (``iter_points``), never all at once, so a sweep's memory is
bounded by its chunk size, not by its point count; ``count_points`` streams them to count before
any work is done. A point's id is a hash of what it computes (workload, precision label and plan,
profile, batch and the overrides applied), not of its position, so an edited spec or a resumed
run recognises points already done. Axis columns hold the *effective* values: an override key a
point does not set shows the profile's own value, and ``batch`` shows the workload file's batch
when not swept.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Any, Iterator, Mapping

from qsim.errors import Problem
from qsim.sweep.filters import FilterError, compile_filter
from qsim.sweep.model import Point, SweepError, SweepSpec, get_key, has_key, problems

POINT_LIMIT = 100_000  # above this, a sweep needs --yes (yes=True) or the spec's own max_points


def point_id(spec: SweepSpec, workload: str, precision: str, profile: str, batch: int | None,
             overrides: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> str:
    key = {"workload": workload, "precision": precision, "plan": spec.plans[precision], "profile": profile,
           "batch": batch, "overrides": dict(sorted(overrides.items()))}
    if params:  # only when set: the ids of sweeps without workload parameters stay as they were
        key["params"] = dict(sorted(params.items()))
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _make(spec: SweepSpec, workload: str, precision: str, profile: str, batch: int | None,
          overrides: Mapping[str, Any], ids: bool = True, params: Mapping[str, Any] | None = None) -> Point:
    data = spec.profiles[profile][1]
    axes: dict[str, Any] = {"workload": workload, "precision": precision, "profile": profile,
                            "batch": batch if batch is not None else spec.workload_batch.get(workload)}
    for key in spec.overrides:
        axes[key] = overrides[key] if key in overrides else get_key(data, key)
    for name in spec.params:
        axes[name] = (params or {}).get(name)
    pid = point_id(spec, workload, precision, profile, batch, overrides, params) if ids else ""
    return Point(pid, axes, dict(overrides), batch, dict(params or {}))


def candidate_count(spec: SweepSpec) -> int:
    """Points before filters, by arithmetic (nothing is generated)."""
    if spec.mode == "points":
        return len(spec.points)
    sizes = [len(spec.workloads), len(spec.plans), len(spec.profiles), len(spec.batch or (None,)),
             *(len(v) for v in spec.params.values()), *(len(v) for v in spec.overrides.values())]
    return math.prod(sizes)


def _candidates(spec: SweepSpec, ids: bool = True) -> Iterator[Point]:
    """Unfiltered points; ``ids=False`` leaves ids empty (counting needs none: hashing is most of the cost)."""
    if spec.mode == "points":
        for p in spec.points:
            yield _make(spec, p["workload"], p["precision"], p["profile"], p.get("batch"), p.get("overrides") or {},
                        params=p.get("params") or {})
        return
    keys, names = list(spec.overrides), list(spec.params)
    grid = itertools.product(spec.workloads, spec.plans, spec.profiles, spec.batch or (None,),
                             *(spec.params[n] for n in names), *(spec.overrides[k] for k in keys))
    for w, prec, prof, b, *values in grid:
        params = dict(zip(names, values[:len(names)]))
        yield _make(spec, w, prec, prof, b, dict(zip(keys, values[len(names):])), ids, params)


def axis_values(spec: SweepSpec) -> dict[str, set]:
    """Every value each axis can take, from the spec alone (for checking skip filters)."""
    values: dict[str, set] = {"workload": set(spec.workloads), "precision": set(spec.plans),
                              "profile": set(spec.profiles), "batch": set()}
    if spec.mode == "points":
        values["profile"] = {p["profile"] for p in spec.points}
        values["workload"] = {p["workload"] for p in spec.points}
        values["precision"] = {p["precision"] for p in spec.points}
        for p in spec.points:
            values["batch"].add(p.get("batch", spec.workload_batch.get(p["workload"])))
    else:
        values["batch"] = set(spec.batch) if spec.batch else set(spec.workload_batch.values())
    for key, listed in spec.overrides.items():
        values[key] = set(listed) | {p.get("overrides", {}).get(key) for p in spec.points}
        values[key] |= {get_key(data, key) for _, data in spec.profiles.values()}
        values[key].discard(None)
    for name, listed in spec.params.items():
        values[name] = set(listed) | {p.get("params", {}).get(name) for p in spec.points}
        values[name].discard(None)
    values["batch"].discard(None)
    return values


def compile_filters(spec: SweepSpec) -> tuple[list[tuple[tuple[int, str], Any]], list[Problem]]:
    """[((line, key), filter)] and the problems found without looking at any point."""
    axes = axis_values(spec)
    compiled, errors = [], []
    for i, (kind, body, line) in enumerate(spec.filters):
        key = f"filters[{i}].{kind}"
        flt, found = compile_filter(kind, body, axes, key)  # found: "filters[i].kind...: problem" texts
        errors.extend(Problem(text, line=line) for text in found)
        if flt is not None:
            compiled.append(((line, key), flt))
    return compiled, errors


def _stream(spec: SweepSpec, filters: list, errors: list[Problem] | None, ids: bool = True) -> Iterator[Point]:
    """Filtered points; a problem met on the way is appended to ``errors`` (when given: the point
    is dropped) or raised as a SweepError."""
    missing = {(prof, key) for prof, (_, data) in spec.profiles.items() for key in spec.overrides
               if spec.mode == "product" and not has_key(data, key)}
    reported: set = set()
    for point in _candidates(spec, ids):
        keep = True
        for (line, key), flt in filters:
            try:
                keep = flt.keeps(point.axes)
            except FilterError as exc:
                keep, message = False, Problem(str(exc), line=line, key=key)
                if errors is None:
                    raise problems(spec.source, [message]) from None
                if message not in reported:
                    reported.add(message)
                    errors.append(message)
            if not keep:
                break
        if not keep:
            continue
        for pair in missing:
            if pair[0] == point.axes["profile"] and pair not in reported:
                reported.add(pair)
                message = Problem(f"profile {pair[0]!r} has no such key; skip those points with a filter "
                                  f"(- skip: {{profile: {pair[0]}}}) or use mode: points",
                                  line=spec.lines.get("overrides", 0), key=f"overrides.{pair[1]}")
                if errors is None:
                    raise problems(spec.source, [message])
                errors.append(message)
        yield point


def survey(spec: SweepSpec, stop_after: int | None = None) -> tuple[int, list[Problem]]:
    """(number of points, problems), streaming: memory does not grow with the point count. Counting
    stops past ``stop_after`` (the count is then ``stop_after + 1``)."""
    filters, errors = compile_filters(spec)
    if errors:
        return 0, errors
    count, seen = 0, {}
    for point in _stream(spec, filters, errors, ids=spec.mode == "points"):
        if spec.mode == "points":  # listed points can repeat; a product cannot (values are unique)
            if point.point_id in seen:
                errors.append(Problem(f"the same point as points[{seen[point.point_id]}]",
                                      line=spec.lines.get("points", 0), key=f"points[{count}]"))
            seen.setdefault(point.point_id, count)
        count += 1
        if stop_after is not None and count > stop_after:
            break
    if not count and not errors:
        errors.append(Problem("no point is left to evaluate", line=spec.lines.get("filters", 0), key="filters"))
    return count, errors


def check_size(spec: SweepSpec, yes: bool = False) -> int:
    """The point count, computed before any work. Above POINT_LIMIT it needs ``yes`` (``--yes``);
    a spec's ``max_points`` replaces the limit (and ``yes`` does not lift it)."""
    limit = spec.max_points if spec.max_points is not None else (None if yes else POINT_LIMIT)
    count, cap = spec.counted or (None, None)
    if count is None or (count > cap and (limit is None or limit > cap)):  # not counted far enough when loading
        count, errors = survey(spec, stop_after=limit)
        if errors:
            raise problems(spec.source, errors)
    if limit is not None and count > limit:
        why = (f"its max_points is {limit:,}" if spec.max_points is not None else
               f"above {limit:,} points qsim needs --yes (run_sweep(..., yes=True)) or max_points: N in the spec")
        raise SweepError(f"{spec.source}:{spec.lines.get('name', 1)}: sweep {spec.name!r} has more than {limit:,} "
                         f"points ({candidate_count(spec):,} before filters); {why}")
    return count


def iter_points(spec: SweepSpec) -> Iterator[Point]:
    """The points of a validated spec, one at a time, in spec order (product: workloads, precisions,
    profiles, batch, overrides; the last varies fastest)."""
    filters, errors = compile_filters(spec)
    if errors:
        raise problems(spec.source, errors)
    yield from _stream(spec, filters, None)
