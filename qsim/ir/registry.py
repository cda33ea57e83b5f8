"""The op registry: one explicit dict, filled by ``@register`` in each op's module.

Every op answers three questions for the rest of qsim:

* ``infer(inputs, attrs)``: output shapes, parameter (weight) shapes and persistent state shapes
  (a KV cache) from the input shapes and attributes; raises ``ValueError`` on a mismatch;
* ``macs(inputs, outputs, attrs)``: multiply-accumulates, the work of matrix units;
* ``vector_ops(inputs, outputs, attrs)``: other arithmetic per element (adds, compares, exp), the
  work of vector/scalar units.

Shapes are tuples of ints. Modules register themselves when ``qsim.ir.ops`` imports them; that
package lists them explicitly (no directory scanning).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from typing import Any, Callable, Mapping

from qsim.errors import GraphError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Inferred:
    outputs: tuple[Shape, ...]
    weights: Mapping[str, Shape] = field(default_factory=dict)  # role -> shape, e.g. "weight", "bias"
    state: Mapping[str, Shape] = field(default_factory=dict)  # read every call, e.g. "k_cache"


def _zero(inputs: list[Shape], outputs: tuple[Shape, ...], attrs: Mapping[str, Any]) -> int:
    return 0


@dataclass(frozen=True)
class OpDef:
    name: str
    infer: Callable[[list[Shape], Mapping[str, Any]], Inferred]
    macs: Callable[[list[Shape], tuple[Shape, ...], Mapping[str, Any]], int] = _zero
    vector_ops: Callable[[list[Shape], tuple[Shape, ...], Mapping[str, Any]], int] = _zero
    # Unary elementwise ops that a runtime fuses into the producing matrix op (no extra pass).
    fusable: bool = False
    # Weight elements actually read per call, when not all of them (an embedding reads rows).
    weights_read: Callable[[list[Shape], tuple[Shape, ...], Mapping[str, Any]], int] | None = None
    # (elements read, elements written) of the node's persistent state per call; None: read all.
    state_io: Callable[[list[Shape], Mapping[str, Any]], tuple[int, int]] | None = None
    # The attributes a user may write for this op (explicit layers in a workload are checked
    # against them); None: not declared. Importers may add more (e.g. a fused activation).
    attrs: tuple[str, ...] | None = None
    # A view: the output is the input's memory under another shape (Reshape, Flatten): no bytes move.
    view: bool = False


OPS: dict[str, OpDef] = {}


def register(name: str, *, macs=_zero, vector_ops=_zero, fusable: bool = False, weights_read=None,
             state_io=None, attrs: tuple[str, ...] | None = None, view: bool = False):
    """Decorator for an op's ``infer`` function: ``@register("Relu", vector_ops=...)``."""

    def wrap(infer):
        if name in OPS:
            raise RuntimeError(f"op {name!r} registered twice")
        OPS[name] = OpDef(name, infer, macs, vector_ops, fusable, weights_read, state_io, attrs, view)
        return infer

    return wrap


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise GraphError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}") from None


def numel(shape: Shape) -> int:
    return int(prod(shape))


def out_numel(inputs: list[Shape], outputs: tuple[Shape, ...], attrs: Mapping[str, Any]) -> int:
    """vector_ops for an op that does one operation per output element."""
    return sum(numel(s) for s in outputs)


def per_output(k: int):
    """vector_ops for an op that does ``k`` operations per output element."""

    def count(inputs, outputs, attrs) -> int:
        return k * sum(numel(s) for s in outputs)

    return count
