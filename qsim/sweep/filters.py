"""Sweep filters, part two: evaluating a ``keep`` expression tree (``qsim.sweep.filter_parse``) or a
``skip`` mapping over one point's axes.

``keep: "expression"`` keeps the points where the expression is true; ``skip: {axis: value |
[values]}`` drops the points that match every given axis. Numbers compare with numbers, strings with
strings; a string never equals a number; an ordering between the two is a FilterError, as is
arithmetic on anything but numbers. A key a profile lacks reads as missing: it equals nothing and
no ordering holds for it.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Mapping

from qsim.sweep.filter_parse import (Arith, Axis, Compare, Const, FilterError, ListOf, Logic, Neg, Not,
                                     parse_filter)

__all__ = ["FilterError", "Keep", "Skip", "compile_filter", "evaluate", "parse_filter"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("in", "not in"):
        if not isinstance(right, tuple):
            raise FilterError(f"'{op}' needs a list on its right, got {right!r}")
        found = any(left == v and _is_number(left) == _is_number(v) for v in right)
        return found if op == "in" else not found
    if op in ("==", "!="):  # a number never equals a string or a boolean
        same = left == right and _is_number(left) == _is_number(right) and type(left) is not tuple
        return same if op == "==" else not same
    if left is None or right is None:  # a key a profile lacks: no ordering holds
        return False
    if not ((_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))):
        raise FilterError(f"cannot order {left!r} {op} {right!r} (numbers with numbers, strings with strings)")
    return _ORDER[op](left, right)


def evaluate(node, axes: Mapping[str, Any]) -> Any:
    """The value of an expression tree for one point's axes."""
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Axis):
        return axes.get(node.name)
    if isinstance(node, ListOf):
        return node.values
    if isinstance(node, Not):
        return not _truth(evaluate(node.operand, axes))
    if isinstance(node, Logic):
        if node.op == "and":
            return all(_truth(evaluate(n, axes)) for n in node.operands)
        return any(_truth(evaluate(n, axes)) for n in node.operands)
    if isinstance(node, Compare):
        left = evaluate(node.first, axes)
        for op, right_node in node.ops:
            right = evaluate(right_node, axes)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    if isinstance(node, Neg):
        value = evaluate(node.operand, axes)
        if value is None:
            return None
        if not _is_number(value):
            raise FilterError(f"cannot negate {value!r}")
        return -value
    if isinstance(node, Arith):
        left, right = evaluate(node.left, axes), evaluate(node.right, axes)
        if left is None or right is None:
            return None
        if not (_is_number(left) and _is_number(right)):
            raise FilterError(f"arithmetic on numbers only: {left!r} {node.op} {right!r}")
        if node.op == "/" and right == 0:
            raise FilterError(f"division by zero: {left!r} / 0")
        return _ARITH[node.op](left, right)
    raise FilterError(f"not a filter node: {type(node).__name__}")  # unreachable: the parser builds no other


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise FilterError(f"{value!r} is not a true/false condition")
    return value


@dataclass(frozen=True)
class Keep:
    """``keep: "expression"``: a point stays when the expression is true."""

    tree: Any

    def keeps(self, axes: Mapping[str, Any]) -> bool:
        return _truth(evaluate(self.tree, axes))


@dataclass(frozen=True)
class Skip:
    """``skip: {axis: value | [values]}``: a point goes when every given axis holds a listed value."""

    match: tuple  # ((axis, (values...)), ...)

    def keeps(self, axes: Mapping[str, Any]) -> bool:
        return not all(any(axes.get(axis) == v and _is_number(axes.get(axis)) == _is_number(v) for v in values)
                       for axis, values in self.match)


def compile_filter(kind: str, body: Any, axis_values: Mapping[str, set], where: str) -> tuple[Keep | Skip, list[str]]:
    """A filter from its spec form, checked against the axes and their values; (filter, problems).
    Problems are ``where...: problem`` strings; a filter with problems is None."""
    if kind == "keep":
        try:
            return Keep(parse_filter(body, axis_values)), []
        except FilterError as exc:
            return None, [f"{where}: {body!r}: {exc}"]
    problems, match = [], []
    for axis, values in body.items():
        if axis not in axis_values:
            problems.append(f"{where}.{axis}: not an axis (axes: {', '.join(axis_values)})")
            continue
        values = tuple(values) if isinstance(values, list) else (values,)
        known = axis_values[axis]
        for v in values:
            if not any(v == k and _is_number(v) == _is_number(k) for k in known):
                problems.append(f"{where}.{axis}: {v!r} is not a value of this axis "
                                f"(values: {', '.join(map(str, sorted(known, key=str)))})")
        match.append((axis, values))
    return (None if problems else Skip(tuple(match))), problems
