"""HardSwish in the integer executor: LiteRT's fixed-point HARD_SWISH, or a float island.

Under the LiteRT policies (``Runtime.hardswish`` is ``Kernels.TFLITE_REFERENCE``) an 8-bit
HardSwish runs ``qsim.kernels.hardswish.hardswish_tflite``: the reference, optimized (x86) and
XNNPACK kernel sets answered alike on every int8 code of every parameter set measured
(tests/golden/test_tflite_hardswish.py). The float island it replaces (onnxruntime's fp32
x * HardSigmoid(x), quantized) was one code off on 0-4 of 256 codes per parameter set.
The output depends on the input code only, so the kernel is evaluated once per node on the
256 codes and the tensor is a table lookup.

Refused (``GraphError``, naming the node): parameters where LiteRT's HardSwishPrepare fails
(s_in / s_out of 128 and more), and types other than int8 / uint8 in and out alike (LiteRT's
HARD_SWISH rejects int16 at invoke: "Only float32, uint8 and int8 are supported"); there is no
runtime answer to reproduce. Elsewhere (onnxruntime, PyTorch engines) the node stays a float
island (``Fallback``): onnxruntime has no quantized HardSwish.
"""
from __future__ import annotations

import numpy as np

from qsim.kernels.hardswish import hardswish_tflite, hardswish_tflite_params
from qsim.numerics.policies import Kernels
from qsim.sim.int_common import Step, int_range, scalar_scale, scalar_zp, to_storage
from qsim.sim.int_ops import Fallback


def hardswish_table(step: Step) -> tuple[np.ndarray, int]:
    """(table of output codes for every input code, the first input code) of a LiteRT HardSwish
    node; ``Fallback`` where the policy runs it in float."""
    if step.rt.hardswish is not Kernels.TFLITE_REFERENCE:
        raise Fallback
    xq, yq = step.in_q(), step.out_q()
    if xq.fmt.name != yq.fmt.name or xq.fmt.name not in ("int8", "uint8"):
        raise step.fail(f"{xq.fmt.name} in, {yq.fmt.name} out: LiteRT's HARD_SWISH takes int8 or uint8 "
                        "(the same in and out; int16 fails at invoke), so there is no runtime answer to "
                        "reproduce")
    s_in, zp_in = scalar_scale(step, xq, "the input"), scalar_zp(step, xq, "the input")
    s_out, zp_out = scalar_scale(step, yq, "the output"), scalar_zp(step, yq, "the output")
    try:
        hardswish_tflite_params(s_in, s_out)
    except ValueError as exc:
        raise step.fail(f"input scale {float(s_in):.6g}, output scale {float(s_out):.6g}: {exc}; "
                        "there is no runtime answer to reproduce") from None
    lo, hi = int_range(yq)
    first = -128 if xq.fmt.name == "int8" else 0
    codes = np.arange(first, first + 256)
    return hardswish_tflite(codes, s_in, zp_in, s_out, zp_out, lo, hi), first


def hardswish(step: Step):
    table, first = hardswish_table(step)
    x = step.args[0]
    step.bounds[step.node.outputs[0]] = int_range(step.out_q())
    return [to_storage(table[x.astype(np.int64) - first], step.out_q())]
