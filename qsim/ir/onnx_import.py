"""ONNX -> Graph: ``load_onnx(path, batch=None)``.

Steps: (1) read the file (a clear QsimError for a missing, truncated or non-ONNX file; ``onnx_proto``
reads it without importing the onnx package); (2) tell data inputs from weights given as inputs
(weightless exports), fix the batch, run ONNX shape inference (for a quantized model only if a
handler asks for a shape or an element type the file does not give: most never do);
(3) walk the nodes in order, each through ONE table (``ONNX_OPS``: op type -> handler and/or constant
folder); (4) mark outputs and validate. An unsupported op is a GraphError naming the op and the node
and listing the supported ops. Nothing partial is returned: any failure raises.

Also exported: ``plan_from_graph`` (the precision plan an imported quantized model implies).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, NamedTuple

from qsim.errors import GraphError, QsimError
from qsim.ir import onnx_dynamic, onnx_proto
from qsim.ir import onnx_moves as M, onnx_ops as F
from qsim.ir import onnx_qops as Q
from qsim.ir.graph import Graph
from qsim.ir.model_io import ModelIO, Port
from qsim.ir.onnx_context import Context, classify_inputs, is_quantized
from qsim.ir.onnx_fold import FOLDERS
from qsim.ir.onnx_s8_units import bias_refusal, float_qdq_units, int8_float_units, int8_pairs, int8_refusal

if TYPE_CHECKING:
    import onnx

__all__ = ["load_onnx", "plan_from_graph", "ONNX_OPS"]


def plan_from_graph(g):
    """``qsim.ir.onnx_plan.plan_from_graph``, imported on demand: simulating a model file does not
    need it or ``qsim.precision`` (a cold start compiles and runs every module it imports)."""
    from qsim.ir.onnx_plan import plan_from_graph as plan

    return plan(g)


class OnnxOp(NamedTuple):
    handler: Callable | None  # adds IR nodes for the ONNX node
    fold: Callable | None = None  # evaluates it when all its inputs are constants


def _q(op, handler, xs, y):
    return OnnxOp(Q.qlinear_as(op, handler, xs, y))


_ONE = lambda node: [(0, 1, 2)]  # noqa: E731  (X, X_scale, X_zero_point) of a unary QLinear op
_TWO = lambda node: [(0, 1, 2), (3, 4, 5)]  # noqa: E731

ONNX_OPS: dict[str, OnnxOp] = {
    # matrix ops (absorb a following BatchNormalization / per-channel Mul, Add)
    "Conv": OnnxOp(F.conv), "Gemm": OnnxOp(F.gemm), "MatMul": OnnxOp(F.matmul),
    "BatchNormalization": OnnxOp(F.batchnorm), "LayerNormalization": OnnxOp(F.layer_norm),
    "Gather": OnnxOp(M.gather, FOLDERS["Gather"]),
    # elementwise
    "Add": OnnxOp(F.binary("Add"), FOLDERS["Add"]), "Sub": OnnxOp(F.binary("Sub"), FOLDERS["Sub"]),
    "Mul": OnnxOp(F.binary("Mul"), FOLDERS["Mul"]), "Div": OnnxOp(F.binary("Div"), FOLDERS["Div"]),
    "Pow": OnnxOp(F.binary("Pow")), "Sum": OnnxOp(F.sum_),
    "Relu": OnnxOp(F.unary("Relu")), "Sigmoid": OnnxOp(F.unary("Sigmoid")), "Tanh": OnnxOp(F.unary("Tanh")),
    "Erf": OnnxOp(F.unary("Erf")), "Sqrt": OnnxOp(F.unary("Sqrt"), FOLDERS["Sqrt"]),
    "HardSwish": OnnxOp(F.unary("HardSwish")), "Gelu": OnnxOp(F.unary("GELU")), "Clip": OnnxOp(F.clip),
    "LeakyRelu": OnnxOp(F.with_attrs("LeakyRelu", {"alpha": ("alpha", 0.01)})),
    "HardSigmoid": OnnxOp(F.with_attrs("HardSigmoid", {"alpha": ("alpha", 0.2), "beta": ("beta", 0.5)})),
    "Softmax": OnnxOp(F.softmax),
    "LRN": OnnxOp(F.with_attrs("LRN", {"size": ("size", None), "alpha": ("alpha", 1e-4),
                                       "beta": ("beta", 0.75), "bias": ("bias", 1.0)})),
    # pooling
    "MaxPool": OnnxOp(F.pool("MaxPool")), "AveragePool": OnnxOp(F.pool("AvgPool")),
    "GlobalAveragePool": OnnxOp(F.global_avgpool), "GlobalMaxPool": OnnxOp(F.unary("GlobalMaxPool")),
    "ReduceMean": OnnxOp(F.reduce_mean),
    # data movement
    "Reshape": OnnxOp(M.reshape, FOLDERS["Reshape"]), "Flatten": OnnxOp(M.flatten, FOLDERS["Flatten"]),
    "Transpose": OnnxOp(M.transpose, FOLDERS["Transpose"]), "Concat": OnnxOp(M.concat, FOLDERS["Concat"]),
    "Squeeze": OnnxOp(M.squeeze_like, FOLDERS["Squeeze"]), "Unsqueeze": OnnxOp(M.squeeze_like, FOLDERS["Unsqueeze"]),
    "Split": OnnxOp(M.split), "Pad": OnnxOp(M.pad),
    "Identity": OnnxOp(M.alias, FOLDERS["Identity"]), "Dropout": OnnxOp(M.alias, FOLDERS["Dropout"]),
    "Cast": OnnxOp(M.alias, FOLDERS["Cast"]),
    # constants only (shape arithmetic, weights stored as ops)
    "Constant": OnnxOp(None, FOLDERS["Constant"]), "ConstantOfShape": OnnxOp(None, FOLDERS["ConstantOfShape"]),
    "Shape": OnnxOp(None, FOLDERS["Shape"]), "Slice": OnnxOp(M.slice_, FOLDERS["Slice"]),
    "Equal": OnnxOp(None, FOLDERS["Equal"]), "Where": OnnxOp(None, FOLDERS["Where"]),
    "Expand": OnnxOp(None, FOLDERS["Expand"]), "Range": OnnxOp(None, FOLDERS["Range"]),
    # quantization: QDQ
    "QuantizeLinear": OnnxOp(Q.quantize, Q.fold_quantize),
    "DequantizeLinear": OnnxOp(Q.dequantize, Q.fold_dequantize),
    # quantization: QOperator (ONNX and com.microsoft)
    "QLinearConv": OnnxOp(Q.qlinear_conv), "ConvInteger": OnnxOp(Q.conv_integer),
    "QLinearMatMul": OnnxOp(Q.qlinear_matmul), "MatMulInteger": OnnxOp(Q.matmul_integer),
    "QGemm": OnnxOp(Q.qgemm),
    "QLinearAdd": _q("Add", F.binary("Add"), _TWO, (6, 7)),
    "QLinearMul": _q("Mul", F.binary("Mul"), _TWO, (6, 7)),
    "QLinearAveragePool": _q("AveragePool", F.pool("AvgPool"), _ONE, (3, 4)),
    "QLinearGlobalAveragePool": _q("GlobalAveragePool", F.unary("GlobalAvgPool"), _ONE, (3, 4)),
    "QLinearConcat": _q("Concat", M.concat, Q.concat_inputs, (0, 1)),
    "QLinearSigmoid": _q("Sigmoid", F.unary("Sigmoid"), _ONE, (3, 4)),
    "QLinearLeakyRelu": _q("LeakyRelu", F.with_attrs("LeakyRelu", {"alpha": ("alpha", 0.01)}), _ONE, (3, 4)),
    "QLinearSoftmax": _q("Softmax", F.softmax, _ONE, (3, 4)),
}
# dynamic quantization and the mask / index arithmetic of transformer exports (``onnx_dynamic``)
ONNX_OPS.update(onnx_dynamic.onnx_entries(OnnxOp))
_DOMAINS = {"", "ai.onnx", "com.microsoft"}


def _read(path: str) -> onnx.ModelProto:
    if not os.path.isfile(path):
        raise QsimError(f"{path}: ONNX model file not found")
    try:
        model = onnx_proto.read_model(path)
    except Exception as exc:  # protobuf DecodeError: the file is at fault
        raise QsimError(f"{path}: not a readable ONNX model (truncated or not ONNX?): "
                        f"{type(exc).__name__}: {exc}") from None
    if not model.graph.node or not model.graph.output:
        raise QsimError(f"{path}: not a readable ONNX model (no nodes or no outputs; truncated or not ONNX?)")
    return model


def _infer(model: onnx.ModelProto, path: str) -> onnx.ModelProto:
    try:
        return onnx_proto.infer_shapes(model)
    except Exception as exc:  # inconsistent shapes or types in the file
        raise QsimError(f"{path}: ONNX shape inference failed: {exc}") from None


def _fix_batch(model: onnx.ModelProto, data_inputs: set[str], batch: int | None, path: str) -> int | None:
    """Give every data input a static shape: the batch axis becomes ``batch`` (default: the file's,
    or 1 if symbolic). Returns the file's batch when it changed (Reshape targets bake it in)."""
    original, changed = None, False
    for inp in model.graph.input:
        if inp.name not in data_inputs:
            continue
        if not inp.type.tensor_type.HasField("shape"):
            raise GraphError(f"{path}: input {inp.name!r} has no shape in the file; qsim needs each input's "
                             "shape: export with an example input of the right shape, or set it with "
                             "onnx.tools.update_model_dims.update_inputs_outputs_dims")
        dims = inp.type.tensor_type.shape.dim
        for i, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value < 0:
                raise GraphError(f"{path}: input {inp.name!r} has a negative dimension {d.dim_value} at axis {i}")
            if i == 0:
                original = d.dim_value if d.HasField("dim_value") else original
                want = batch if batch is not None else (d.dim_value if d.HasField("dim_value") and d.dim_value else 1)
                if not d.HasField("dim_value") or d.dim_value != want:
                    d.Clear()
                    d.dim_value = want
                    changed = True
            elif not d.HasField("dim_value") or d.dim_value <= 0:
                raise GraphError(f"{path}: input {inp.name!r} has a symbolic dimension "
                                 f"{d.dim_param or '?'!r} at axis {i}; export it with static shapes")
    if changed:
        del model.graph.value_info[:]  # shapes inferred for the old batch would conflict
    return original if changed else None


