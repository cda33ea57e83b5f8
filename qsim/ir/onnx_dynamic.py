"""ONNX import of dynamically quantized models (onnxruntime's ``quantize_dynamic``) and of the mask
and index arithmetic transformer exports carry (``torch.onnx`` of a Hugging Face model with its
attention mask).

``quantize_dynamic`` writes, per MatMul / Gemm / Conv: ``DynamicQuantizeLinear(x) -> (x_q, x_scale,
x_zp)``, ``MatMulInteger(x_q, W_q, x_zp, w_zp)`` or ``ConvInteger``, ``Cast`` to float,
``Mul(x_scale, w_scale)``, ``Mul`` by that product and ``Add`` of the bias. Here:

* DynamicQuantizeLinear -> the IR op of that name (three outputs; the scale and the zero point are
  tensors computed at run time, not ``quant_params``);
* MatMulInteger / ConvInteger whose input zero point is such a run-time tensor ->
  MatMulIntegerDynamic / ConvIntegerDynamic (a constant zero point keeps the static import,
  ``onnx_qops``);
* com.microsoft DynamicQuantizeMatMul (what onnxruntime's optimizer fuses that chain into) -> the same
  IR nodes as the chain;
* Cast that changes the element type of a plain (unquantized) tensor -> a real Cast node
  (int32 -> float32 rounds: it cannot be an alias);
* ops on masks and indices (``GENERIC``), and Gather / Reshape / Flatten / Squeeze / Unsqueeze /
  Transpose / Concat of a non-float tensor -> OnnxEval, unless their inputs are constants (folded).
"""
from __future__ import annotations

import numpy as np

from qsim.ir import onnx_moves as M, onnx_ops as F
from qsim.ir import onnx_qops as Q
from qsim.ir.onnx_context import ELEM_NAMES, Const, Context
from qsim.ir.onnx_fold import FOLDERS, _fold, attrs_of
from qsim.ir.onnx_ops import _window
from qsim.ir.onnx_proto import make_node
from qsim.sim.int_dynamic import ONNX_NUMPY, eval_onnx
from qsim.sim.ort_cast import CAST_TYPES

_FLOATS = {"float32", "float16", "bfloat16", "float64"}
_NUMPY = {"bool", "int8", "uint8", "int16", "uint16", "int32", "int64", "float32", "float64", "float16"}
# ONNX ops imported as OnnxEval (evaluated by ``qsim.sim.int_dynamic.ONNX_NUMPY``) when not folded.
GENERIC = ("Where", "Expand", "GatherElements", "ReduceSum", "ReduceMax", "ReduceMin", "Equal", "Greater",
           "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf", "Neg", "Abs")


def _plain_dtype(ctx: Context, name: str) -> str | None:
    """The element type of an unquantized activation, None for a quantized one."""
    t = ctx.act(name)
    return None if t in ctx.g.quant_params else ctx.g.tensor(t).dtype


_VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")  # only the data input matters at run time


def _view_shape(ctx: Context, node) -> tuple[int, ...]:
    """The output shape of a Reshape-like node, by its constant folder on a dummy of the input."""
    shape = ctx.g.tensor(ctx.act(node.input[0])).shape
    dummy = Const(shape, "float32", np.broadcast_to(np.zeros((), np.float32), shape))
    return FOLDERS[node.op_type](ctx, node, [dummy] + [ctx.const(i) for i in node.input[1:]])[0].shape


def onnx_eval(ctx: Context, node) -> None:
    """One ONNX node as OnnxEval: activations are inputs, constants become weights ``in{i}``."""
    slots, weights, shapes, dummies, inputs = [], {}, {}, [], []
    names = node.input[:1] if node.op_type in _VIEWS else node.input
    for i, name in enumerate(names):
        c = ctx.const(name) if name else None
        if not name:
            slots.append(None)
            dummies.append(None)
        elif c is not None:
            if c.value is None or c.quant is not None:
                raise ValueError(f"input {name!r} is a constant without values (weightless export) or a "
                                 "quantized constant; OnnxEval takes plain constants")
            role = f"in{i}"
            weights[role], shapes[role] = ctx.weight(name, c), c.shape
            slots.append(role)
            dummies.append(c.value)
        else:
            t = ctx.act(name)
            slots.append(len(inputs))
            inputs.append(t)
            spec = ctx.g.tensor(t)
            dummies.append(np.zeros(spec.shape, np.dtype(spec.dtype) if spec.dtype in _NUMPY else np.float32))
    a = {k: (tuple(v) if isinstance(v, list) else v.decode() if isinstance(v, bytes) else v)
         for k, v in attrs_of(node).items()}
    shape = _view_shape(ctx, node) if node.op_type in _VIEWS else None
    trial = eval_onnx(node.op_type, dummies, {**a, "out_shape": shape})  # the result's shape and type
    dtype = ctx.onnx_dtype(node.output[0], trial.dtype.name)  # the file's type wins over numpy's promotion
    if dtype not in _NUMPY:
        raise ValueError(f"output type {dtype} is not supported")
    attrs = {"onnx_op": node.op_type, "onnx_attrs": a, "out_shape": tuple(int(d) for d in trial.shape),
             "out_dtype": dtype, "slots": tuple(slots), "weight_shapes": shapes}
    ctx.emit("OnnxEval", node, inputs, attrs, weights, dtype=dtype)



