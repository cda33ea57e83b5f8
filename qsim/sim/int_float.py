"""Float islands and fp8 / MX value emulation.

A **float island** runs one node in float: integer inputs are dequantized (``(q - zp) * scale`` in
fp32, DequantizeLinear), the float reference kernel runs, and each output is stored in its tensor's
format: quantized with the runtime's quantize formula (integer), rounded to the format's grid
(fp8, MX), or left fp32. This is what onnxruntime executes for a QDQ node it does not fuse (DQ ->
float op -> Q), so it is the runtime's semantics there; for the float kernel itself qsim's numpy
kernel stands in for the runtime's, which may differ in the last float bit before quantization
(under the onnxruntime policy Sigmoid and Tanh run MLAS's own forms: ``_ort_float_kernel``).

**fp8 / MX tensors have no integer pipeline.** Their values are held as fp32 real values rounded
to the format's grid at every quantized tensor (``round_float`` for fp8 with the tensor's scale;
``mx_cast`` for MX blocks along the last axis), and arithmetic runs in fp32. This is value
emulation: it reproduces the representable values, not the accumulation order or rounding of any
runtime's fp8 GEMM, so it is not bit-exact with any runtime.
"""
from __future__ import annotations

import numpy as np

from qsim.errors import GraphError
from qsim.numerics.tensor_quant import TensorQuant
from qsim.numerics import FloatFormat, MXFormat, Rounding, mx_cast, round_float
from qsim.numerics.policies import PolicyName
from qsim.numerics.quantize import broadcast_param
from qsim.sim.float_ops import run_float_kernel
from qsim.sim.int_common import Step, dequantize_as, int_range, quantize_as


def kind_of(q: TensorQuant | None) -> str:
    """'int' (integer pipeline), 'float' (no quantization), 'emulated' (fp8 / MX formats)."""
    if q is None:
        return "float"
    if q.int_fmt is not None:
        return "int"
    if isinstance(q.fmt, (FloatFormat, MXFormat)):
        return "emulated"
    raise GraphError(f"element type {q.fmt.name!r} is supported by neither the integer pipeline nor "
                     "the fp8/MX emulation")


def emulate(x: np.ndarray, q: TensorQuant) -> np.ndarray:
    """Real values rounded to the tensor's fp8 grid (with its scale) or MX blocks; fp32 out."""
    fmt = q.fmt
    x = np.asarray(x, np.float32)
    if isinstance(fmt, MXFormat):
        return np.asarray(mx_cast(x, fmt, axis=-1), np.float32)
    scale = broadcast_param(q.scale, q, x.shape).astype(np.float64)
    y = round_float(x.astype(np.float64) / scale, fmt, Rounding.HALF_EVEN, saturate=True)
    return (y * scale).astype(np.float32)


def to_real(step: Step, tensor: str, value: np.ndarray) -> np.ndarray:
    q = step.graph.quant_params.get(tensor)
    if kind_of(q) == "int" and np.issubdtype(np.asarray(value).dtype, np.integer):
        return dequantize_as(value, q)
    return np.asarray(value, np.float32) if np.asarray(value).dtype != np.float64 else value


def store(step: Step, tensor: str, value: np.ndarray) -> np.ndarray:
    """A float result stored in its tensor's format (see the module doc)."""
    q = step.graph.quant_params.get(tensor)
    kind = kind_of(q)
    if kind == "int":
        step.bounds[tensor] = int_range(q)
        return quantize_as(step, value, q)
    if kind == "emulated":
        return emulate(value, q)
    return np.asarray(value, np.float32)


def _weights(step: Step) -> dict[str, np.ndarray]:
    out = {}
    for role, t in step.node.weights.items():
        w = step.weight(role)
        q = step.graph.quant_params.get(t)
        kind = kind_of(q)
        if kind != "float" and q.fmt.name == "int32" and not np.issubdtype(w.dtype, np.integer):
            out[role] = w.astype(np.float32)  # a float bias next to quantized weights
        elif kind != "float":  # stored codes (integers, int4 or fp8 as ml_dtypes): (q - zp) * scale
            out[role] = dequantize_as(np.asarray(w).astype(np.float32) if kind == "emulated" else
                                      np.asarray(w).astype(np.int64), q)
        elif np.issubdtype(np.asarray(w).dtype, np.integer):
            raise step.fail(f"weight {t!r} holds integers but has no quantization parameters "
                            "(scale, zero point)")
        else:
            out[role] = w.astype(np.float32)
    return out


def _ort_float_kernel(step: Step):
    """The kernel onnxruntime runs for the node's float op where qsim's numpy kernel is not it bit for
    bit (None elsewhere): on x86-64 its float Sigmoid and Tanh are MLAS's rational approximations
    (numpy's differed on 57 % and 63 % of the fp32 results, MLAS's form on none)."""
    from qsim.sim.int_runtime import ort_cpu

    if step.node.op not in ("Sigmoid", "Tanh") or step.rt.policy is not PolicyName.ONNXRUNTIME or ort_cpu() == "arm64":
        return None
    from qsim.sim.float_mlas import tanh_f32
    from qsim.sim.int_elementwise import mlas_logistic

    return mlas_logistic if step.node.op == "Sigmoid" else tanh_f32


def float_island(step: Step, ort_unit: bool = False) -> list[np.ndarray]:
    """``ort_unit``: a QDQ unit onnxruntime leaves in float (``run_integer``'s float_nodes, onnxruntime
    policy only): a Gemm there sums in MLAS's SGEMM order (``float_ops.gemm``), a MatMul of two
    activations too (``float_mlas.matmul``), a Conv in MlasConv's (``float_ops.conv``)."""
    node = step.node
    args = [to_real(step, t, v) for t, v in zip(node.inputs, step.args)]
    w = _weights(step)
    flag = {"Gemm": "ort_sgemm", "MatMul": "ort_sgemm", "Conv": "ort_sconv"}.get(node.op) if ort_unit else None
    attrs = {**node.attrs, flag: True} if flag else node.attrs
    ort_kernel = _ort_float_kernel(step)
    try:
        outs = [ort_kernel(args[0])] if ort_kernel else run_float_kernel(node.op, args, w, attrs)
    except (ValueError, IndexError, GraphError) as exc:
        raise step.fail(str(exc)) from None
    return [store(step, t, np.asarray(y, np.float32)) for t, y in zip(node.outputs, outs)]