def load_onnx(path: str | os.PathLike, batch: int | None = None) -> Graph:
    """Import an ONNX model (float, weightless, QDQ or QOperator) into a validated Graph."""
    return load_onnx_io(path, batch)[0]


def load_onnx_io(path: str | os.PathLike, batch: int | None = None) -> tuple[Graph, ModelIO]:
    """``load_onnx`` and the file's own inputs and outputs mapped onto the graph (``ModelIO``)."""
    path = str(path)
    if batch is not None and batch <= 0:
        raise QsimError(f"{path}: batch must be positive, got {batch}")
    model = _read(path)
    inferred = not is_quantized(model)  # a float model's inputs are classified on inferred shapes
    if inferred:
        model = _infer(model, path)
    data = classify_inputs(model)
    symbolic_batch = {i.name for i in model.graph.input if i.name in data and i.type.tensor_type.shape.dim
                      and not i.type.tensor_type.shape.dim[0].HasField("dim_value")}
    batch_from = _fix_batch(model, data, batch, path)
    if inferred and (batch_from is not None or batch is not None):
        model = _infer(model, path)
    name = model.graph.name or os.path.splitext(os.path.basename(path))[0]
    ctx = Context(model, path, Graph(name), data, batch_from, batch if batch_from is not None else None, inferred)
    ctx.folders = {op: entry.fold for op, entry in ONNX_OPS.items() if entry.fold is not None}
    live = _live_nodes(model.graph)
    _check_supported(live, path)
    for node in live:
        if id(node) not in ctx.done:
            _import_node(ctx, node)
    g = ctx.g
    for out in model.graph.output:
        tensor = ctx.alias.get(out.name)
        if tensor is None:
            raise GraphError(f"{path}: graph output {out.name!r} is a constant or is not produced")
        if tensor not in g.outputs:
            g.mark_output(tensor)
    order = [i.name for i in model.graph.input]
    g.inputs.sort(key=lambda t: order.index(t) if t in order else len(order))
    return g.validate(), _model_io(model, ctx, symbolic_batch)


