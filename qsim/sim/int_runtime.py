"""Which integer arithmetic each op gets under a requantization policy.

A policy names a runtime (DESIGN.md, "Numerics"); a runtime does not use one rounding for every op.
The golden tests (tests/golden/test_policy_litert.py, test_policy_elementwise.py) measured which
kernel each LiteRT kernel set runs per op, e.g. the optimized (builtin) kernels round
DEPTHWISE_CONV_2D like the reference kernels, and FULLY_CONNECTED in the reference kernels uses the
float64 multiplier. ``Runtime`` records those choices for one policy name:

* ``conv`` / ``depthwise`` / ``fc`` / ``matmul``: the requantization policy of each matrix op;
* ``add`` / ``mul``: the elementwise integer kernel family (``ort``, ``tflite-reference``,
  ``tflite-optimized``, ``xnnpack``, or ``float`` = dequantize, float op, quantize);
* ``softmax`` / ``lut``: the table implementation (``ort``, ``tflite``) or ``float``;
* ``avgpool``: the rounding of sum / count (``qsim.kernels.reference.ROUNDINGS``) or ``ort``;
* ``quantize``: the ``qsim.numerics.quantize`` variant used for float inputs and float islands.

Rows marked "unverified" follow the runtime's documented kernel but have no golden test here.
"""
from __future__ import annotations

from dataclasses import dataclass

from qsim.errors import WorkloadError
from qsim.numerics import POLICIES


@dataclass(frozen=True)
class Runtime:
    policy: str
    conv: str
    depthwise: str
    fc: str
    matmul: str
    add: str
    mul: str
    softmax: str
    lut: str
    avgpool: str
    quantize: str


def _tflite(policy: str, conv: str, dw: str, fc: str, add: str, quantize: str) -> Runtime:
    return Runtime(policy, conv, dw, fc, conv, add, "tflite", "tflite", "tflite", "half_away", quantize)


RUNTIMES: dict[str, Runtime] = {
    # onnxruntime MLAS: QLinearConv/QGemm/QLinearMatMul fp32 requantization, QLinearAdd (AVX2 fp32
    # FMA kernel), QLinearSoftmax, QLinearAveragePool and QLinearGlobalAveragePool. QLinearSigmoid
    # (a table of MLAS's logistic) and QLinearConcat run as float islands: they matched on every
    # code tested. QLinearMul: MLAS SSE2 kernel (int_elementwise.ort_mul).
    "onnxruntime": Runtime("onnxruntime", "onnxruntime", "onnxruntime", "onnxruntime", "onnxruntime",
                           "ort", "ort", "ort", "float", "ort", "onnx"),
    # LiteRT reference kernels (BUILTIN_REF).
    "tflite-reference": _tflite("tflite-reference", "tflite-reference", "tflite-reference",
                                "litert-fc-reference", "tflite-reference", "tflite"),
    # LiteRT optimized builtin kernels, no delegate: depthwise rounds like the NEON kernels on
    # channels in full groups of 8 and like the reference on the rest (int_ops._optimized_depthwise).
    "tflite-optimized": _tflite("tflite-optimized", "tflite-optimized", "tflite-optimized-depthwise",
                                "tflite-optimized", "tflite-optimized", "xnnpack"),
    # LiteRT with the XNNPACK delegate; SOFTMAX and the LUT activations stay on the builtin kernels.
    "xnnpack": Runtime("xnnpack", "xnnpack", "xnnpack", "xnnpack", "xnnpack", "xnnpack", "xnnpack",
                       "tflite", "tflite", "half_away", "xnnpack"),
    # Unverified rows: matrix ops per the policy, the rest as the TFLite reference kernels.
    "tflite-single-rounding": _tflite("tflite-single-rounding", "tflite-single-rounding",
                                      "tflite-single-rounding", "tflite-single-rounding",
                                      "tflite-reference", "tflite"),
    "cmsis-nn": _tflite("cmsis-nn", "cmsis-nn", "cmsis-nn", "cmsis-nn", "tflite-reference", "tflite"),
    "litert-fc-reference": _tflite("litert-fc-reference", "tflite-reference", "tflite-reference",
                                   "litert-fc-reference", "tflite-reference", "tflite"),
    # PyTorch engines: matrix ops per the policy, everything else as a float island (unverified).
    "fbgemm": Runtime("fbgemm", "fbgemm", "fbgemm", "fbgemm", "fbgemm", "float", "float", "float",
                      "float", "half_even", "fbgemm"),
    "qnnpack": Runtime("qnnpack", "qnnpack", "qnnpack", "qnnpack", "qnnpack", "float", "float", "float",
                       "float", "half_even", "fbgemm"),
}


def get_runtime(policy: str) -> Runtime:
    if policy not in RUNTIMES:
        known = ", ".join(RUNTIMES)
        if policy in POLICIES:
            raise WorkloadError(f"policy {policy!r} has no integer executor mapping; known: {known}")
        raise WorkloadError(f"unknown requantization policy {policy!r}; known: {known}")
    return RUNTIMES[policy]
