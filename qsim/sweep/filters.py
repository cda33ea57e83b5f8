"""Sweep filters: a closed expression language, parsed and evaluated here (nothing is ever eval'd).

A ``keep`` string may contain only:

- axis names: ``workload``, ``precision``, ``profile``, ``batch``, and override keys, dotted ones
  in backticks (`` `memories.sram.capacity_kib` ``);
- literals: numbers (at most 10^15 in magnitude), strings in '...' or "..." (at most 200
  characters), ``true`` / ``false``, and lists of those literals (``[1, 2, 'x']``);
- arithmetic on numbers: ``+ - * /`` and a leading minus;
- comparisons ``== != < <= > >=`` (chained as in Python), ``in`` / ``not in`` a list;
- ``and``, ``or``, ``not`` and parentheses.

Anything else (calls, attribute access, subscripts, ``@`` references, lambdas, f-strings,
imports, dunder names, ``&`` / ``|``, longer literals, more than 1,000 characters or 32 levels of
nesting) is a ``FilterError`` raised while parsing, before any point is looked at. A ``skip``
mapping ``{axis: value | [values]}`` drops the points that match every given axis.
"""
from __future__ import annotations

import keyword
import math
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from qsim.errors import QsimError

MAX_TEXT = 1000
MAX_DEPTH = 32
MAX_NUMBER = 1e15
MAX_STRING = 200
MAX_LIST = 1000

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'[^'\\\n]*'|"[^"\\\n]*")
  | (?P<quoted>`[^`\n]+`)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,|\+|-|\*|/)
""", re.VERBOSE)
_WORDS = {"and", "or", "not", "in", "true", "false", "True", "False"}
_REFUSED = {"@": "'@' references are not allowed", ".": "attribute access is not allowed (put a dotted axis "
            "name in backticks: `a.b`)", "&": "'&' is not allowed: use 'and'", "|": "'|' is not allowed: use 'or'",
            "~": "'~' is not allowed: use 'not'", "\\": "backslashes are not allowed", "=": "'=' is not allowed: "
            "compare with '=='", "%": "'%' is not allowed", "**": "'**' is not allowed", "{": "sets and dicts are "
            "not allowed", ":": "':' is not allowed", ";": "';' is not allowed", "#": "comments are not allowed"}


class FilterError(QsimError):
    """A filter string outside the language, or a comparison its values cannot make."""


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Axis:
    name: str


@dataclass(frozen=True)
class ListOf:
    values: tuple


@dataclass(frozen=True)
class Not:
    operand: Any


@dataclass(frozen=True)
class Logic:
    op: str  # "and" | "or"
    operands: tuple


@dataclass(frozen=True)
class Compare:
    first: Any
    ops: tuple  # ("<", right), ...


@dataclass(frozen=True)
class Arith:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Neg:
    operand: Any


def _tokens(text: str) -> list[tuple[str, str, int]]:
    if len(text) > MAX_TEXT:
        raise FilterError(f"longer than {MAX_TEXT} characters")
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            rest = text[pos:]
            if rest[:1] in "'\"":
                raise FilterError(f"unterminated or escaped string at {rest[:20]!r} (no backslashes, one line)")
            key = "**" if rest.startswith("**") else rest[:1]
            raise FilterError(_REFUSED.get(key, f"{rest[:1]!r} is not part of the filter language") + f" (at {pos})")
        kind = m.lastgroup
        if kind != "space":
            out.append((kind, m.group(), pos))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the grammar in the module docstring."""

    def __init__(self, text: str, axes: Mapping[str, Any]):
        self.toks, self.i, self.axes, self.depth = _tokens(text), 0, axes, 0

    def peek(self, offset: int = 0) -> tuple[str, str, int] | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def take(self, text: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise FilterError(f"ends early: expected {text or 'a value'}")
        if text is not None and tok[1] != text:
            raise FilterError(f"expected {text!r} at {tok[2]}, got {tok[1]!r}")
        self.i += 1
        return tok

    def at(self, *texts: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] in ("name", "op") and tok[1] in texts

    def parse(self):
        if not self.toks:
            raise FilterError("is empty")
        node = self.expr()
        tok = self.peek()
        if tok is not None:
            raise FilterError(f"unexpected {tok[1]!r} at {tok[2]}")
        return node

    def expr(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"nested deeper than {MAX_DEPTH} levels")
        node = self.logic("or", lambda: self.logic("and", self.negation))
        self.depth -= 1
        return node

    def logic(self, op: str, operand: Callable):
        items = [operand()]
        while self.at(op):
            self.take()
            items.append(operand())
        return items[0] if len(items) == 1 else Logic(op, tuple(items))

    def negation(self):
        if self.at("not"):
            self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError(f"nested deeper than {MAX_DEPTH} levels")
            node = Not(self.negation())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self):
        first, ops = self.sum(), []
        while True:
            if self.at("==", "!=", "<", "<=", ">", ">=", "in"):
                op = self.take()[1]
            elif self.at("not") and (nxt := self.peek(1)) is not None and nxt[1] == "in":
                self.i += 2
                op = "not in"
            else:
                break
            ops.append((op, self.sum()))
        return Compare(first, tuple(ops)) if ops else first

    def sum(self):
        node = self.term()
        while self.at("+", "-"):
            node = Arith(self.take()[1], node, self.term())
        return node

    def term(self):
        node = self.unary()
        while self.at("*", "/"):
            node = Arith(self.take()[1], node, self.unary())
        return node

    def unary(self):
        if self.at("-", "+"):
            sign = self.take()[1]
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise FilterError(f"nested deeper than {MAX_DEPTH} levels")
            operand = self.unary()
            self.depth -= 1
            return Neg(operand) if sign == "-" else operand
        return self.atom()

    def atom(self):
        kind, text, pos = self.take()
        if text == "(" and kind == "op":
            node = self.expr()
            self.take(")")
            return node
        if text == "[" and kind == "op":
            return self.list_literal(pos)
        if kind in ("number", "string") or text in ("true", "false", "True", "False"):
            return Const(_literal(kind, text))
        if kind in ("name", "quoted"):
            name = text[1:-1] if kind == "quoted" else text
            return self.axis(name, kind, pos)
        raise FilterError(f"unexpected {text!r} at {pos}")

    def axis(self, name: str, kind: str, pos: int) -> Axis:
        nxt = self.peek()
        if kind == "name" and nxt is not None and nxt[0] == "string":
            raise FilterError(f"prefixed strings ({name}'...', f-strings) are not allowed (at {pos})")
        if nxt is not None and nxt[1] in ("(", "["):
            what = "calls" if nxt[1] == "(" else "subscripts"
            raise FilterError(f"{what} are not allowed: {name}{nxt[1]}... (at {pos})")
        if name.startswith("__") or "__" in name:
            raise FilterError(f"dunder names are not allowed: {name!r}")
        if kind == "name" and (keyword.iskeyword(name) or name in _WORDS):
            raise FilterError(f"{name!r} is not part of the filter language (at {pos})")
        if name not in self.axes:
            raise FilterError(f"{name!r} is not an axis (axes: {', '.join(self.axes)})")
        return Axis(name)

    def list_literal(self, pos: int) -> ListOf:
        values = []
        while not self.at("]"):
            sign = -1 if self.at("-") and self.take() else 1
            kind, text, at = self.take()
            if kind not in ("number", "string") and text not in ("true", "false", "True", "False"):
                raise FilterError(f"a list holds literals only (numbers, strings, true/false); got {text!r} at {at}")
            value = _literal(kind, text)
            if sign < 0 and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise FilterError(f"'-' before {text!r} at {at}")
            values.append(sign * value if sign < 0 else value)
            if len(values) > MAX_LIST:
                raise FilterError(f"a list of more than {MAX_LIST} values")
            if not self.at("]"):
                self.take(",")
        self.take("]")
        return ListOf(tuple(values))


def _literal(kind: str, text: str) -> Any:
    if kind == "string":
        if len(text) - 2 > MAX_STRING:
            raise FilterError(f"a string longer than {MAX_STRING} characters")
        return text[1:-1]
    if kind == "number":
        if len(text) > 40:
            raise FilterError(f"the number {text[:20]}... is too long")
        value = float(text) if any(c in text for c in ".eE") else int(text)
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise FilterError(f"the number {text} is beyond +-{MAX_NUMBER:g}")
        return value
    return text in ("true", "True")


def parse_filter(text: str, axes: Mapping[str, Any]):
    """The expression tree of a ``keep`` string over the given axis names; FilterError otherwise."""
    if not isinstance(text, str):
        raise FilterError(f"expected a string, got {type(text).__name__}")
    return _Parser(text, axes).parse()


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
