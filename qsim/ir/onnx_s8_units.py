"""Which QDQ node units onnxruntime (x86-64, CPU provider, ORT_ENABLE_EXTENDED and above) runs in
float, read from the graph: those of int8 activations (S8S8 QDQ models, below) and Conv / Gemm units
whose bias is not quantized as int32 (``bias_refusal``).

onnxruntime fuses int8-activation units only after ``QDQS8ToU8Transformer`` has turned their
QuantizeLinear -> DequantizeLinear pairs into uint8 ones, and it converts a pair only when the
QuantizeLinear has exactly one output edge to a DequantizeLinear with the same scalar zero point
(``qdq_s8_to_u8.cc``); ``EnsureUniqueDQForNodeUnit`` gives every consumer of a DequantizeLinear
output (a graph output counts as one) its own copy first. A tensor that stays int8 leaves every
compute unit reading or writing it unfused: DQ -> float op -> Q. qsim runs such a unit as the same
float island where its float kernel is onnxruntime's bit for bit, the ``FLOAT_EXACT_UNITS``: one IEEE
operation per element or a move (Add, Sub, Mul, Div, Relu, Clip, Max, Min, LeakyRelu, Concat,
MaxPool, Pad), onnxruntime's Eigen expression (BatchNormalization), a sum whose order qsim reproduces
(AveragePool, ReduceMean: ``qsim.sim.float_pool``; GlobalAveragePool, Softmax: ``qsim.sim.float_mlas``;
Gemm with transB=1 and MatMul: ``qsim.sim.float_mlas_gemm``; 2-D Conv: ``qsim.sim.float_mlas_conv``), or
MLAS's own approximation (Erf, Sigmoid, Tanh); it refuses the model where it is not (other Gemm and
Conv forms: MLAS's float summation order is not reproduced for their units). Movement ops, LayerNormalization and the hard activations are exact
either way (``_EXACT_IN_FLOAT``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from qsim.ir import onnx_proto

if TYPE_CHECKING:
    from onnx import ModelProto

# Units whose float form qsim reproduces: movement and max ops (exact), and ops that onnxruntime never
# fuses (qsim runs them as the same float islands). Gather moves values: qsim moves the codes where the
# parameters carry over (DQ -> Gather -> Q of equal parameters: the codes come back unchanged) and runs the
# same float island where they do not; the importer refuses what it cannot move (run-time indices).
_EXACT_IN_FLOAT = {"MaxPool", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Relu",
                   "QuantizeLinear", "DequantizeLinear", "LayerNormalization", "HardSigmoid", "HardSwish",
                   "Slice", "Split", "Shape", "Gather"}

# units whose float run at ORT_DISABLE_ALL equals qsim's integer unit: the exact ones above, and those
# the differential long runs found equal on every case (about 2,500 seeds each: Concat's requantization,
# LeakyRelu, and Sigmoid, whose table qsim builds from MLAS's own logistic), and BatchNormalization,
# which no QDQ fusion takes: onnxruntime runs it in float at every level, as qsim's float island does
_SAME_UNFUSED = _EXACT_IN_FLOAT | {"Concat", "LeakyRelu", "Sigmoid", "BatchNormalization"}


def _scalar_int8(inits: dict, name: str):
    t = inits.get(name)
    if t is None or t.data_type != onnx_proto.INT8:
        return None
    v = onnx_proto.to_array(t)
    return int(v.reshape(-1)[0]) if v.size == 1 else None


def int8_pairs(model: ModelProto) -> tuple[set[str], set[str]]:
    """(Q outputs whose int8 Q -> DQ pair onnxruntime converts to uint8, Q outputs left int8)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    outputs = {o.name for o in g.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    converted, int8_left = set(), set()
    for q in g.node:
        if q.op_type != "QuantizeLinear" or q.input[0] in inits or len(q.input) < 3:
            continue
        zp = _scalar_int8(inits, q.input[2])
        if zp is None and inits.get(q.input[2]) is not None and inits[q.input[2]].data_type != onnx_proto.INT8:
            continue  # uint8 (or other) activations: nothing to convert
        users = consumers.get(q.output[0], [])
        dq = users[0] if len(users) == 1 else None
        ok = (zp is not None and q.output[0] not in outputs and dq is not None and dq.op_type == "DequantizeLinear"
              and len(dq.input) >= 3 and _scalar_int8(inits, dq.input[2]) == zp
              and len(consumers.get(dq.output[0], [])) + (dq.output[0] in outputs) == 1)
        (converted if ok else int8_left).add(q.output[0])
    return converted, int8_left


# Unfused units whose float op onnxruntime computes with single IEEE fp32 operations (or none), or
# in an order qsim's float kernel follows, so that qsim's float island (DQ -> the same fp32 op ->
# QuantizeLinear's formula) equals it: AveragePool, ReduceMean (float_pool, measured equal at every
# session level in tests/golden/test_float_pool_order.py); GlobalAveragePool, Softmax, Erf (MLAS's
# lanes and polynomials: float_mlas), Sigmoid and Tanh (MLAS's rational forms, which the onnxruntime
# policy's float islands run: int_float), LeakyRelu (one multiply), Pad (moves and one constant),
# BatchNormalization (Eigen's expression, which qsim's kernel follows; no QDQ fusion takes it):
# measured equal, fp32 bits and int8 codes, at ORT_ENABLE_EXTENDED and ORT_ENABLE_ALL
# (tests/golden/test_s8s8_float_islands.py). Conv, MatMul and Gemm sum in an order MLAS picks that
# qsim's float kernels do not follow for them: refused (but for Gemm with transB=1, MatMul and
# the 2-D Conv forms below).
FLOAT_EXACT_UNITS = {"Add", "Sub", "Mul", "Relu", "Clip", "Concat", "MaxPool", "Max", "Min", "AveragePool",
                     "ReduceMean", "GlobalAveragePool", "Softmax", "Erf", "Sigmoid", "Tanh", "LeakyRelu", "Pad",
                     "BatchNormalization", "Div"}


# A float Gemm unit sums in MLAS's SGEMM order (``qsim.sim.float_mlas_gemm``: 0 of 431,424 outputs
# differed (35,952 per level, bias or none, 1, 2 or 4 threads; M 1-16, K 1-700, N 1-150), AVX2 host;
# tests/golden/test_s8s8_float_units.py) in the form qsim's IR keeps: B transposed (transB=1, as
# quantize_static leaves a Linear layer), no transA, alpha = beta = 1. Gemm with transB=0 (not measured):
# refused. MatMul (``_exact_matmul``) is admitted: its untransposed B, which takes MLAS's other M = 1
# kernel, is kept by the importer (``kn_weight`` on the IR Gemm of a constant B) or is an activation.
def _exact_gemm(node) -> bool:
    a = {x.name: x for x in node.attribute}
    val = lambda k, d: (a[k].i if a[k].type == 2 else a[k].f) if k in a else d  # noqa: E731 (2: INT, 1: FLOAT)
    return val("transB", 0) == 1 and val("transA", 0) == 0 and val("alpha", 1.0) == 1.0 and val("beta", 1.0) == 1.0


# A float MatMul unit (matmul.cc: MlasGemmBatch, B not transposed) sums in MLAS's SGEMM order with its
# batch slices and thread split (``float_mlas_gemm.batched``): 0 of 3,914,298 outputs differed (ORT_ENABLE_ALL
# and ORT_ENABLE_EXTENDED, 1, 2 and 4 threads; a DQ'd constant B: M 1-64, K 7-3072, N 1-3072, A of rank
# 2 and 3; two activations: attention's (1, 12, 16|128, 64) x (1, 12, 64, 16|128) and scores x V, broadcast
# batches, N = 1, M = 1 slices, a 2-D B under a 3-D A), AVX2 host; tests/golden/test_s8s8_float_units.py.
# The ONNX MatMul has no attributes; rank-1 inputs (not measured) are refused when the unit runs.
def _exact_matmul(node) -> bool:
    return node.op_type == "MatMul" and not node.attribute


# A float Conv unit sums in MlasConv's order (``qsim.sim.float_mlas_conv``: 0 of 345,884 outputs differed per
# thread count (1, 2, 4) and session level, where numpy's order differed on 52-58 %: 3x3 pad 1 / stride 2,
# 1x1 stride 1 and 2, 7x7 stride 2 pad 3, 5x5, 1x3, 5x3, asymmetric pads, grouped, depthwise, dilation 2,
# channels 3-256, spatial 3-32, batch 1 and 2, bias or none, a following Relu; AVX2 host;
# tests/golden/test_s8s8_float_units.py) in its 2-D forms with explicit pads. Refused: other ranks, auto_pad,
# and the unpadded stride-1 one-input-channel-per-group kernels MlasConvPrepare may run as a GEMM of the
# transposed input (a kernel as wide as the input: not modelled; the input width is not known here).
def _exact_conv(node, inits: dict) -> bool:
    a = {x.name: x for x in node.attribute}
    if "auto_pad" in a and a["auto_pad"].s not in (b"", b"NOTSET"):
        return False
    w = inits.get(node.input[1]) if len(node.input) > 1 else None
    if w is None or len(w.dims) != 4:
        return False
    ints = lambda k, d: list(a[k].ints) if k in a else d  # noqa: E731
    stride, pads = ints("strides", [1, 1]), ints("pads", [0, 0, 0, 0])
    return not (w.dims[1] == 1 and tuple(w.dims[2:]) != (1, 1) and set(stride) == {1} and not any(pads))


def unfused_int8_ops(model: ModelProto) -> dict[str, str]:
    """Node name -> op type of ``unfused_int8_units``."""
    ops = {n.name or n.output[0]: n.op_type for n in model.graph.node}
    return {u: ops[u] for u in unfused_int8_units(model)}


def _exact_units(model: ModelProto) -> set[str]:
    """Unfused units whose float form qsim reproduces (``FLOAT_EXACT_UNITS``, Gemm per ``_exact_gemm``,
    MatMul per ``_exact_matmul``, Conv per ``_exact_conv``, its weight the DequantizeLinear of an initializer)."""
    g = model.graph
    nodes = {n.name or n.output[0]: n for n in g.node}
    inits = {t.name: t for t in g.initializer}
    weight_of = {n.output[0]: inits.get(n.input[0]) for n in g.node if n.op_type == "DequantizeLinear"}
    weight_of = {k: v for k, v in weight_of.items() if v is not None}
    return {u for u, op in unfused_int8_ops(model).items()
            if op in FLOAT_EXACT_UNITS or (op == "Gemm" and _exact_gemm(nodes[u])) or _exact_matmul(nodes[u])
            or (op == "Conv" and _exact_conv(nodes[u], weight_of))}


def int8_float_units(model: ModelProto) -> tuple[str, ...]:
    """The unfused units qsim runs as float islands, exactly as onnxruntime does."""
    exact = _exact_units(model)
    return tuple(u for u in unfused_int8_ops(model) if u in exact)


def unfused_int8_units(model: ModelProto) -> list[str]:
    """Names of the compute nodes onnxruntime leaves unfused because a tensor they read or write
    through Q/DQ stays int8 (see the module doc); empty for uint8 models."""
    g = model.graph
    int8_left = int8_pairs(model)[1]
    if not int8_left:
        return []
    dq_of = {n.output[0]: n.input[0] for n in g.node if n.op_type == "DequantizeLinear"}
    q_of = {n.input[0]: n.output[0] for n in g.node if n.op_type == "QuantizeLinear"}
    units = []
    for n in g.node:
        if n.op_type in _EXACT_IN_FLOAT:
            continue
        touched = [dq_of.get(i) for i in n.input] + [q_of.get(o) for o in n.output]
        if any(t in int8_left for t in touched):
            units.append(n.name or n.output[0])
    return units


def float_qdq_units(model: ModelProto) -> tuple[str, ...]:
    """Nodes that take a DequantizeLinear output and whose float kernel is not the integer unit's
    function: with graph optimizations off (ORT_DISABLE_ALL) onnxruntime fuses no QDQ unit and runs
    these in float, which qsim does not reproduce."""
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return tuple(n.name or n.output[0] for n in model.graph.node
                 if n.op_type not in _SAME_UNFUSED and any(i in dq_out for i in n.input))


def int8_refusal(model: ModelProto) -> str | None:
    """A one-line reason to refuse simulating ``model`` (None when every unit is reproduced)."""
    exact = _exact_units(model)
    units = [f"{u} ({op})" for u, op in unfused_int8_ops(model).items() if u not in exact]
    if not units:
        return None
    shown = ", ".join(units[:6]) + (f" and {len(units) - 6} more" if len(units) > 6 else "")
    return (f"onnxruntime runs the QDQ units {shown} in float (int8 activations whose QuantizeLinear "
            "feeds several nodes or a graph output stay int8 and are not fused on x86-64); qsim does not "
            "reproduce the summation order of those float kernels (float units of "
            f"{', '.join(sorted(FLOAT_EXACT_UNITS))}, MatMul, transB=1 Gemm and 2-D Conv are run as onnxruntime runs them). "
            "Quantize with uint8 activations (onnxruntime fuses every unit then, and runs faster)")


def bias_refusal(model: ModelProto) -> str | None:
    """Conv / Gemm QDQ units whose bias DequantizeLinear reads another type than int32: onnxruntime's
    selectors (``ConvNodeGroupSelector``, ``GemmNodeGroupSelector``) fuse only an int32 bias, so the
    unit stays DQ -> float Conv -> Q (ConvNeXt-tiny through quantize_static: its stem's bias came out
    uint8, and qsim's integer conv differed from onnxruntime's float one on 1 % of the codes)."""
    g = model.graph
    types = {t.name: t.data_type for t in g.initializer}
    dq_src = {n.output[0]: n.input[0] for n in g.node if n.op_type == "DequantizeLinear"}
    units = []
    for n in g.node:
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 2 and n.input[0] in dq_src and n.input[2] in dq_src:
            elem = types.get(dq_src[n.input[2]], onnx_proto.INT32)
            if elem != onnx_proto.INT32:
                units.append(f"{n.name or n.output[0]} ({n.op_type}, a {onnx_proto.np_dtype(elem).name} bias)")
    if not units:
        return None
    shown = ", ".join(units[:6]) + (f" and {len(units) - 6} more" if len(units) > 6 else "")
    return (f"onnxruntime runs the QDQ units {shown} in float: it fuses a Conv or Gemm unit only with an "
            "int32 bias (QLinearConv / QGemm), and qsim does not reproduce the summation order of its float "
            "kernels. Quantize those biases as int32 at input scale x weight scale")
