"""Pooling, NCHW. MaxPool / AvgPool: kernel, stride (default kernel), pad=0, ceil_mode=False,
count_include_pad=False (AvgPool). GlobalAvgPool keeps the spatial axes as 1x1 (ONNX semantics).
"""
from __future__ import annotations

from qsim.ir.ops._attrs import pads, pair, window_out
from qsim.ir.registry import CostClass, Inferred, QuantRule, numel, register


def _window_ops(inputs, outputs, attrs) -> int:
    kh, kw = pair(attrs["kernel"], "kernel")
    return numel(outputs[0]) * kh * kw


def _pool(inputs, attrs) -> Inferred:
    if len(inputs) != 1 or len(inputs[0]) != 4:
        raise ValueError("pooling takes one NCHW input")
    n, c, h, w = inputs[0]
    kh, kw = pair(attrs["kernel"], "kernel")
    sh, sw = pair(attrs.get("stride", (kh, kw)), "stride")
    top, left, bottom, right = pads(attrs.get("pad", 0))
    ceil_mode = bool(attrs.get("ceil_mode", False))
    oh = window_out(h, kh, sh, top, bottom, 1, ceil_mode)
    ow = window_out(w, kw, sw, left, right, 1, ceil_mode)
    return Inferred(outputs=((n, c, oh, ow),))


_POOL_ATTRS = ("kernel", "stride", "pad", "ceil_mode", "count_include_pad")
# MaxPool selects values: its output keeps the input's quantization parameters when quantized.
register("MaxPool", cost_class=CostClass.REDUCTION, float_kernel="float_ops.maxpool", int_kernel="int_ops.maxpool",
         quant=QuantRule(shares_input_params=True), vector_ops=_window_ops, attrs=_POOL_ATTRS)(_pool)
register("AvgPool", cost_class=CostClass.REDUCTION, float_kernel="float_ops.avgpool", int_kernel="int_ops.avgpool",
         vector_ops=_window_ops, attrs=_POOL_ATTRS)(_pool)


@register("GlobalAvgPool", cost_class=CostClass.REDUCTION, float_kernel="float_mlas.global_avgpool",
          int_kernel="int_ops.global_avgpool", vector_ops=lambda i, o, a: numel(i[0]), attrs=())
def infer_global_avg_pool(inputs, attrs) -> Inferred:
    if len(inputs) != 1 or len(inputs[0]) < 3:
        raise ValueError("GlobalAvgPool takes one N,C,spatial... input")
    return Inferred(outputs=(tuple(inputs[0][:2]) + (1,) * (len(inputs[0]) - 2),))
