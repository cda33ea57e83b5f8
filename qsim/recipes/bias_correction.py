"""Recipe ``bias_correction``: empirical bias correction of weight quantization error.

Reference: Markus Nagel, Mart van Baalen, Tijmen Blankevoort, Max Welling, "Data-Free Quantization
Through Weight Equalization and Bias Correction", ICCV 2019, section 4.2 (the empirical variant: the
expected output error is measured on calibration data instead of derived from BatchNorm statistics).

Quantizing a weight ``W`` to ``W~ = W + e`` shifts the expected output of a layer by ``E[e x]``
per output channel. For every Conv / Gemm with a bias, the recipe quantizes the weight exactly as
``quantize_graph`` will (same format, symmetric, per channel or per tensor), runs ``e`` on the
layer's float inputs over the calibration batches, and subtracts the mean of that output per channel
from the bias: ``b' = b - mean_{n,h,w}(conv(x, e))``. It returns a float graph (compose it with a
calibration recipe, or ``quantize_graph``, using the same weight format and ``per_channel``).
A layer without a bias is refused by name (the correction lives in the bias).
"""
from __future__ import annotations

import numpy as np

from qsim.errors import QsimError
from qsim.recipes._common import float_copy, traces, weight_of

METADATA = {"name": "bias_correction", "extra_scale_bytes": 0, "extra_inference_passes": 0,
            "calibration_passes": 1,  # one float pass over the calibration data; biases change in place
            "reference": "Nagel et al., Data-Free Quantization, ICCV 2019, sec. 4.2 (empirical)"}
LAYERS = ("Conv", "Gemm")


def weight_error(w: np.ndarray, fmt: str, per_channel: bool) -> np.ndarray:
    """``dequantize(quantize(w)) - w`` as quantize_graph quantizes weights."""
    from qsim.numerics.quantize import dequantize
    from qsim.sim.quantize_graph import _numeric, quantize_weight

    q, tq = quantize_weight(w, fmt, per_channel)
    return dequantize(_numeric(q), tq).astype(np.float32) - w


def output_shift(node, x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Mean per output channel of the layer's output for weight ``e`` (no bias) on inputs ``x``."""
    from qsim.sim.float_ops import run_float_kernel

    y = np.asarray(run_float_kernel(node.op, [x], {"weight": e}, node.attrs)[0], np.float64)
    axes = tuple(a for a in range(y.ndim) if a != 1)
    return y.mean(axis=axes)


def apply(graph, calib, weight: str = "int8", per_channel: bool = False, nodes=None):
    """A float copy of ``graph`` whose Conv / Gemm biases absorb the expected weight-quantization error."""
    g = float_copy(graph, "bias_correction")
    runs = traces(graph, calib, "bias_correction")
    chosen = [n for n in g.nodes() if n.op in LAYERS] if nodes is None else [g.node(n) for n in nodes]
    for node in chosen:
        if node.op not in LAYERS:
            raise QsimError(f"recipe bias_correction: node {node.name!r} is a {node.op}; it corrects Conv and Gemm")
        if "bias" not in node.weights:
            raise QsimError(f"recipe bias_correction: node {node.name!r} ({node.op}) has no bias to correct")
        w = weight_of(g, node, "weight", "bias_correction")
        e = weight_error(w, weight, per_channel)
        shift = np.mean([output_shift(node, r[node.inputs[0]], e) for r in runs], axis=0)
        b = node.weights["bias"]
        g.constants[b] = (np.asarray(g.constants[b], np.float64) - shift).astype(np.float32)
    return g