def _or_eval(handler):
    """A float handler, or OnnxEval when its first input is a non-float, unquantized activation."""

    def handle(ctx: Context, node) -> None:
        dtype = _plain_dtype(ctx, node.input[0]) if ctx.const(node.input[0]) is None else None
        if dtype is not None and dtype not in _FLOATS:
            return onnx_eval(ctx, node)
        return handler(ctx, node)

    return handle


def gather(ctx: Context, node) -> None:
    """A constant table: the embedding lookup (``onnx_moves.gather``); constant indices into a float or
    quantized activation: ``onnx_moves.gather_indices`` (data movement on the stored codes); other data
    (masks, shape tensors) or indices known only at run time: OnnxEval, which runs on the arrays as stored
    and so cannot take a quantized activation (its output would be the codes, read as floats)."""
    table = ctx.const(node.input[0])
    if table is None:
        index = ctx.const(node.input[1])
        value = None if index is None or index.value is None else np.asarray(index.value)
        plain = _plain_dtype(ctx, node.input[0])
        if value is not None and (plain is None or plain in _FLOATS or value.size == 1):
            return M.gather_indices(ctx, node, value)
        if plain is None:
            raise ValueError("a Gather of a quantized activation by indices computed at run time is not supported "
                             "(only constant indices: the codes are moved)")
        return onnx_eval(ctx, node)
    dq = ctx.sole_consumer(node.output[0])
    if table.quant is None and table.dtype not in _FLOATS and dq is not None and dq.op_type == "DequantizeLinear":
        # quantize_dynamic's Gather of stored codes, then DequantizeLinear: a quantized table
        ctx.consts[node.input[0]] = Const(table.shape, table.dtype, table.value,
                                          Q.qdq_params(ctx, dq, len(table.shape), table.dtype))
    return M.gather(ctx, node)


_FLOAT_BITS = {"float64": 64, "float32": 32, "float16": 16, "bfloat16": 16}


def _dropped(ctx: Context, node, src: str, to: str) -> bool:
    """onnxruntime's RemoveDuplicateCastTransformer drops a float -> float Cast (no graph output) whose
    consumers are all Casts, where that loses nothing: the Cast widens (float32 -> float64 -> float32
    returns a signaling NaN as it came; float32 -> float64 -> float16 converts as float32 -> float16
    does), or every consumer narrows further (float64 -> float32 -> float16 is float64 -> float16, NaN
    payloads included). A narrowing Cast feeding a wider or equal one stays (float32 -> float16 ->
    float32 rounds; float32 -> bfloat16 -> float16 too). Measured, onnxruntime 1.32."""
    users = ctx.consumers.get(node.output[0], [])
    if src not in _FLOAT_BITS or to not in _FLOAT_BITS or not users or node.output[0] in ctx.graph_outputs \
            or any(u.op_type != "Cast" for u in users):
        return False
    if _FLOAT_BITS[to] > _FLOAT_BITS[src]:
        return True
    targets = [ELEM_NAMES.get(int(attrs_of(u)["to"])) for u in users]
    return all(t in _FLOAT_BITS and _FLOAT_BITS[t] < _FLOAT_BITS[to] for t in targets)


def cast(ctx: Context, node) -> None:
    """A Cast that changes the element type of a plain tensor is a node; otherwise an alias. Float to
    float too: onnxruntime rounds to float16 / bfloat16 (300.7 -> 300.75, 1e30 -> inf) and quiets a
    float16 signaling NaN on the way back (``qsim.sim.ort_cast``)."""
    to = ELEM_NAMES.get(int(attrs_of(node)["to"]), str(attrs_of(node)["to"]))
    src = _plain_dtype(ctx, node.input[0])
    if src is None or src == to or _dropped(ctx, node, src, to):
        return M.alias(ctx, node)
    if to not in CAST_TYPES or src not in CAST_TYPES:
        raise ValueError(f"Cast from {src} to {to} is not simulated (Cast converts between "
                         f"{', '.join(sorted(CAST_TYPES))})")
    ctx.emit("Cast", node, [ctx.act(node.input[0])], {"to": to}, dtype=to)


