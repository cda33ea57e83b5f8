"""Conv: 2-D convolution, NCHW, with stride, padding, dilation and groups (depthwise when
groups == in_channels). Attributes: out_channels, kernel, stride=1, pad=0 (int, (h, w) or
(top, left, bottom, right)), dilation=1, groups=1, bias=True. Weight shape (Cout, Cin/groups, kh, kw).
As GEMMs: per group, (N*OH*OW) x (Cout/groups) outputs over a reduction of kh*kw*Cin/groups.
"""
from __future__ import annotations

from qsim.ir.ops._attrs import pads, pair, window_out
from qsim.ir.registry import CostClass, Inferred, MatrixView, QuantRule, numel, register


def _conv_macs(inputs, outputs, attrs) -> int:
    n, cin, _, _ = inputs[0]
    kh, kw = pair(attrs["kernel"], "kernel")
    groups = int(attrs.get("groups", 1))
    return numel(outputs[0]) * (cin // groups) * kh * kw


def _conv_vector_ops(inputs, outputs, attrs) -> int:
    return numel(outputs[0]) if attrs.get("bias", True) else 0  # bias add


def _conv_matrix(inputs, outputs, attrs) -> MatrixView:
    n, cout, oh, ow = outputs[0]
    kh, kw = pair(attrs["kernel"], "kernel")
    groups = int(attrs.get("groups", 1))
    k = kh * kw * inputs[0][1] // groups
    return MatrixView(1, n * oh * ow, cout, k, groups, input_elems=numel(inputs[0]) // groups)


def _conv_cost_class(inputs, attrs) -> CostClass:
    groups = int(attrs.get("groups", 1))
    return CostClass.DEPTHWISE if groups > 1 and groups == inputs[0][1] else CostClass.MATRIX


@register("Conv", cost_class=CostClass.MATRIX, node_cost_class=_conv_cost_class, matrix=_conv_matrix,
          float_kernel="float_ops.conv", int_kernel="int_ops.conv",
          quant=QuantRule(weights=("weight",), bias="bias"), bias_roles=("bias",), macs=_conv_macs,
          vector_ops=_conv_vector_ops,
          attrs=("out_channels", "kernel", "stride", "pad", "dilation", "groups", "bias"))
def infer_conv(inputs, attrs) -> Inferred:
    if len(inputs) != 1 or len(inputs[0]) != 4:
        raise ValueError("Conv takes one NCHW input")
    n, cin, h, w = inputs[0]
    cout = int(attrs["out_channels"])
    kh, kw = pair(attrs["kernel"], "kernel")
    sh, sw = pair(attrs.get("stride", 1), "stride")
    dh, dw = pair(attrs.get("dilation", 1), "dilation")
    top, left, bottom, right = pads(attrs.get("pad", 0))
    groups = int(attrs.get("groups", 1))
    if cout <= 0 or min(kh, kw, sh, sw, dh, dw, groups) <= 0:
        raise ValueError("out_channels, kernel, stride, dilation and groups must be positive")
    if cin % groups or cout % groups:
        raise ValueError(f"groups={groups} must divide in_channels={cin} and out_channels={cout}")
    oh = window_out(h, kh, sh, top, bottom, dh)
    ow = window_out(w, kw, sw, left, right, dw)
    weights = {"weight": (cout, cin // groups, kh, kw)}
    if attrs.get("bias", True):
        weights["bias"] = (cout,)
    return Inferred(outputs=((n, cout, oh, ow),), weights=weights)
