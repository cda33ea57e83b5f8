"""Handlers for ONNX data-movement ops of activations (also between QuantizeLinear/DequantizeLinear in
QDQ models): Identity / Dropout / Cast as aliases, Reshape, Squeeze / Unsqueeze, Flatten, Transpose,
Concat, Pad, Slice, Split, Gather. Their values are copied, not computed, so a quantized tensor keeps
its parameters (``passthrough``)."""
from __future__ import annotations

import numpy as np

from qsim.ir.onnx_context import Const, Context
from qsim.ir.onnx_fold import FOLDERS, attr_or_input, attrs_of, reshape_target, slice_attrs
from qsim.ir.onnx_proto import make_node


def alias(ctx: Context, node) -> None:
    """Identity, Dropout (inference) and Cast of an activation: the same tensor under a new name."""
    ctx.alias[node.output[0]] = ctx.act(node.input[0])


def reshape(ctx: Context, node) -> None:
    x = ctx.act(node.input[0])
    target = [int(d) for d in ctx.value(node.input[1], "Reshape shape")]
    if ctx.batch_to is not None and target and target[0] == ctx.batch_from:
        target[0] = ctx.batch_to  # exporters bake the trace-time batch into Reshape targets
    shape = reshape_target(ctx.g.tensor(x).shape, target, bool(attrs_of(node).get("allowzero", 0)))
    ctx.emit("Reshape", node, [x], {"shape": shape}, passthrough=True)


def squeeze_like(ctx: Context, node) -> None:
    """Squeeze/Unsqueeze of an activation: a Reshape to the shape ONNX defines."""
    x = ctx.act(node.input[0])
    src = ctx.g.tensor(x).shape
    dummy = Const(src, "float32", np.broadcast_to(np.zeros((), np.float32), src))
    shape = FOLDERS[node.op_type](ctx, node, [dummy] + [ctx.const(i) for i in node.input[1:]])[0].shape
    ctx.emit("Reshape", node, [x], {"shape": shape}, passthrough=True)


def concat(ctx: Context, node) -> None:
    ctx.emit("Concat", node, [ctx.act(i) for i in node.input], {"axis": int(attrs_of(node)["axis"])},
             passthrough=True)


def flatten(ctx: Context, node) -> None:
    ctx.emit("Flatten", node, [ctx.act(node.input[0])], {"axis": int(attrs_of(node).get("axis", 1))},
             passthrough=True)


def transpose(ctx: Context, node) -> None:
    x = ctx.act(node.input[0])
    perm = attrs_of(node).get("perm", list(range(len(ctx.g.tensor(x).shape)))[::-1])
    ctx.emit("Transpose", node, [x], {"perm": tuple(int(p) for p in perm)}, passthrough=True)


def pad(ctx: Context, node) -> None:
    x = ctx.act(node.input[0])
    pads = [int(p) for p in attr_or_input(ctx, node, "pads", 1)]
    mode = attrs_of(node).get("mode", b"constant")
    # qsim's Pad kernels write the real value 0 (the zero point) into constant cells: another
    # constant_value (input 2; the attribute "value" before opset 11) was silently taken as 0. A Pad of
    # stored codes (a QOperator model's integer tensor) pads with a code: the zero point is real 0.
    value = np.asarray(attr_or_input(ctx, node, "value", 2, 0), np.float64)
    q = ctx.g.quant_params.get(x)
    codes = q is not None and ctx.onnx_dtype(node.input[0]) not in ("float32", "float16", "bfloat16", "float64")
    zero = np.asarray(q.zero_point, np.float64) if codes else 0.0
    if mode in (b"constant", "constant") and np.any(value != zero):
        raise ValueError(f"Pad with constant_value {value.tolist()}: only the real value 0 is supported")
    ctx.emit("Pad", node, [x], {"pads": tuple(pads), "mode": mode.decode() if isinstance(mode, bytes) else mode},
             passthrough=True)


def slice_(ctx: Context, node) -> None:
    """Slice of an activation by constant starts / ends / axes / steps (a channel split)."""
    x = ctx.act(node.input[0])
    ctx.emit("Slice", node, [x], slice_attrs(ctx, node, len(ctx.g.tensor(x).shape)), passthrough=True)


def split(ctx: Context, node) -> None:
    x = ctx.act(node.input[0])
    shape = ctx.g.tensor(x).shape
    axis = int(attrs_of(node).get("axis", 0))
    sizes = attr_or_input(ctx, node, "split", 1)
    if sizes is None:
        n = len(node.output)
        sizes = [-(-shape[axis] // n)] * (n - 1)
        sizes.append(shape[axis] - sum(sizes))
    ctx.emit("Split", node, [x], {"axis": axis, "split": tuple(int(s) for s in sizes)},
             outputs=list(node.output), passthrough=True)


def gather(ctx: Context, node) -> None:
    table = ctx.const(node.input[0])
    if table is None or len(table.shape) != 2 or int(attrs_of(node).get("axis", 0)) != 0:
        raise ValueError("only Gather of rows from a constant 2-D table (an embedding) is supported")
    ids = ctx.act(node.input[1])
    ctx.emit("Embedding", node, [ids], {"num_embeddings": table.shape[0], "embedding_dim": table.shape[1]},
             {"weight": ctx.weight(node.input[0], table)}, dtype=table.dtype if table.quant is None else None)


def gather_indices(ctx: Context, node, index: np.ndarray) -> None:
    """Gather of constant indices along an axis of an activation: the stored codes move, as
    onnxruntime's Gather moves them (its QDQ rules drop DQ -> Gather -> Q with equal parameters, and a
    QOperator model gathers the codes directly). One scalar index (ViT's q / k / v out of the stacked
    projection, its class token) is a Slice plus a Reshape that drops the axis, one index in a 1-D array
    a Slice; any other index array a Gather (out shape: ``shape[:axis] + index.shape + shape[axis+1:]``)."""
    x = ctx.act(node.input[0])
    shape = ctx.g.tensor(x).shape
    axis = int(attrs_of(node).get("axis", 0))
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} out of range for rank {len(shape)}")
    axis %= len(shape)
    index = np.asarray(index).astype(np.int64)
    q = ctx.g.quant_params.get(x)
    if q is not None and q.per_channel and (q.axis % len(shape) == axis or index.ndim != 1):
        # the copied parameters would no longer line up with the output's channels
        raise ValueError("a Gather along (or changing the rank of) a per-channel quantized activation is not supported")
    bad = index[(index < -shape[axis]) | (index >= shape[axis])]
    if bad.size:  # onnxruntime fails the run (its Gather checks every index); qsim fails at import
        raise ValueError(f"index {int(bad[0])} out of range for axis {axis} of {shape}")
    index %= shape[axis]
    if index.size != 1 or index.ndim > 1:
        ctx.emit("Gather", node, [x], {"axis": axis, "indices": tuple(int(i) for i in index.reshape(-1)),
                                       "index_shape": index.shape}, passthrough=True)
        return
    at = int(index.reshape(-1)[0])
    attrs = {"starts": (at,), "ends": (at + 1,), "axes": (axis,), "steps": (1,)}
    if index.ndim == 1:
        ctx.emit("Slice", node, [x], attrs, passthrough=True)
        return
    one = ctx.fresh(f"{node.output[0]}:slice")
    ctx.emit("Slice", make_node("Slice", [x], [one], name=f"{node.name or node.output[0]}:slice"), [x], attrs,
             outputs=[one], passthrough=True)
    ctx.emit("Reshape", node, [one], {"shape": tuple(d for i, d in enumerate(shape) if i != axis)}, passthrough=True)