def _model_io(model: onnx.ModelProto, ctx: Context, symbolic_batch: set[str]) -> ModelIO:
    def port(vi, tensor):
        shape = ctx.g.tensor(tensor).shape
        if vi.name in symbolic_batch:
            shape = (None,) + tuple(shape[1:])
        elem = vi.type.tensor_type.elem_type
        try:
            dtype = onnx_proto.np_dtype(elem).name
        except (KeyError, TypeError):
            raise GraphError(f"{ctx.path}: graph input/output {vi.name!r} has element type {elem}, "
                             "which has no numpy dtype") from None
        return Port(vi.name, tensor, dtype, tuple(shape))

    inputs = tuple(port(i, i.name) for i in model.graph.input if i.name in ctx.g.inputs)
    uint8 = tuple(sorted({ctx.alias.get(t, t) for t in int8_pairs(model)[0]}))
    refusal = "; ".join(r for r in (int8_refusal(model), bias_refusal(model), half_refusal(ctx)) if r) or None
    return ModelIO(inputs, tuple(port(o, ctx.alias[o.name]) for o in model.graph.output), refusal, uint8,
                   int8_float_units(model), float_qdq_units(model))


def _check_supported(nodes: list[onnx.NodeProto], path: str) -> None:
    """Fail before building anything, naming every unsupported op (first node of each)."""
    missing: dict[str, onnx.NodeProto] = {}
    for node in nodes:
        if node.domain not in _DOMAINS or node.op_type not in ONNX_OPS:
            missing.setdefault(f"{node.domain + '.' if node.domain else ''}{node.op_type}", node)
    if missing:
        found = "; ".join(f"{op} (node {n.name or n.output[0]!r})" for op, n in missing.items())
        raise GraphError(f"{path}: unsupported op{'s' if len(missing) > 1 else ''} {found}; "
                         f"supported ops: {', '.join(sorted(ONNX_OPS))}")


