"""Quantized ONNX: QuantizeLinear/DequantizeLinear (QDQ) and the QOperator ops.

Nothing is re-derived: every scale and zero point goes into ``g.quant_params`` exactly as the file
stores it, and tensor dtypes become the stored element types. Q and DQ of activations add no IR
node: both name the same IR tensor, which carries the quantization. DQ of a constant (a quantized
weight or bias) is folded into a constant holding the stored integers and their ``TensorQuant``.
QOperator ops become their float IR op with quantized inputs, weights and outputs. Two values are
implied rather than stored, by the ops' definitions: a QLinearConv/QGemm int32 bias has scale
x_scale * w_scale (zero point 0), and MatMulInteger/ConvInteger operands have scale 1 (the op
multiplies the integers themselves).
"""
from __future__ import annotations

import numpy as np

from qsim.ir import onnx_proto as P
from qsim.ir.onnx_context import Const, Context, q_elem_type
from qsim.ir.onnx_fold import attrs_of
from qsim.ir.onnx_ops import _window, emit_matrix, transposed
from qsim.numerics.tensor_quant import TensorQuant

_FLOAT8 = {"float8e4m3fn": P.FLOAT8E4M3FN, "float8e5m2": P.FLOAT8E5M2}  # numpy types from ml_dtypes


def tq(ctx: Context, node, s: int, z: int, rank: int | None, dtype: str | None = None,
       axis: int | None = None, block: int = 0) -> TensorQuant:
    """A TensorQuant from a node's scale input ``s`` and zero point input ``z``; ``axis`` applies
    when the scale has more than one element (normalised to be non-negative)."""
    scale = ctx.value(node.input[s], f"{node.op_type} scale")
    if len(node.input) > z and node.input[z]:
        zc = ctx.const(node.input[z])
        zero, dtype = ctx.value(node.input[z], f"{node.op_type} zero point"), zc.dtype
    else:
        dtype = dtype or "uint8"
        zero = np.zeros(scale.shape, np.int32 if dtype == "int32" else dtype)
    if scale.size <= 1 and not block:
        axis = None
    elif axis is not None and rank:
        axis = axis % rank
    return TensorQuant(scale, zero, dtype, axis, block)


def qdq_params(ctx: Context, node, rank: int | None, dtype: str | None) -> TensorQuant:
    """QuantizeLinear/DequantizeLinear parameters: ``axis`` (default 1) and ``block_size``."""
    a = attrs_of(node)
    return tq(ctx, node, 1, 2, rank, dtype, int(a.get("axis", 1)), int(a.get("block_size", 0)))


def _expand(param: np.ndarray, q: TensorQuant, shape) -> np.ndarray:
    """Broadcast a per-tensor/axis/block parameter against a tensor of ``shape``."""
    if q.axis is None:
        return param
    if q.block_size:
        return np.repeat(param, q.block_size, axis=q.axis)[tuple(slice(0, d) for d in shape)]
    view = [1] * len(shape)
    view[q.axis] = -1
    return param.reshape(view)


# -- QuantizeLinear / DequantizeLinear -------------------------------------------------------------
def _same(a: TensorQuant, b: TensorQuant) -> bool:
    """Equal parameters, a per-tensor scale given as a scalar or as a 1-element array alike."""
    if a.axis is None and b.axis is None and not a.block_size and not b.block_size:
        return (a.fmt == b.fmt and np.array_equal(a.scale.reshape(-1), b.scale.reshape(-1))
                and np.array_equal(a.zero_point.reshape(-1), b.zero_point.reshape(-1)))
    return a == b


def fold_quantize(ctx: Context, node, inputs):
    """QuantizeLinear of a constant (float weights quantized in the graph): ONNX semantics, i.e.
    fp32 division, round half to even, saturate (fp8: cast to the format)."""
    x = inputs[0]
    q = qdq_params(ctx, node, len(x.shape), q_elem_type(ctx, node))
    if x.value is None:
        return [Const(x.shape, q.fmt.element_type, None, q)]
    y = x.value.astype(np.float32) / _expand(q.scale, q, x.shape)
    if q.fmt.element_type in _FLOAT8:
        value = (y + _expand(q.zero_point.astype(np.float32), q, x.shape)).astype(P.np_dtype(_FLOAT8[q.fmt.element_type]))
    else:
        lo, hi = q.fmt.qmin, q.fmt.qmax
        value = np.clip(np.rint(y) + _expand(q.zero_point.astype(np.int64), q, x.shape), lo, hi)
        value = value.astype(q.zero_point.dtype)
    return [Const(x.shape, q.fmt.element_type, value, q)]