def dynamic_quantize_linear(ctx: Context, node) -> None:
    # one dtype per IR node: the scale output is recorded as uint8 too (a scalar, no cost effect)
    ctx.emit("DynamicQuantizeLinear", node, [ctx.act(node.input[0])], {}, outputs=list(node.output), dtype="uint8")


def _run_time_zero_point(ctx: Context, node, index: int) -> bool:
    return len(node.input) > index and bool(node.input[index]) and ctx.const(node.input[index]) is None


def _weight_zero_point(ctx: Context, node, index: int, w: Const) -> tuple[str, Const]:
    if len(node.input) > index and node.input[index]:
        c = ctx.const(node.input[index])
        return node.input[index], Const(c.shape, c.dtype, c.value)
    name = ctx.fresh(f"{node.name or node.output[0]}.weight_zero_point")
    return name, Const((), w.dtype, np.zeros((), np.dtype(w.dtype)))


def _stored_weight(ctx: Context, node, index: int, rank: int, what: str) -> Const:
    w = ctx.const(node.input[index])
    if w is None or w.value is None or len(w.shape) != rank:
        raise ValueError(f"{what} with a run-time zero point needs a constant rank-{rank} weight with values")
    return Const(w.shape, w.dtype, w.value)


def matmul_integer(ctx: Context, node) -> None:
    if not _run_time_zero_point(ctx, node, 2):
        return Q.matmul_integer(ctx, node)
    w = _stored_weight(ctx, node, 1, 2, "MatMulInteger")
    zp_name, zp = _weight_zero_point(ctx, node, 3, w)
    weights = {"weight": ctx.weight(node.input[1], w), "weight_zero_point": ctx.weight(zp_name, zp)}
    attrs = {"k": w.shape[0], "n": w.shape[1], "zero_point_shape": zp.shape}
    ctx.emit("MatMulIntegerDynamic", node, [ctx.act(node.input[0]), ctx.act(node.input[2])], attrs, weights,
             dtype="int32")


def _part(node, step: str, outputs: int = 1):
    """A stand-in ONNX node naming one IR node of a decomposed contrib op."""
    base = node.name or node.output[0]
    return make_node("Identity", [], [f"{node.output[0]}:{step}{i or ''}" for i in range(outputs)],
                            name=f"{base}:{step}")


def dynamic_quantize_matmul(ctx: Context, node) -> None:
    """com.microsoft DynamicQuantizeMatMul (A float, B, b_scale, b_zero_point?, bias?) as the ops it
    fuses: DynamicQuantizeLinear(A), MatMulInteger, Cast, Mul by a_scale * b_scale, Add bias. The
    onnxruntime kernel multiplies and then adds (no fused multiply-add): measured equal."""
    dql = _part(node, "quantize", 3)
    ctx.emit("DynamicQuantizeLinear", dql, [ctx.act(node.input[0])], {}, outputs=list(dql.output), dtype="uint8")
    w = _stored_weight(ctx, node, 1, 2, "DynamicQuantizeMatMul")
    zp_name, zp = _weight_zero_point(ctx, node, 3, w)
    weights = {"weight": ctx.weight(node.input[1], w), "weight_zero_point": ctx.weight(zp_name, zp)}
    mm = _part(node, "matmul")
    ctx.emit("MatMulIntegerDynamic", mm, [dql.output[0], dql.output[2]],
             {"k": w.shape[0], "n": w.shape[1], "zero_point_shape": zp.shape}, weights, dtype="int32")
    cast = _part(node, "cast")
    ctx.emit("Cast", cast, [mm.output[0]], {"to": "float32"}, dtype="float32")
    b_scale = ctx.const(node.input[2])
    scales = _part(node, "scales")
    ctx.emit("MulConst", scales, [dql.output[1]], {"operand_shape": b_scale.shape, "reversed": False},
             {"operand": ctx.weight(node.input[2], b_scale)}, dtype="float32")
    has_bias = len(node.input) > 4 and bool(node.input[4])
    out = _part(node, "rescale") if has_bias else node
    ctx.emit("Mul", out, [cast.output[0], scales.output[0]], {}, dtype="float32")
    if has_bias:
        ctx.emit("AddConst", node, [out.output[0]], {"operand_shape": ctx.const(node.input[4]).shape, "reversed": False},
                 {"operand": ctx.weight(node.input[4], ctx.const(node.input[4]))}, dtype="float32")