def _import_node(ctx: Context, node: onnx.NodeProto) -> None:
    where = f"{ctx.path}: node {node.name or node.output[0]!r} ({node.op_type})"
    entry = ONNX_OPS[node.op_type]
    try:
        if entry.fold is not None and ctx.const(node.output[0]) is not None:
            return
        if entry.handler is None:
            raise ValueError("its inputs are not constants, and it is only supported on constants")
        _note_half_arithmetic(ctx, node)
        entry.handler(ctx, node)
    except GraphError as exc:
        raise GraphError(f"{where}: {exc}") from None
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise GraphError(f"{where}: {exc}") from None
    ctx.done.add(id(node))


# Ops that only move float16 / bfloat16 values (exact whatever onnxruntime's kernel).
_HALF_MOVES = {"Cast", "Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"}


def _note_half_arithmetic(ctx: Context, node: onnx.NodeProto) -> None:
    """Record a node computing on float16 / bfloat16 activations (``half_refusal``)."""
    if node.op_type in _HALF_MOVES:
        return
    for name in node.input:
        if name and ctx.const(name) is None and (name in ctx.alias or name in ctx.data_inputs):
            t = ctx.act(name)
            dtype = None if t in ctx.g.quant_params else ctx.g.tensor(t).dtype
            if dtype in ("float16", "bfloat16"):
                ctx.half_nodes.append(f"{node.name or node.output[0]} ({node.op_type} on {dtype})")
                return


def half_refusal(ctx: Context) -> str | None:
    """Why onnxruntime's answer for float16 / bfloat16 arithmetic is not reproduced (None: none in the
    model). Its CPU runs such nodes in float32: InsertCastTransformer casts the inputs up and the
    output back, then drops the cast pairs that meet, the model's own Casts included: Cast(float16) ->
    Relu -> Cast(float32) passes 1e30 unrounded, while Cast(float16) -> Cast(float32) gives inf, and
    float16 Mul then Add rounds once (measured, onnxruntime 1.32). Where it rounds thus depends on the
    graph around each node, and qsim does not model that rewrite. The import still succeeds (costs)."""
    if not ctx.half_nodes:
        return None
    shown = ", ".join(ctx.half_nodes[:6]) + (f" and {len(ctx.half_nodes) - 6} more" if len(ctx.half_nodes) > 6 else "")
    return (f"nodes {shown} compute on half-precision values, which onnxruntime runs in float32 and rounds "
            "only where its InsertCastTransformer leaves a Cast; qsim does not reproduce where: compute in "
            "float32 (Cast to float32 before those nodes; Casts alone are simulated exactly)")


def _live_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes that some graph output depends on, in file order (dead branches are skipped)."""
    producer = {o: n for n in graph.node for o in n.output if o}
    live, stack = set(), [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is not None and id(node) not in live:
            live.add(id(node))
            stack.extend(i for i in node.input if i)
    return [n for n in graph.node if id(n) in live]
