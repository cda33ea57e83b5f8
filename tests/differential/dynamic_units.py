"""Dynamic quantization units: DynamicQuantizeLinear alone (with planted ties, all-zero, all-negative
and constant tensors), and the chain ``quantize_dynamic`` writes for a MatMul (DynamicQuantizeLinear
-> MatMulInteger -> Cast -> Mul by x_scale * w_scale -> Add bias)."""
from __future__ import annotations

import numpy as np

from .gen import Gen
from .onnx_build import OnnxModel


def _values(g: Gen, shape) -> np.ndarray:
    mode = g.pick(["normal", "normal", "ties", "zeros", "negative", "constant", "tiny"])
    if mode == "ties":  # lo = -63/16, hi = 12: scale 1/16 exactly, zero point 63; values (k + 0.5) / 16
        k = g.rng.integers(-63, 192, shape)
        x = ((k + 0.5) / 16).clip(-63 / 16, 12.0).astype(np.float32)
        ends = np.array([-63 / 16, 12.0], np.float32)[:x.size]  # a one-element tensor takes the first only
        x.reshape(-1)[:ends.size] = ends
        return x
    if mode == "zeros":
        return np.zeros(shape, np.float32)
    if mode == "negative":
        return (-np.abs(g.rng.standard_normal(shape)) - 0.01).astype(np.float32)
    if mode == "constant":
        return np.full(shape, np.float32(g.pick([-2.5, 0.75, 300.0])), np.float32)
    scale = 1e-30 if mode == "tiny" else g.pick([1e-3, 1.0, 1e3])
    return (g.rng.standard_normal(shape) * scale).astype(np.float32)


def dynamic_quantize_linear(g: Gen) -> OnnxModel:
    m = OnnxModel("dynamic_quantize_linear")
    shape = tuple(g.int(1, 9) for _ in range(g.int(1, 4)))
    m.feed("x", _values(g, shape))
    m.node("DynamicQuantizeLinear", ["x"], ["y", "y_scale", "y_zero_point"])
    m.output("y", "uint8")
    m.output("y_scale", "float32")
    m.output("y_zero_point", "uint8")
    return m


def dynamic_matmul(g: Gen) -> OnnxModel:
    m = OnnxModel("dynamic_matmul")
    rows, k, n = g.int(1, 9), g.pick([1, 7, 16, 65, 130]), g.channels(33)
    wt = g.pick(["int8", "uint8"])
    m.feed("x", _values(g, (g.int(1, 3), rows, k)))
    lo, hi = (-127, 127) if wt == "int8" else (0, 255)
    m.const("w", g.rng.integers(lo, hi + 1, (k, n)).astype(wt))
    m.const("w_zero", np.array(0 if wt == "int8" else g.int(100, 150), wt))
    m.const("w_scale", np.float32(g.scale(1e-3, 1.0)))
    m.const("bias", g.rng.standard_normal(n).astype(np.float32))
    m.node("DynamicQuantizeLinear", ["x"], ["xq", "xs", "xz"])
    m.node("Mul", ["xs", "w_scale"], ["scales"])
    m.node("MatMulInteger", ["xq", "w", "xz", "w_zero"], ["acc"])
    m.node("Cast", ["acc"], ["accf"], to=1)
    m.node("Mul", ["accf", "scales"], ["yf"])
    m.node("Add", ["yf", "bias"], ["y"])
    m.output("y", "float32")
    return m


DYNAMIC_UNITS = {"DynamicQuantizeLinear": dynamic_quantize_linear, "DynamicMatMul": dynamic_matmul}
