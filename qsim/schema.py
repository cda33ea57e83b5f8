"""A small declarative validator that collects every problem with its line and key path.

A schema is built from ``Num``, ``Int``, ``Str``, ``Bool``, ``Enum``, ``Record`` (fixed keys,
required or optional), ``MapOf`` (free keys, one value schema) and ``ListOf``. ``problems`` returns a list of
``qsim.errors.Problem`` records (line, dotted key path, message); an empty list means valid. Units live in key names
(``clock_mhz``), so a string such as ``"480 MHz"`` where a number belongs is a type error that
points at the unit in the key.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Mapping

from qsim.errors import Problem
from qsim.yamlio import line_of


@dataclass(frozen=True)
class Num:
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False

    def check(self, value, path, line, errors):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            unit = path.rsplit(".", 1)[-1].rsplit("_", 1)[-1]
            hint = f" (the unit is in the key name: {unit})" if isinstance(value, str) else ""
            errors.append(Problem(f"expected a number, got {value!r}{hint}", line=line, key=path))
            return
        if self.minimum is not None and (value <= self.minimum if self.exclusive_min else value < self.minimum):
            op = ">" if self.exclusive_min else ">="
            errors.append(Problem(f"must be {op} {self.minimum}, got {value}", line=line, key=path))
        if self.maximum is not None and value > self.maximum:
            errors.append(Problem(f"must be <= {self.maximum}, got {value}", line=line, key=path))


@dataclass(frozen=True)
class Int(Num):
    def check(self, value, path, line, errors):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(Problem(f"expected an integer, got {value!r}", line=line, key=path))
            return
        super().check(value, path, line, errors)


@dataclass(frozen=True)
class Str:
    def check(self, value, path, line, errors):
        if not isinstance(value, str) or not value:
            errors.append(Problem(f"expected a non-empty string, got {value!r}", line=line, key=path))


@dataclass(frozen=True)
class Bool:
    def check(self, value, path, line, errors):
        if not isinstance(value, bool):
            errors.append(Problem(f"expected true or false, got {value!r}", line=line, key=path))


@dataclass(frozen=True)
class Enum:
    values: tuple[str, ...]

    def check(self, value, path, line, errors):
        if value not in self.values:
            errors.append(Problem(f"{value!r} is not one of {', '.join(self.values)}", line=line, key=path))


@dataclass(frozen=True)
class Record:
    required: Mapping[str, Any] = field(default_factory=dict)
    optional: Mapping[str, Any] = field(default_factory=dict)

    def check(self, value, path, line, errors):
        if not isinstance(value, Mapping):
            errors.append(Problem(f"expected a mapping, got {type(value).__name__}", line=line,
                                  key=path or "(top level)"))
            return
        known = {**self.required, **self.optional}
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f" (did you mean {close[0]!r}? units are part of key names)" if close else ""
                errors.append(Problem(f"unknown key{hint}", line=line_of(value, key, line), key=_join(path, key)))
        for key in self.required:
            if key not in value:
                errors.append(Problem("missing required key", line=line, key=_join(path, key)))
        for key, schema in known.items():
            if key in value:
                schema.check(value[key], _join(path, key), line_of(value, key, line), errors)


@dataclass(frozen=True)
class MapOf:
    value_schema: Any
    keys: tuple[str, ...] | None = None  # allowed keys, if restricted
    non_empty: bool = True

    def check(self, value, path, line, errors):
        if not isinstance(value, Mapping):
            errors.append(Problem(f"expected a mapping, got {type(value).__name__}", line=line, key=path))
            return
        if self.non_empty and not value:
            errors.append(Problem("must not be empty", line=line, key=path))
        for key, item in value.items():
            if self.keys is not None and key not in self.keys:
                errors.append(Problem(f"unknown key; expected one of {', '.join(self.keys)}",
                                      line=line_of(value, key, line), key=_join(path, key)))
                continue
            self.value_schema.check(item, _join(path, key), line_of(value, key, line), errors)


@dataclass(frozen=True)
class ListOf:
    item_schema: Any
    length: int | None = None  # exact length, if fixed
    non_empty: bool = True

    def check(self, value, path, line, errors):
        if not isinstance(value, list):
            errors.append(Problem(f"expected a list, got {value!r}", line=line, key=path))
            return
        if self.non_empty and not value:
            errors.append(Problem("must not be empty", line=line, key=path))
        if self.length is not None and len(value) != self.length:
            errors.append(Problem(f"expected {self.length} items, got {len(value)}", line=line, key=path))
        for i, item in enumerate(value):
            self.item_schema.check(item, f"{path}[{i}]", line, errors)


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def problems(data: Any, schema: Record, file: str | None = None) -> list[Problem]:
    """Every problem of ``data`` against ``schema``, located in ``file`` when given."""
    errors: list = []
    schema.check(data, "", getattr(data, "line", 1), errors)
    return [p.in_file(file) for p in errors]


def validate(data: Any, schema: Record) -> list[str]:
    """The problems as ``line N: key: message`` strings, for checkers that still append text."""
    errors: list = []
    schema.check(data, "", getattr(data, "line", 1), errors)
    return [e if isinstance(e, str) else f"line {e.line}: {e.key}: {e.message}" for e in errors]
