"""Small hand-built quantized Graphs for the integer-executor tests (overflow, errors)."""
from __future__ import annotations

import numpy as np

from qsim.ir.graph import Graph
from qsim.numerics.tensor_quant import TensorQuant


def tq(scale, zp, dtype, axis=None) -> TensorQuant:
    return TensorQuant(np.asarray(scale, np.float32), np.asarray(zp, np.int64), dtype, axis)


def int8_gemm(x_shape=(4, 64), out_features: int = 3, w_value: int = 127) -> Graph:
    """x (int8) -> Gemm (int8 weights, no bias) -> int8: with x and w at 127 the exact accumulator
    is 127 * 127 * K, far beyond a 16-bit register for K = 64."""
    g = Graph("int8_gemm")
    g.add_input("x", x_shape, "int8")
    g.add_node("Gemm", "fc", ["x"], {"out_features": out_features, "bias": False}, dtype="int8")
    g.mark_output("fc")
    g.constants["fc.weight"] = np.full((out_features, x_shape[-1]), w_value, np.int8)
    g.quant_params["x"] = tq(0.02, 0, "int8")
    g.quant_params["fc.weight"] = tq(0.01, 0, "int8")
    g.quant_params["fc"] = tq(64.0, 0, "int8")
    return g.validate()


def int8_attention() -> Graph:
    """A quantized Attention node: an op the integer executor has no kernel for."""
    g = Graph("attn")
    g.add_input("x", (1, 4, 8), "int8")
    g.add_node("Attention", "attn", ["x"], {"heads": 2}, dtype="int8")
    g.mark_output("attn")
    for role in ("wq", "wk", "wv", "wo"):
        g.constants[f"attn.{role}"] = np.ones((8, 8), np.int8)
        g.quant_params[f"attn.{role}"] = tq(0.01, 0, "int8")
    g.quant_params["x"] = tq(0.1, 0, "int8")
    g.quant_params["attn"] = tq(0.1, 0, "int8")
    return g.validate()
