"""Count the planted ties of a simulated run: matrix-op outputs whose scaled accumulator lies exactly
halfway between two integers (where the runtimes' roundings differ), recomputed from the trace."""
from __future__ import annotations

import numpy as np

from qsim.ir.ops._attrs import pads, pair
from qsim.kernels import reference as K
from qsim.numerics import get_policy
from qsim.numerics.multipliers import float64_multiplier


def _acc(g, node, trace):
    x = trace[node.inputs[0]]
    xq = g.quant_params[node.inputs[0]]
    if node.op == "MatMul":
        bq = g.quant_params[node.inputs[1]]
        acc, _ = K.matmul_acc(x, trace[node.inputs[1]], int(xq.zero_point.reshape(-1)[0]), bq.zero_point.reshape(-1))
        return acc, xq.scale, bq.scale, 1
    w = g.constants[node.weights["weight"]]
    wq = g.quant_params[node.weights["weight"]]
    b = g.constants[node.weights["bias"]].astype(np.int64) if "bias" in node.weights else None
    if node.op == "Gemm":
        acc, _ = K.matmul_acc(x, w.T, int(xq.zero_point.reshape(-1)[0]), wq.zero_point.reshape(-1), b)
        return acc, xq.scale, wq.scale, -1
    a = node.attrs
    acc, _ = K.conv2d_acc(x, w, int(xq.zero_point.reshape(-1)[0]), wq.zero_point.reshape(-1), b,
                          pair(a.get("stride", 1), "s"), pads(a.get("pad", 0)), pair(a.get("dilation", 1), "d"),
                          int(a.get("groups", 1)))
    return acc, xq.scale, wq.scale, 1


def count_ties(g, trace, policy: str, stats) -> int:
    """Ties over the integer-mode Conv/Gemm/MatMul nodes (onnxruntime: fp32 product with the fp32
    multiplier; the others: the exact float64 multiplier)."""
    integer = set(stats[stats["mode"] == "integer"]["node"])
    ties = 0
    for node in g.nodes():
        if node.op not in ("Conv", "Gemm", "MatMul") or node.name not in integer:
            continue
        acc, s_in, s_w, axis = _acc(g, node, trace)
        s_out = g.quant_params[node.outputs[0]].scale
        if policy in ("onnxruntime", "xnnpack"):
            m = get_policy(policy).params(s_in, s_w, s_out)["fmult"].astype(np.float32)
        else:
            m = float64_multiplier(s_in, np.atleast_1d(s_w), s_out)
        shape = [1] * acc.ndim
        shape[axis] = -1
        m = m.reshape(shape) if m.size > 1 else m.reshape(())
        v = (acc.astype(np.float32) * m).astype(np.float64) if m.dtype == np.float32 else acc * m
        ties += int(np.count_nonzero(np.abs(v - np.floor(v)) == 0.5))
    return ties
