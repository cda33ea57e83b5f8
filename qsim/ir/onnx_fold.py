"""Constant folding for the ONNX importer: ops evaluated with numpy when all their inputs are known.

Exporters compute Reshape targets with Shape -> Gather -> Unsqueeze -> Concat chains and store some
weights as ConstantOfShape or behind Unsqueeze/Transpose; folding turns all of that back into plain
constants. ``Shape`` of an activation folds too: the IR knows every activation's shape. A constant
with shape only (a weightless export) folds to a constant with shape only: the fold runs on a
zero-copy dummy of the right shape and keeps only the result's shape.

Each folder takes ``(ctx, node, inputs)`` (inputs as ``Const`` or None) and returns the outputs'
``Const`` list, or None when the node cannot be folded (it is then imported as an IR op).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from qsim.errors import GraphError
from qsim.ir import onnx_proto
from qsim.ir.onnx_context import Const, Context, const_from_array
from qsim.ir.ops.shape import slice_index

if TYPE_CHECKING:
    from onnx import NodeProto

# The largest array one fold may produce. Shape arithmetic folds to a few integers and stored
# weights to at most a few hundred MiB (a 32000 x 4096 fp32 embedding is 500 MiB); a file whose
# ConstantOfShape / Expand / Range asks for more is refused before anything is allocated.
FOLD_LIMIT_BYTES = 2 * 2 ** 30


def check_fold_size(shape, dtype, what: str) -> tuple[int, ...]:
    """``shape`` as ints, refused (GraphError) when negative or when an array of it would pass
    ``FOLD_LIMIT_BYTES``."""
    shape = tuple(int(d) for d in np.asarray(shape).reshape(-1))
    if any(d < 0 for d in shape):
        raise GraphError(f"{what}: negative dimension in shape {list(shape)}")
    size = int(np.prod([float(d) for d in shape])) * np.dtype(dtype).itemsize if shape else np.dtype(dtype).itemsize
    if size > FOLD_LIMIT_BYTES:
        raise GraphError(f"{what}: folds to an array of shape {list(shape)} ({size / 2 ** 30:.3g} GiB), over the "
                         f"{FOLD_LIMIT_BYTES // 2 ** 30} GiB bound on folded constants")
    return shape


def attrs_of(node: NodeProto) -> dict:
    """A node's attributes by name (tensors as numpy arrays)."""
    return {a.name: onnx_proto.attribute_value(a) for a in node.attribute}


def attr_or_input(ctx: Context, node: NodeProto, name: str, index: int, default=None):
    """Opset changes moved some attributes to inputs (axes, pads, split, min/max): read either."""
    a = attrs_of(node)
    if name in a:
        return a[name]
    if len(node.input) > index and node.input[index]:
        return ctx.value(node.input[index], f"{node.op_type} {name}")
    return default


def _arrays(inputs: list[Const | None]) -> tuple[list[np.ndarray | None], bool]:
    arrays, known = [], True
    for c in inputs:
        if c is None:
            arrays.append(None)
        elif c.value is None:
            known = False
            arrays.append(np.broadcast_to(np.zeros((), np.float32), c.shape))
        else:
            arrays.append(c.value)
    return arrays, known


def _fold(fn):
    """Wrap ``fn(ctx, node, arrays) -> array`` into a folder returning one Const."""

    def folder(ctx, node, inputs):
        arrays, known = _arrays(inputs)
        if node.op_type != "Constant" and (not arrays or arrays[0] is None):
            raise GraphError(f"{node.op_type} {node.name or node.output[0]!r}: its first input is missing")
        try:
            out = fn(ctx, node, arrays)
        except (ValueError, TypeError, IndexError, AttributeError, KeyError, OverflowError) as exc:
            # a constant expression the file got wrong (axes out of range, shapes that do not match)
            raise GraphError(f"{node.op_type} {node.name or node.output[0]!r} on constants: {exc}") from None
        if out is None:
            return None
        out = np.asarray(out)
        check_fold_size(out.shape, out.dtype, f"{node.op_type} {node.name or node.output[0]!r}")
        return [const_from_array(out, known=known)]

    return folder


def _cast(x, to: np.dtype):
    """onnxruntime folds a Cast of constants with its Cast kernel (``ort_cast``); types it has no
    simulated kernel for (float8, int4) convert as ml_dtypes does."""
    from qsim.sim.ort_cast import CAST_TYPES, ort_cast

    return ort_cast(x, to.name) if to.name in CAST_TYPES and x.dtype.name in CAST_TYPES else x.astype(to)


def _constant(ctx, node, arrays):
    a = attrs_of(node)
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in a:
            v = a[key]
            return np.asarray(v, dtype=np.float32 if "float" in key else np.int64) if key != "value" else v
    raise ValueError(f"Constant with unsupported attributes {sorted(a)}")


def _constant_of_shape(ctx, node, arrays):
    fill = attrs_of(node).get("value", np.zeros(1, np.float32)).reshape(-1)[0]
    shape = check_fold_size(arrays[0], np.asarray(fill).dtype, "ConstantOfShape")
    return np.broadcast_to(fill, shape)  # zero-copy: light models


def _shape(ctx, node, inputs):
    src = node.input[0]
    if inputs[0] is not None:
        shape = inputs[0].shape
    elif src in ctx.alias or src in ctx.data_inputs:
        shape = ctx.g.tensor(ctx.act(src)).shape
    else:
        return None
    a = attrs_of(node)
    start, end = a.get("start", 0), a.get("end", len(shape))
    return [const_from_array(np.asarray(shape[start:end], dtype=np.int64))]


