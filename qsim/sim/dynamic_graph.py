"""Dynamic activation quantization of a float graph by qsim's own quantizer (a plan whose precision
says ``dynamic``, ``qsim.precision.Dynamic``).

Every Gemm and Conv whose precision is dynamic is rewritten as onnxruntime's ``quantize_dynamic``
writes it: ``DynamicQuantizeLinear(x) -> (x_q, x_scale, x_zp)``; ``MatMulIntegerDynamic`` /
``ConvIntegerDynamic`` on the stored weight codes; ``Cast`` to float32; ``Mul`` by
``x_scale * w_scale``; ``Add`` of the float bias. Everything else stays float, as in onnxruntime's
dynamic recipe. Weights are quantized ahead of time, symmetric (codes in [-q, q], q = 2**(bits-1) - 1,
zero point 0), ``scale = max|w| / q`` in fp32 and codes ``round_half_even(w / scale)``:

* ``per_tensor``: one scale for the whole weight and one for the whole activation tensor, uint8
  asymmetric activations: onnxruntime's ``quantize_dynamic`` defaults;
* ``per_token``: one activation scale and zero point per row of the last axis (per token of a
  transformer), weights per output channel: the W8A8 scheme LLM runtimes use. A Conv under a
  per-token plan is refused (its rows are not tokens).

The rewritten graph holds no ``quant_params``: the parameters are tensors computed at run time by
the ops of ``qsim.ir.ops.dynamic``, whose kernels are integer-exact.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import WorkloadError
from qsim.ir.graph import Graph
from qsim.precision import Dynamic, PrecisionPlan, parse_plan

DYNAMIC_OPS = ("Gemm", "Conv")


def has_dynamic(plan) -> bool:
    return plan is not None and any(p.dynamic is not None for p in parse_plan(plan).precisions())


def quantize_weight(w: np.ndarray, bits: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric codes (int8 storage) and fp32 scales (one, or one per output channel = axis 0)."""
    w = np.asarray(w, np.float32)
    q = np.float32(2 ** (bits - 1) - 1)
    absmax = np.abs(w).reshape(w.shape[0], -1).max(axis=1) if per_channel else np.abs(w).max()
    scale = np.where(absmax > 0, (absmax / q).astype(np.float32), np.float32(1)).astype(np.float32)
    view = scale.reshape((-1,) + (1,) * (w.ndim - 1)) if per_channel else scale
    codes = np.clip(np.rint((w / view).astype(np.float32)), -q, q).astype(np.int8)
    return codes, scale


def _copy(g: Graph, graph: Graph, node) -> None:
    for t in node.weights.values():
        if t not in g.tensors:
            g.add_weight(t, graph.tensor(t).shape, graph.tensor(t).dtype)
            if t in graph.constants:
                g.constants[t] = graph.constants[t]
    g.add_node(node.op, node.name, node.inputs, dict(node.attrs), outputs=node.outputs, weights=dict(node.weights),
               dtype=graph.tensor(node.outputs[0]).dtype)


def _weight(g: Graph, name: str, value: np.ndarray) -> str:
    g.add_weight(name, value.shape, value.dtype.name)
    g.constants[name] = value
    return name


def _rewrite(g: Graph, graph: Graph, node, bits: int, dyn: Dynamic) -> None:
    n, x, out = node.name, node.inputs[0], node.outputs[0]
    if node.op == "Conv" and dyn is Dynamic.PER_TOKEN:
        raise WorkloadError(f"node {n!r} (Conv): per-token dynamic quantization applies to token rows "
                            "(Gemm / MatMul inputs); use per_tensor for convolutions")
    if node.weights["weight"] not in graph.constants:
        raise WorkloadError(f"node {n!r} ({node.op}): dynamic quantization needs the weight values")
    w = graph.constants[node.weights["weight"]]
    codes, w_scale = quantize_weight(w, bits, dyn is Dynamic.PER_TOKEN)
    per_token = dyn is Dynamic.PER_TOKEN
    xq, xs, xz = g.add_node("DynamicQuantizeLinear", f"{n}.quantize", [x], {"per_token": per_token},
                            outputs=[f"{n}.x_q", f"{n}.x_scale", f"{n}.x_zero_point"], dtype="uint8").outputs
    zero = _weight(g, f"{n}.weight_zero_point", np.zeros((), np.int8))
    if node.op == "Gemm":
        weights = {"weight": _weight(g, f"{n}.weight_q", np.ascontiguousarray(codes.T)), "weight_zero_point": zero}
        attrs = {"k": codes.shape[1], "n": codes.shape[0], "zero_point_shape": ()}
        acc = g.add_node("MatMulIntegerDynamic", f"{n}.matmul", [xq, xz], attrs, weights=weights, dtype="int32")
        scale_shape = w_scale.shape
    else:
        keep = {k: v for k, v in node.attrs.items() if k != "bias"}
        weights = {"weight": _weight(g, f"{n}.weight_q", codes), "weight_zero_point": zero}
        acc = g.add_node("ConvIntegerDynamic", f"{n}.conv", [xq, xz], {**keep, "zero_point_shape": ()},
                         weights=weights, dtype="int32")
        scale_shape = w_scale.shape + (1, 1) if w_scale.ndim else ()
    accf = g.add_node("Cast", f"{n}.cast", [acc.outputs[0]], {"to": "float32"}).outputs[0]
    scale = g.add_node("MulConst", f"{n}.scales", [xs], {"operand_shape": scale_shape},
                       weights={"operand": _weight(g, f"{n}.weight_scale", w_scale.reshape(scale_shape))}).outputs[0]
    bias = node.weights.get("bias")
    g.add_node("Mul", f"{n}.rescale" if bias else n, [accf, scale], outputs=None if bias else [out])
    if bias:
        b = np.asarray(graph.constants[bias], np.float32)
        b = b.reshape(b.shape + (1, 1)) if node.op == "Conv" else b
        g.add_node("AddConst", n, [f"{n}.rescale"], {"operand_shape": b.shape}, outputs=[out],
                   weights={"operand": _weight(g, f"{n}.bias_f", b)})


def dynamic_graph(graph: Graph, plan) -> Graph:
    """``graph`` with its dynamic-precision Gemm / Conv nodes rewritten (see the module doc)."""
    plan: PrecisionPlan = parse_plan(plan)
    g = Graph(graph.name)
    for t in graph.inputs:
        g.add_input(t, graph.tensor(t).shape, graph.tensor(t).dtype)
    for node in graph.nodes():
        prec = plan.for_node(node)
        if prec.dynamic is not None and node.op in DYNAMIC_OPS:
            _rewrite(g, graph, node, prec.weight.bits, prec.dynamic)
        elif prec.dynamic is None and not (prec.weight.is_float and prec.activation.is_float):
            raise WorkloadError(f"node {node.name!r} ({node.op}): precision {prec.name} is static while other "
                                "nodes are dynamic; a plan with dynamic activations keeps the other nodes float")
        else:
            _copy(g, graph, node)
    for t in graph.outputs:
        g.mark_output(t)
    return g.validate()
