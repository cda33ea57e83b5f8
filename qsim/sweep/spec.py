"""Sweep specs: parse -> validate (every problem at once, ``file:line: key: problem``) -> SweepSpec.

```yaml
name: precision_x_profile
workloads: [mobilenet_v2, resnet50]            # shipped names or workload YAML / model paths
precisions:
  - int8
  - w4a16
  - {label: int8_fp16_head, default: int8, overrides: [{op: Gemm, precision: fp16}]}
profiles: [mobile, cloud]                      # shipped names or profile YAML paths
overrides: {memories.sram.capacity_kib: [1024, 4096]}   # profile keys (dotted) -> values
batch: [1, 8]                                  # optional
params: {seq: [128, 384]}                      # optional: workload parameters (seq, context, builder params)
filters:
  - skip: {profile: iot, workload: resnet50}   # drop points matching every given axis
  - keep: "batch == 1 or profile == 'cloud'"   # a condition over the axes (qsim.sweep.filters)
max_points: 200000                             # optional: this spec's cap on its point count
evaluation: {data: digits, metric: top1}       # optional: measure accuracy (qsim.evaluation.data)
constraints: {max_accuracy_drop: 0.01, fits: true, native_only: true}   # optional: what "best" must meet
ort_cpu: avx2                                  # optional: the CPU whose onnxruntime to simulate (host, avx2, vnni, arm64)
```

``mode: product`` (the default) evaluates the cartesian product; ``mode: points`` evaluates an
explicit ``points:`` list of ``{workload, precision, profile, batch?, overrides?, params?}`` (``precision``
there is a label from ``precisions`` or a precision string). ``name`` is a plain file name: the
default output folder is ``reports/NAME``. ``ort_cpu`` enters the accuracy keys of onnxruntime-policy
points (``qsim sweep --ort-cpu`` overrides it; without either, ``QSIM_ORT_CPU``, else this machine).
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Mapping

from qsim.errors import Problem, QsimError, SweepError
from qsim.files import path_exists
from qsim.hw.profile import apply_overrides, check_profile_data, resolve_profile_path
from qsim.precision import parse_plan
from qsim.schema import problems as schema_problems
from qsim.sweep.evaluate import METRIC_COLUMNS
from qsim.sweep.model import AXIS_COLUMNS, SweepSpec, close_key, has_key, plain, problems
from qsim.sweep.points import POINT_LIMIT, iter_points, survey
from qsim.sweep.schema import SPEC_SCHEMA
from qsim.sweep.spec_eval import check_constraints, load_evaluations
from qsim.workload import WORKLOAD_DIR, load_workload, resolve_workload
from qsim.yamlio import line_of, load_yaml

__all__ = ["SweepError", "SweepSpec", "load_spec", "generate_points"]

PARAM_RESERVED = {"point_id", *AXIS_COLUMNS, *METRIC_COLUMNS}  # a workload parameter becomes a column


def _indent(message: str) -> str:
    return str(message).replace("\n", "\n      ")


class _Checker:
    """Collects the semantic problems (names, precisions, profile keys) after the schema passed."""

    def __init__(self, base: Path):
        self.base = base
        self.errors: list[Problem] = []
        self.workloads: dict[str, str] = {}
        self.paths: dict[str, Path] = {}
        self.workload_batch: dict[str, Any] = {}
        self.workload_data: dict[str, Mapping] = {}  # label -> the workload file's data ({} for a model file)
        self.where: dict[str, tuple[int, str]] = {}  # label -> (line, key) that first named it
        self.profiles: dict[str, tuple[str, dict]] = {}

    def error(self, line: int, key: str, problem: str) -> None:
        self.errors.append(Problem(_indent(problem), line=line, key=key))

    def _too_long(self, label: str, line: int, key: str) -> bool:
        """A name no file system holds (the OS refuses it with an OSError before anything is looked up)."""
        longest = max((len(part.encode()) for part in Path(str(label)).parts), default=0)
        if longest > 255:
            self.error(line, key, f"a name of {longest} bytes: no file or shipped name is that long")
        return longest > 255

    def workload(self, label: str, line: int, key: str) -> bool:
        if label in self.workloads:
            return True
        if self._too_long(label, line, key):
            return False
        path = resolve_workload(label)
        if not path_exists(path) and not Path(label).is_absolute() and path_exists(self.base / label):
            path = self.base / label  # a path relative to the spec file
        if not path_exists(path):
            shipped = ", ".join(sorted(p.stem for p in WORKLOAD_DIR.glob("*.yaml")))
            self.error(line, key, f"no workload file {label!r} and no shipped workload of that name "
                                  f"(shipped: {shipped})")
            return False
        try:
            load_workload(path)  # builds the graph once: a broken workload is a spec error, not N refusals
        except QsimError as exc:
            self.error(line, key, f"workload {label!r}: {exc}")
            return False
        data = load_yaml(path) if path.suffix in (".yaml", ".yml") else {}
        shipped = path.parent == WORKLOAD_DIR.resolve() and path.stem == label
        self.workloads[label] = label if shipped else str(path.resolve())  # a shipped name resolves on each worker
        self.paths[label] = path
        self.workload_data[label] = data if isinstance(data, Mapping) else {}
        self.where[label] = (line, key)
        self.workload_batch[label] = data.get("batch") if isinstance(data, Mapping) else None
        return True

    def workload_param(self, label: str, name: str, value: Any, line: int, key: str) -> None:
        """A workload parameter value passes the workload file's own checks (and builds)."""
        if label not in self.paths or self.reserved(name, line, key):
            return  # the workload itself, or the name, is reported
        try:
            load_workload(self.paths[label], params={name: value}, origin="params:")
        except QsimError as exc:
            self.error(line, key, f"workload {label!r}: {exc}")

    def reserved(self, name: str, line: int, key: str) -> bool:
        """A parameter becomes a result column: it must not shadow one (reported once per key)."""
        if name not in PARAM_RESERVED:
            return False
        problem = Problem(f"{name!r} is a column of the results; "
                          + ("sweep it with the batch axis" if name == "batch" else "it cannot be a parameter"),
                          line=line, key=key)
        if problem not in self.errors:
            self.errors.append(problem)
        return True

    def profile(self, label: str, line: int, key: str) -> bool:
        if label in self.profiles:
            return True
        if self._too_long(label, line, key):
            return False
        try:
            path = resolve_profile_path(label)
            if not path_exists(path) and path_exists(self.base / label):
                path = self.base / label
            data = load_yaml(path)
            check_profile_data(data, str(path))
        except QsimError as exc:
            self.error(line, key, f"profile {label!r}: {exc}")
            return False
        self.profiles[label] = (str(path.resolve()), plain(data))
        return True

    def plan(self, spec: Any, line: int, key: str) -> bool:
        try:
            parse_plan(spec, where=key)
        except QsimError as exc:
            self.error(line, key, str(exc))
            return False
        return True

    def override(self, profile: str, dotted: str, value: Any, line: int, key: str) -> None:
        source, data = self.profiles[profile]
        try:
            check_profile_data(apply_overrides(data, {dotted: value}), source)
        except QsimError as exc:  # keep the profile's problems, drop their (meaningless here) lines
            found = [str(dataclasses.replace(p, file=None, line=None)) for p in exc.problems]
            self.error(line, key, f"profile {profile!r} with {dotted} = {value!r}: {'; '.join(found) or exc}")