def _axes(ctx, node, rank, index=1):
    axes = attr_or_input(ctx, node, "axes", index)
    return None if axes is None else sorted(int(x) % rank for x in np.asarray(axes).reshape(-1))


def _unsqueeze(ctx, node, arrays):
    x = arrays[0]
    n = len(np.asarray(attr_or_input(ctx, node, "axes", 1)).reshape(-1))
    for axis in _axes(ctx, node, x.ndim + n):
        x = np.expand_dims(x, axis)
    return x


def _squeeze(ctx, node, arrays):
    axes = _axes(ctx, node, arrays[0].ndim)
    return np.squeeze(arrays[0], axis=None if axes is None else tuple(axes))


def reshape_target(src: tuple[int, ...], target, allowzero: bool = False) -> tuple[int, ...]:
    """An ONNX Reshape target with 0 (copy) and -1 (infer) resolved."""
    shape = [src[i] if int(d) == 0 and not allowzero else int(d) for i, d in enumerate(target)]
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1]))
        shape[shape.index(-1)] = int(np.prod(src)) // max(known, 1)
    return tuple(shape)


def _reshape(ctx, node, arrays):
    return arrays[0].reshape(reshape_target(arrays[0].shape, arrays[1], attrs_of(node).get("allowzero", 0)))


def slice_attrs(ctx, node, rank: int) -> dict:
    """A Slice node's starts, ends, axes (made non-negative) and steps as int tuples, from attributes
    (opset < 10) or constant inputs: the IR Slice's attributes, and the fold's index."""
    def ints(name, index, default=None):
        v = attr_or_input(ctx, node, name, index)
        return default if v is None else tuple(int(d) for d in np.asarray(v).reshape(-1))

    starts, ends = ints("starts", 1), ints("ends", 2)
    axes, steps = ints("axes", 3, tuple(range(len(starts)))), ints("steps", 4, (1,) * len(starts))
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("starts, ends, axes and steps differ in length")
    if any(not -rank <= a < rank for a in axes):
        raise ValueError(f"axes {list(axes)} out of range for rank {rank}")
    return {"starts": starts, "ends": ends, "axes": tuple(a % rank for a in axes), "steps": steps}


def _slice(ctx, node, arrays):
    x = arrays[0]
    return x[slice_index(x.ndim, slice_attrs(ctx, node, x.ndim))]


def _expand(ctx, node, arrays):
    x = np.asarray(arrays[0])
    target = check_fold_size(arrays[1], x.dtype, "Expand")
    try:
        shape = np.broadcast_shapes(x.shape, target)
    except ValueError:
        raise GraphError(f"Expand: shape {list(x.shape)} does not broadcast to {list(target)}") from None
    check_fold_size(shape, x.dtype, "Expand")
    return x * np.ones(shape, x.dtype)


def _range(ctx, node, arrays):
    start, limit, delta = (np.asarray(a).reshape(-1)[0] if np.size(a) else None for a in arrays[:3])
    if start is None or limit is None or delta is None or not np.isfinite([start, limit, delta]).all() or delta == 0:
        raise GraphError(f"Range: start, limit and delta must be finite scalars, delta non-zero; "
                         f"got {start}, {limit}, {delta}")
    count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    check_fold_size((count,), np.result_type(start, limit, delta), "Range")
    return np.arange(start, limit, delta)


def _binary(fn):
    def run(ctx, node, arrays):
        a, b = arrays[0], arrays[1]
        if fn is np.divide and np.issubdtype(np.asarray(a).dtype, np.integer):
            return np.trunc(np.divide(a, b)).astype(np.asarray(a).dtype)  # ONNX integer division
        return fn(a, b)

    return run


FOLDERS = {
    "Constant": _fold(_constant),
    "ConstantOfShape": _fold(_constant_of_shape),
    "Shape": _shape,
    "Identity": _fold(lambda ctx, node, a: a[0]),
    "Dropout": lambda ctx, node, inputs: [inputs[0]] if inputs[0] is not None else None,
    "Cast": _fold(lambda ctx, node, a: _cast(a[0], onnx_proto.np_dtype(attrs_of(node)["to"]))),
    "Gather": _fold(lambda ctx, node, a: np.take(a[0], a[1], axis=attrs_of(node).get("axis", 0))),
    "Unsqueeze": _fold(_unsqueeze),
    "Squeeze": _fold(_squeeze),
    "Concat": _fold(lambda ctx, node, a: np.concatenate(a, axis=attrs_of(node)["axis"])),
    "Reshape": _fold(_reshape),
    "Flatten": _fold(lambda ctx, node, a: a[0].reshape(int(np.prod(a[0].shape[:attrs_of(node).get("axis", 1)])), -1)),
    "Transpose": _fold(lambda ctx, node, a: np.transpose(a[0], attrs_of(node).get("perm"))),
    "Slice": _fold(_slice),
    "Add": _fold(_binary(np.add)), "Sub": _fold(_binary(np.subtract)),
    "Mul": _fold(_binary(np.multiply)), "Div": _fold(_binary(np.divide)),
    "Sqrt": _fold(lambda ctx, node, a: np.sqrt(a[0])),
    "Equal": _fold(_binary(np.equal)),
    "Where": _fold(lambda ctx, node, a: np.where(a[0], a[1], a[2])),
    "Expand": _fold(_expand),
    "Range": _fold(_range),
}
