"""The structural schema of a sweep spec, built from ``qsim.schema`` plus the checkers it lacks.

Structure only (keys, types, list shapes); names that must refer to shipped files, precisions a
parser must accept, and keys that must exist in a profile are checked in ``spec.py``. YAML lists
carry no line numbers of their own, so an item's problem is reported at the line of its key.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Mapping

from qsim.errors import Problem
from qsim.schema import Bool, Enum, Int, ListOf, MapOf, Num, Record, Str
from qsim.sim.validate_cli import ORT_CPU_CHOICES  # spelled out there: no simulator import
from qsim.yamlio import LocatedDict


def _line(value, default: int) -> int:
    return value.line if isinstance(value, LocatedDict) and value.line else default


# Past this magnitude an axis value is a typo, and its metrics would not fit the table's 64-bit columns.
MAX_AXIS_NUMBER = 1e15
MAX_BATCH = 1_000_000  # batch x MACs per sample stays within int64 for a 7B decoder


@dataclass(frozen=True)
class Scalar:
    """An override value: a number (finite, at most MAX_AXIS_NUMBER in magnitude), a string or a
    boolean (never a list or a mapping). The profile's own schema checks it further (spec.py)."""

    def check(self, value, path, line, errors):
        if isinstance(value, (list, dict)) or value is None:
            errors.append(Problem(f"expected a number, string or boolean, got {value!r}", line=line, key=path))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and not abs(value) <= MAX_AXIS_NUMBER:
            errors.append(Problem(f"{value!r} is not a finite number within +-{MAX_AXIS_NUMBER:g}", line=line,
                                  key=path))


@dataclass(frozen=True)
class FileName:
    """A plain file name (letters, digits, . _ -; no separators, not . or ..): ``reports/NAME`` stays
    under ``reports/``."""

    def check(self, value, path, line, errors):
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", value):
            errors.append(Problem(f"{value!r} is not a plain file name (letters, digits, '.', '_', '-'; "
                                  "no '/', '..' or absolute paths; at most 100 characters)", line=line, key=path))


@dataclass(frozen=True)
class OneOf:
    """A string, or a mapping checked by ``record`` (e.g. a precision: ``int8`` or a labelled plan)."""

    record: Record
    what: str

    def check(self, value, path, line, errors):
        if isinstance(value, str) and value:
            return
        if isinstance(value, Mapping):
            self.record.check(value, path, _line(value, line), errors)
            return
        errors.append(Problem(f"expected {self.what}, got {value!r}", line=line, key=path))


@dataclass(frozen=True)
class Choice:
    """One of ``values`` exactly; a near miss is named (``vnii`` -> did you mean 'vnni'?)."""

    values: tuple[str, ...]

    def check(self, value, path, line, errors):
        if isinstance(value, str) and value in self.values:
            return
        close = difflib.get_close_matches(str(value).strip().lower(), self.values, n=1) if isinstance(value, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        errors.append(Problem(f"{value!r} is not one of {', '.join(self.values)}{hint}", line=line, key=path))


class AnyValue:
    """Checked later, with context (a plan's overrides are parsed by ``qsim.precision``)."""

    def check(self, value, path, line, errors):
        pass


@dataclass(frozen=True)
class Filter:
    """``{skip: {axis: value | [values]}}`` or ``{keep: "condition"}`` (``qsim.sweep.filters``): exactly one."""

    def check(self, value, path, line, errors):
        line = _line(value, line)
        if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in ("skip", "keep"):
            got = dict(value) if isinstance(value, Mapping) else value
            errors.append(Problem(f"expected one of {{skip: {{axis: value}}}} or {{keep: \"condition\"}}, got {got!r}",
                                  line=line, key=path))
            return
        kind, body = next(iter(value.items()))
        if kind == "keep":
            Str().check(body, f"{path}.keep", line, errors)
        elif not isinstance(body, Mapping) or not body:
            errors.append(Problem("expected a non-empty mapping of axis -> value(s)", line=line,
                                  key=f"{path}.skip"))


# A labelled per-layer plan: {label: mixed, default: int8, overrides: [{op: Softmax, precision: fp16}]}
PLAN = Record(required={"label": Str(), "default": AnyValue()},
              optional={"overrides": AnyValue(), "recipes": AnyValue()})  # recipes: qsim.recipes
PRECISION = OneOf(PLAN, "a precision string (int8, w4a16 ...) or {label, default, overrides, recipes}")
POINT = Record(required={"workload": Str(), "precision": Str(), "profile": Str()},
               optional={"batch": Int(1, MAX_BATCH), "overrides": MapOf(Scalar()), "params": MapOf(Scalar())})

# What a point must satisfy to be picked as the best (qsim.sweep.constraints)
CONSTRAINTS = Record(optional={"max_accuracy_drop": Num(0), "fits": Bool(), "native_only": Bool()})

SPEC_SCHEMA = Record(
    required={"name": FileName()},
    optional={
        "description": Str(),
        "mode": Enum(("product", "points")),
        "workloads": ListOf(Str()),
        "precisions": ListOf(PRECISION),
        "profiles": ListOf(Str()),
        "overrides": MapOf(ListOf(Scalar())),
        "batch": ListOf(Int(1, MAX_BATCH)),
        "params": MapOf(ListOf(Scalar())),  # workload parameters (seq, context, builder params) -> values
        "points": ListOf(POINT),
        "filters": ListOf(Filter()),
        "max_points": Int(1),
        "evaluation": AnyValue(),  # checked by qsim.evaluation.data.load_evaluation (spec.py)
        "constraints": CONSTRAINTS,
        "ort_cpu": Choice(ORT_CPU_CHOICES),  # the CPU whose onnxruntime the accuracy step reproduces
    },
)