def _plans(data: Mapping, chk: _Checker) -> dict[str, Any]:
    plans: dict[str, Any] = {}
    items = data.get("precisions") or []
    line = line_of(data, "precisions")
    for i, item in enumerate(items):
        key = f"precisions[{i}]"
        if isinstance(item, Mapping):
            label, spec = item["label"], {k: plain(v) for k, v in item.items() if k != "label"}
            line_i = getattr(item, "line", line)
        else:
            label, spec, line_i = item, item, line
        if label in plans:
            chk.error(line_i, key, f"duplicate precision label {label!r}")
        elif chk.plan(spec, line_i, key):
            plans[label] = spec
    return plans


def _check_product(data: Mapping, chk: _Checker) -> tuple[dict, tuple | None]:
    for key in ("workloads", "precisions", "profiles"):
        if key not in data:
            chk.error(getattr(data, "line", 1), key,
                      "missing required key (mode: product)")
    for key in ("workloads", "profiles", "batch"):
        _duplicates(data.get(key) or [], line_of(data, key), key, chk)
    for dotted, values in (data.get("overrides") or {}).items():
        _duplicates(values, line_of(data["overrides"], dotted), f"overrides.{dotted}", chk)
    for i, label in enumerate(data.get("workloads") or []):
        chk.workload(label, line_of(data, "workloads"), f"workloads[{i}]")
    for i, label in enumerate(data.get("profiles") or []):
        chk.profile(label, line_of(data, "profiles"), f"profiles[{i}]")
    overrides = data.get("overrides") or {}
    for dotted, values in overrides.items():
        line = line_of(overrides, dotted)
        if chk.profiles and not any(has_key(pdata, dotted) for _, pdata in chk.profiles.values()):
            chk.error(line, f"overrides.{dotted}", "no profile of this sweep has this key"
                      + close_key(next(iter(chk.profiles.values()))[1], dotted))
            continue
        for profile in chk.profiles:
            if has_key(chk.profiles[profile][1], dotted):
                for i, value in enumerate(values):
                    chk.override(profile, dotted, value, line, f"overrides.{dotted}[{i}]")
    params = data.get("params") or {}
    for name, values in params.items():
        _duplicates(values, line_of(params, name), f"params.{name}", chk)
        if name in overrides:
            chk.error(line_of(params, name), f"params.{name}", "also an override key: one column each")
        if chk.reserved(name, line_of(params, name), f"params.{name}"):
            continue
        for i, value in enumerate(values):
            for label in data.get("workloads") or []:
                chk.workload_param(label, name, value, line_of(params, name), f"params.{name}[{i}]")
    batch = tuple(data["batch"]) if "batch" in data else None
    return {k: tuple(v) for k, v in overrides.items()}, batch, {k: tuple(v) for k, v in params.items()}