def fold_dequantize(ctx: Context, node, inputs):
    """DequantizeLinear of a constant: keep the stored integers, attach the DQ's parameters."""
    x = inputs[0]
    return [Const(x.shape, x.dtype, x.value, qdq_params(ctx, node, len(x.shape), x.dtype))]


def quantize(ctx: Context, node) -> None:
    t = ctx.act(node.input[0])
    rank = len(ctx.g.tensor(t).shape)
    q = qdq_params(ctx, node, rank, q_elem_type(ctx, node))
    if t in ctx.g.quant_params:  # codes already: a DequantizeLinear's output (or the float, quantized once) read again
        if not _same(ctx.g.quant_params[t], q):
            raise ValueError(f"it quantizes {node.input[0]!r}, codes of other parameters (scale / zero point), "
                             "again; only matching parameters are supported")
        ctx.alias[node.output[0]] = t
        return
    readers = ctx.consumers.get(node.input[0], [])
    float_users = [n for n in readers if n.op_type != "QuantizeLinear"]
    other_params = any(not _same(qdq_params(ctx, n, rank, q_elem_type(ctx, n)), q)
                       for n in readers if n.op_type == "QuantizeLinear" and n is not node)
    if float_users or other_params or node.input[0] in ctx.graph_outputs:
        # the float tensor is read as float too, or quantized with other parameters as well (each
        # QuantizeLinear rounds the float values): quantize into a tensor of its own
        ctx.emit("Quantize", node, [t], {}, dtype=q.fmt.element_type)
        ctx.g.quant_params[node.output[0]] = q
        return
    ctx.g.quant_params[t] = q
    ctx.alias[node.output[0]] = t


def dequantize(ctx: Context, node) -> None:
    t = ctx.act(node.input[0])
    q = qdq_params(ctx, node, len(ctx.g.tensor(t).shape), ctx.g.tensor(t).dtype)
    if t not in ctx.g.quant_params:  # a QOperator model's output edge: the first word on this tensor
        ctx.g.quant_params[t] = q
    elif not _same(ctx.g.quant_params[t], q):  # the codes read at other parameters than they were written with
        raise ValueError(f"it reads {node.input[0]!r} at other parameters (scale / zero point) "
                         f"than it was quantized with; only matching parameters are supported")
    ctx.alias[node.output[0]] = t


# -- QOperator ---------------------------------------------------------------------------------
def q_input(ctx: Context, node, x: int, s: int | None, z: int, axis: int | None = None) -> str:
    """Attach an input's quantization (``s`` None: scale 1, for the *Integer ops); returns its name.
    ``axis``: the channel axis of per-channel parameters (weights: 0 for Conv, 1 for MatMul's B)."""
    name = node.input[x]
    c = ctx.const(name)
    rank = len(c.shape) if c is not None else len(ctx.g.tensor(ctx.act(name)).shape)
    if s is None:
        zero = ctx.value(node.input[z], "zero point") if len(node.input) > z and node.input[z] else None
        dtype = c.dtype if c is not None else ctx.g.tensor(ctx.act(name)).dtype
        zero = zero if zero is not None else np.zeros((), dtype)
        q = TensorQuant(np.ones(zero.shape, np.float32), zero, dtype, axis if zero.size > 1 else None)
    else:
        q = tq(ctx, node, s, z, rank, axis=axis)
    if c is not None:
        ctx.consts[name] = Const(c.shape, c.dtype, c.value, q)
    elif ctx.act(name) not in ctx.g.quant_params:
        ctx.g.quant_params[ctx.act(name)] = q
    return name


def _bias(ctx: Context, node, index: int, xq: TensorQuant, wq: TensorQuant) -> Const | None:
    if len(node.input) <= index or not node.input[index]:
        return None
    b = ctx.const(node.input[index])
    scale = (xq.scale * wq.scale).astype(np.float32)  # fp32 product, as the runtimes compute it
    q = TensorQuant(scale, np.zeros(scale.shape, np.int32), "int32", 0 if scale.size > 1 else None)
    return Const(b.shape, b.dtype, b.value, q)


def _quant_of(ctx: Context, name: str) -> TensorQuant:
    c = ctx.const(name)
    return c.quant if c is not None else ctx.g.quant_params[ctx.act(name)]


def _output(ctx: Context, node, s: int | None, z: int | None, dtype: str | None = None) -> TensorQuant | None:
    if dtype == "int32":  # MatMulInteger / ConvInteger: the int32 accumulator itself (scale 1)
        ctx.out_types[node.output[0]] = dtype
        return TensorQuant(np.float32(1.0), np.int32(0), "int32")
    if s is None or len(node.input) <= s or not node.input[s]:
        ctx.out_types[node.output[0]] = dtype or "float32"
        return None
    q = tq(ctx, node, s, z, None)
    ctx.out_types[node.output[0]] = q.fmt.element_type
    return q