def conv_integer(ctx: Context, node) -> None:
    if not _run_time_zero_point(ctx, node, 2):
        return Q.conv_integer(ctx, node)
    w = _stored_weight(ctx, node, 1, 4, "ConvInteger")
    zp_name, zp = _weight_zero_point(ctx, node, 3, w)
    x = ctx.act(node.input[0])
    a = attrs_of(node)
    attrs = {"out_channels": w.shape[0], "groups": int(a.get("group", 1)), "zero_point_shape": zp.shape,
             **_window(ctx, node, x, a.get("kernel_shape", w.shape[2:]))}
    weights = {"weight": ctx.weight(node.input[1], w), "weight_zero_point": ctx.weight(zp_name, zp)}
    ctx.emit("ConvIntegerDynamic", node, [x, ctx.act(node.input[2])], attrs, weights, dtype="int32")


# -- onnxruntime's MatMulScaleFusion: Mul by a scalar constant feeding only a MatMul of two activations
# is folded into the product as FusedMatMul's alpha, applied to the finished sum: reproduced here.
def _scalar_scale(ctx: Context, node) -> tuple[str, np.float32] | None:
    """(activation, scale) when ``node`` is Mul(activation, scalar float constant), else None."""
    if node is None or node.op_type != "Mul":
        return None
    consts = [ctx.const(i) for i in node.input[:2]]
    for k in (0, 1):
        c, other = consts[k], node.input[1 - k]
        if c is not None and c.value is not None and c.value.size == 1 and c.dtype == "float32" \
                and consts[1 - k] is None:
            return other, np.float32(c.value.reshape(-1)[0])
    return None


def _folded(ctx: Context) -> dict[str, tuple[str, np.float32]]:
    """Mul outputs folded into a MatMul during this import: name -> (its input, its scale)."""
    return vars(ctx).setdefault("folded_matmul_scales", {})


def mul(ctx: Context, node) -> None:
    """A Mul folded into its MatMul (see above) adds no node; other Muls as ``onnx_ops.binary``."""
    found = _scalar_scale(ctx, node)
    user = ctx.sole_consumer(node.output[0])
    if found is not None and user is not None and user.op_type == "MatMul" and (
            found[0] in ctx.alias or found[0] in ctx.data_inputs) \
            and ctx.act(found[0]) not in ctx.g.quant_params and all(ctx.const(i) is None for i in user.input[:2]):
        ctx.alias[node.output[0]] = ctx.act(found[0])  # the scale moves into the MatMul's alpha
        _folded(ctx)[node.output[0]] = found
        return
    F.binary("Mul")(ctx, node)


def matmul(ctx: Context, node) -> None:
    folded = [_folded(ctx).get(name) for name in node.input[:2]]
    if not any(folded):
        return F.matmul(ctx, node)
    alpha = np.float32(1)
    for found in folded:
        alpha = np.float32(alpha * found[1]) if found else alpha
    ctx.emit("MatMul", node, [ctx.act(i) for i in node.input[:2]], {"alpha": float(alpha)})


def _generic_fold(op: str):
    existing = FOLDERS.get(op)
    return existing if existing is not None else _fold(lambda ctx, node, a: eval_onnx(op, a, attrs_of(node)))


def onnx_entries(entry) -> dict:
    """The ``ONNX_OPS`` entries this module adds or replaces (``entry(handler, fold)`` builds one)."""
    table = {op: entry(onnx_eval, _generic_fold(op)) for op in GENERIC if op in ONNX_NUMPY}
    table.update({
        "DynamicQuantizeLinear": entry(dynamic_quantize_linear, None),
        "MatMulInteger": entry(matmul_integer, None), "ConvInteger": entry(conv_integer, None),
        "DynamicQuantizeMatMul": entry(dynamic_quantize_matmul, None),
        "Cast": entry(cast, FOLDERS["Cast"]), "Gather": entry(gather, FOLDERS["Gather"]),
        "Reshape": entry(_or_eval(M.reshape), FOLDERS["Reshape"]),
        "Flatten": entry(_or_eval(M.flatten), FOLDERS["Flatten"]),
        "Squeeze": entry(_or_eval(M.squeeze_like), FOLDERS["Squeeze"]),
        "Unsqueeze": entry(_or_eval(M.squeeze_like), FOLDERS["Unsqueeze"]),
        "Transpose": entry(_or_eval(M.transpose), FOLDERS["Transpose"]),
        "Concat": entry(_or_eval(M.concat), FOLDERS["Concat"]),
        "Mul": entry(mul, FOLDERS["Mul"]), "MatMul": entry(matmul, None),
    })
    return table