def _duplicates(values: list, line: int, key: str, chk: _Checker) -> None:
    """A value listed twice would make the same points twice."""
    seen: dict = {}
    for i, value in enumerate(values):
        if isinstance(value, (str, int, float, bool)) and (type(value), value) in seen:
            chk.error(line, f"{key}[{i}]", f"{value!r} is listed twice (first as {key}[{seen[(type(value), value)]}])")
        elif isinstance(value, (str, int, float, bool)):
            seen[(type(value), value)] = i


def _check_points(data: Mapping, chk: _Checker, plans: dict) -> tuple[tuple, dict, dict]:
    for key in ("workloads", "profiles", "overrides", "batch", "params"):
        if key in data:
            chk.error(line_of(data, key), key, "only in mode: product (in mode: points each point names its own)")
    points, keys, names = [], {}, {}
    for i, point in enumerate(data.get("points") or []):
        line, key = getattr(point, "line", line_of(data, "points")), f"points[{i}]"
        ok = chk.workload(point["workload"], line, f"{key}.workload")
        ok &= chk.profile(point["profile"], line, f"{key}.profile")
        prec = point["precision"]
        if prec not in plans and chk.plan(prec, line, f"{key}.precision"):
            plans[prec] = prec
        for dotted, value in (point.get("overrides") or {}).items():
            keys.setdefault(dotted, ())
            if ok and not has_key(chk.profiles[point["profile"]][1], dotted):
                chk.error(line, f"{key}.overrides.{dotted}", f"profile {point['profile']!r} has no key {dotted!r}")
            elif ok:
                chk.override(point["profile"], dotted, value, line, f"{key}.overrides.{dotted}")
        for name, value in (point.get("params") or {}).items():
            names.setdefault(name, ())
            if ok:
                chk.workload_param(point["workload"], name, value, line, f"{key}.params.{name}")
        if point.get("params") and point.get("overrides"):
            for name in set(point["params"]) & set(point["overrides"]):
                chk.error(line, f"{key}.params.{name}", "also an override key: one column each")
        points.append(plain(point))
    return tuple(points), keys, names


def _raise(source: str, errors: list[Problem]) -> None:
    if errors:
        raise problems(source, errors)


def load_spec(spec: str | Path | Mapping | SweepSpec) -> SweepSpec:
    """Read and validate a sweep spec (a YAML path or an equivalent dict); raise SweepError listing
    every problem."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        data, source, base = copy.deepcopy(spec), "<sweep spec>", Path.cwd()
    else:
        path = Path(spec)
        shipped = WORKLOAD_DIR.resolve() / "sweeps" / f"{spec}.yaml"
        if not path_exists(path) and not path.suffix and path_exists(shipped):
            path = shipped  # a shipped sweep's name
        try:
            data = load_yaml(path, check=lambda d: schema_problems(d, SPEC_SCHEMA))
        except QsimError as exc:
            raise exc.retyped(SweepError) from None
        source, base = str(path), path.parent
    errors = schema_problems(data, SPEC_SCHEMA)
    _raise(source, errors)
    chk = _Checker(base)
    plans = _plans(data, chk)
    mode = data.get("mode", "points" if "points" in data else "product")
    if mode == "product":
        if "points" in data:
            chk.error(line_of(data, "points"), "points", "only in mode: points")
        overrides, batch, params = _check_product(data, chk)
        points = ()
    else:
        if "points" not in data:
            chk.error(getattr(data, "line", 1), "points", "missing required key (mode: points)")
        points, overrides, params = _check_points(data, chk, plans)
        batch = None
    filters = tuple((kind, plain(body), getattr(item, "line", line_of(data, "filters")))
                    for item in data.get("filters") or [] for kind, body in item.items())
    evaluations = load_evaluations(data, chk, source, base)
    constraints = check_constraints(data, evaluations, chk)
    _raise(source, chk.errors)
    result = SweepSpec(name=data["name"], source=source, mode=mode, workloads=chk.workloads,
                       workload_batch=chk.workload_batch, plans=plans, profiles=chk.profiles,
                       overrides=overrides, batch=batch, points=points, filters=filters,
                       description=data.get("description", ""),
                       lines={k: line_of(data, k) for k in data}, max_points=data.get("max_points"), params=params,
                       evaluations=evaluations, constraints=constraints, ort_cpu=data.get("ort_cpu"))
    # filters and points are checked over the first points up to the size limit (streamed: a huge
    # spec is refused by the size guard, not by running out of memory here)
    cap = result.max_points or POINT_LIMIT
    count, found = survey(result, stop_after=cap)
    _raise(source, found)
    return dataclasses.replace(result, counted=(count, cap))


def generate_points(spec: str | Path | Mapping | SweepSpec) -> list:
    """All points of a spec as a list, in spec order (``iter_points`` streams them instead)."""
    return list(iter_points(load_spec(spec)))