def _finish(ctx: Context, node, q: TensorQuant | None) -> None:
    if q is not None:
        ctx.g.quant_params[ctx.alias[node.output[0]]] = q


def qlinear_conv(ctx: Context, node) -> None:
    x, w = q_input(ctx, node, 0, 1, 2), q_input(ctx, node, 3, 4, 5, axis=0)
    _conv(ctx, node, x, w, _bias(ctx, node, 8, _quant_of(ctx, x), _quant_of(ctx, w)), _output(ctx, node, 6, 7))


def conv_integer(ctx: Context, node) -> None:
    x, w = q_input(ctx, node, 0, None, 2), q_input(ctx, node, 1, None, 3, axis=0)
    _conv(ctx, node, x, w, None, _output(ctx, node, None, None, "int32"))


def _conv(ctx, node, x_name, w_name, b, yq) -> None:
    x, w = ctx.act(x_name), ctx.const(w_name)
    a = attrs_of(node)
    attrs = {"out_channels": w.shape[0], "groups": int(a.get("group", 1)),
             **_window(ctx, node, x, a.get("kernel_shape", w.shape[2:]))}
    names = (w_name, node.input[8] if b is not None else "")
    emit_matrix(ctx, node, "Conv", x, attrs, w, b, names, 1)
    _finish(ctx, node, yq)


def qlinear_matmul(ctx: Context, node) -> None:
    a, b = q_input(ctx, node, 0, 1, 2), q_input(ctx, node, 3, 4, 5, axis=1)
    _matmul(ctx, node, a, b, _output(ctx, node, 6, 7))


def matmul_integer(ctx: Context, node) -> None:
    a, b = q_input(ctx, node, 0, None, 2), q_input(ctx, node, 1, None, 3, axis=1)
    _matmul(ctx, node, a, b, _output(ctx, node, None, None, "int32"))


def _matmul(ctx, node, a, b, yq) -> None:
    w = ctx.const(b)
    if w is not None and len(w.shape) == 2:
        name = ctx.fresh(f"{node.name or node.output[0]}.weight")  # stored transposed: (out, in)
        emit_matrix(ctx, node, "Gemm", ctx.act(a), {"out_features": w.shape[1]}, transposed(w), None, (name, ""), -1)
    else:
        ctx.emit("MatMul", node, [ctx.act(a), ctx.act(b)], {})
    _finish(ctx, node, yq)


def qgemm(ctx: Context, node) -> None:
    """com.microsoft QGemm: A, a_scale, a_zp, B, b_scale, b_zp, C (int32), y_scale?, y_zp?."""
    at = attrs_of(node)
    if at.get("transA", 0) or float(at.get("alpha", 1.0)) != 1.0:
        raise ValueError("QGemm with transA or alpha other than 1 is not supported")
    a, b = q_input(ctx, node, 0, 1, 2), q_input(ctx, node, 3, 4, 5, axis=0 if at.get("transB", 0) else 1)
    w = ctx.const(b)
    name = b if at.get("transB", 0) else ctx.fresh(f"{node.name or node.output[0]}.weight")
    w = w if at.get("transB", 0) else transposed(w)
    bias = _bias(ctx, node, 6, _quant_of(ctx, a), w.quant)
    yq = _output(ctx, node, 7, 8)
    if yq is None:  # float output: MLAS scales the int32 accumulator, fp32(acc) * fp32(a_scale * b_scale[n])
        scale = (_quant_of(ctx, a).scale * w.quant.scale).astype(np.float32)
        yq = TensorQuant(scale, np.zeros(scale.shape, np.int32), "int32", 1 if scale.size > 1 else None)
    emit_matrix(ctx, node, "Gemm", ctx.act(a), {"out_features": w.shape[0]}, w, bias,
                (name, node.input[6] if bias is not None else ""), -1)
    _finish(ctx, node, yq)


def qlinear_as(op_type: str, handler, xs, y: tuple[int, int]):
    """A QLinear* op as its float ONNX op: quantized inputs ``xs`` [(x, scale, zp)], output ``y``."""

    def handle(ctx: Context, node) -> None:
        if attrs_of(node).get("channels_last", 0):
            raise ValueError("channels_last=1 is not supported")
        names = [q_input(ctx, node, x, s, z) for x, s, z in xs(node)]
        yq = _output(ctx, node, *y)
        keep = [a for a in node.attribute if a.name not in ("channels_last", "opset")]
        plain = P.make_node(op_type, names, list(node.output), name=node.name)
        plain.attribute.extend(keep)
        handler(ctx, plain)
        _finish(ctx, node, yq)

    return handle


def concat_inputs(node):
    return [(i, i + 1, i + 2) for i in range(2, len(node.input), 3)]
