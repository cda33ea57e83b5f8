"""A small declarative validator that collects every problem with its line and key path.

A schema is built from ``Num``, ``Int``, ``Str``, ``Bool``, ``Enum``, ``Record`` (fixed keys,
required or optional), ``MapOf`` (free keys, one value schema), ``ListOf`` and ``OneOrList``; every
number must be finite. ``validate`` returns a list of ``line N: path.to.key: problem`` strings; an
empty list means valid. Units live in key names (``clock_mhz``), so a string such as ``"480 MHz"``
where a number belongs is a type error that points at the unit in the key.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from qsim.yamlio import line_of


@dataclass(frozen=True)
class Num:
    minimum: float | None = None
    maximum: float | None = None
    exclusive_min: bool = False
    smallest: float | None = None  # nonzero values below this (subnormal clocks, rates) overflow what divides by them

    def check(self, value, path, line, errors):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            unit = path.rsplit(".", 1)[-1].rsplit("_", 1)[-1]
            hint = f" (the unit is in the key name: {unit})" if isinstance(value, str) else ""
            errors.append(f"line {line}: {path}: expected a number, got {value!r}{hint}")
            return
        if not _finite(value):  # NaN passes every comparison below; inf and huge ints overflow later arithmetic
            problem = "is out of range" if isinstance(value, int) else "must be a finite number"
            errors.append(f"line {line}: {path}: {problem}, got {_short(value)}")
            return
        if self.minimum is not None and (value <= self.minimum if self.exclusive_min else value < self.minimum):
            op = ">" if self.exclusive_min else ">="
            errors.append(f"line {line}: {path}: must be {op} {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            errors.append(f"line {line}: {path}: must be <= {_number(self.maximum)}, got {_number(value)}")
        if self.smallest is not None and 0 < abs(value) < self.smallest:
            errors.append(f"line {line}: {path}: {value:g} is too small (a nonzero value must be >= {self.smallest:g})")


@dataclass(frozen=True)
class Int(Num):
    def check(self, value, path, line, errors):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"line {line}: {path}: expected an integer, got {value!r}")
            return
        super().check(value, path, line, errors)


@dataclass(frozen=True)
class Str:
    def check(self, value, path, line, errors):
        if not isinstance(value, str) or not value:
            errors.append(f"line {line}: {path}: expected a non-empty string, got {value!r}")


@dataclass(frozen=True)
class Bool:
    def check(self, value, path, line, errors):
        if not isinstance(value, bool):
            errors.append(f"line {line}: {path}: expected true or false, got {value!r}")


@dataclass(frozen=True)
class Enum:
    values: tuple[str, ...]

    def check(self, value, path, line, errors):
        if value not in self.values:
            errors.append(f"line {line}: {path}: {value!r} is not one of {', '.join(self.values)}")


@dataclass(frozen=True)
class Record:
    required: Mapping[str, Any] = field(default_factory=dict)
    optional: Mapping[str, Any] = field(default_factory=dict)

    def check(self, value, path, line, errors):
        if not isinstance(value, Mapping):
            errors.append(f"line {line}: {path or '(top level)'}: expected a mapping, got {type(value).__name__}")
            return
        known = {**self.required, **self.optional}
        for key in value:
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f" (did you mean {close[0]!r}? units are part of key names)" if close else ""
                errors.append(f"line {line_of(value, key, line)}: {_join(path, key)}: unknown key{hint}")
        for key in self.required:
            if key not in value:
                errors.append(f"line {line}: {_join(path, key)}: missing required key")
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
            errors.append(f"line {line}: {path}: expected a mapping, got {type(value).__name__}")
            return
        if self.non_empty and not value:
            errors.append(f"line {line}: {path}: must not be empty")
        for key, item in value.items():
            if self.keys is not None and key not in self.keys:
                errors.append(f"line {line_of(value, key, line)}: {_join(path, key)}: unknown key; "
                              f"expected one of {', '.join(self.keys)}")
                continue
            self.value_schema.check(item, _join(path, key), line_of(value, key, line), errors)


@dataclass(frozen=True)
class ListOf:
    item_schema: Any
    length: int | None = None  # exact length, if fixed
    non_empty: bool = True

    def check(self, value, path, line, errors):
        if not isinstance(value, list):
            errors.append(f"line {line}: {path}: expected a list, got {value!r}")
            return
        if self.non_empty and not value:
            errors.append(f"line {line}: {path}: must not be empty")
        if self.length is not None and len(value) != self.length:
            errors.append(f"line {line}: {path}: expected {self.length} items, got {len(value)}")
        for i, item in enumerate(value):
            self.item_schema.check(item, f"{path}[{i}]", getattr(item, "line", 0) or line, errors)


@dataclass(frozen=True)
class OneOrList:
    """One item, or a non-empty list of them (``kernel: 3`` or ``kernel: [3, 1]``)."""
    item_schema: Any

    def check(self, value, path, line, errors):
        if isinstance(value, list):
            ListOf(self.item_schema).check(value, path, line, errors)
        else:
            self.item_schema.check(value, path, line, errors)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _short(value: int | float) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:10]}... ({len(text)} digits)"


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def validate(data: Any, schema: Record) -> list[str]:
    errors: list[str] = []
    schema.check(data, "", getattr(data, "line", 1), errors)
    return errors
