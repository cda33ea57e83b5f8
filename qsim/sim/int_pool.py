"""Integer kernels of the pooling ops (MaxPool, AvgPool, GlobalAvgPool): each takes a ``Step`` and
returns the node's outputs in the output's storage type, as ``int_ops`` does for the matrix ops."""
from __future__ import annotations

import numpy as np

from qsim.ir.ops._attrs import pads as _pads, pair, window_out
from qsim.numerics.policies import Kernels
from qsim.numerics.rounding import x86_cvt_i32
from qsim.sim.int_common import (Fallback, Step, activation_range, int_range, same_params, scalar_scale,
                                 scalar_zp, to_storage)


def _window(step: Step):
    k = pair(step.attr("kernel"), "kernel")
    return k, pair(step.attr("stride", k), "stride"), _pads(step.attr("pad", 0))


def _clamped(step: Step, y: np.ndarray, yq) -> np.ndarray:
    lo, hi = activation_range(step, yq)
    step.bounds[step.node.outputs[0]] = (lo, hi)
    return to_storage(np.clip(y, lo, hi), yq)


def maxpool(step: Step):
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    if not same_params(xq, yq):
        raise Fallback
    k, s, p = _window(step)
    return [_clamped(step, step.kernels.maxpool2d(x, k, s, p, bool(step.attr("ceil_mode", False))), yq)]


def avgpool(step: Step):
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    k, s, p = _window(step)
    if step.rt.avgpool is Kernels.ONNXRUNTIME:
        return [_ort_avgpool(step, x, xq, yq, k, s, p)]
    if not same_params(xq, yq) or step.attr("ceil_mode", False):
        raise Fallback
    y = step.kernels.avgpool2d(x, k, s, p, bool(step.attr("count_include_pad", False)), step.rt.avgpool,
                               scalar_zp(step, xq, "the input"))
    return [_clamped(step, y, yq)]


def _ort_avgpool(step: Step, x, xq, yq, k, s, p):
    """contrib QLinearAveragePool (2-D): fp32 ``s_in * (x - zp)``, an fp32 sum over the window in
    row-major order (padding skipped), ``/ count``, then ``nearbyintf(y / s_out + zp_out)``: the
    zero point is added before rounding, unlike QuantizeLinear. The int32 cast of ``nearbyintf``
    (``cvttss2si``) gives INT32_MIN past the int32 range, so an overflowing average clamps to the
    output's minimum. A window covering the whole unpadded image runs MLAS's global average pool.

    ``ceil_mode``: the output size rounds up (no window starts in the end padding, ONNX); windows
    end at the input's edge (``hend = min(hstart + k, H)``), so cells past it count only under
    ``count_include_pad``, whose divisor is always the full kernel size."""
    f32 = np.float32
    top, left, bottom, right = p
    if tuple(k) == tuple(x.shape[2:]) and not any(p):
        return _ort_global_avgpool(step, x, xq, yq)
    ceil = bool(step.attr("ceil_mode", False))
    oh = window_out(x.shape[2], k[0], s[0], top, bottom, 1, ceil)
    ow = window_out(x.shape[3], k[1], s[1], left, right, 1, ceil)
    bottom = max(bottom, (oh - 1) * s[0] + k[0] - x.shape[2] - top)  # room for the ceil windows
    right = max(right, (ow - 1) * s[1] + k[1] - x.shape[3] - left)
    deq = (f32(scalar_scale(step, xq, "the input")) * (x.astype(np.int64) - scalar_zp(step, xq, "the input"))
           .astype(f32)).astype(f32)
    xp = np.pad(deq, ((0, 0), (0, 0), (top, bottom), (left, right)))
    ones = np.pad(np.ones(x.shape[2:], f32), ((top, bottom), (left, right)))
    total = np.zeros(x.shape[:2] + (oh, ow), f32)
    count = np.zeros((oh, ow), f32)
    for ky in range(k[0]):
        for kx in range(k[1]):
            rows = slice(ky, ky + s[0] * (oh - 1) + 1, s[0])
            cols = slice(kx, kx + s[1] * (ow - 1) + 1, s[1])
            total = (total + xp[:, :, rows, cols]).astype(f32)
            count += ones[rows, cols]
    if step.attr("count_include_pad", False):
        count[:] = k[0] * k[1]
    y = (total / count).astype(f32)
    lo, hi = int_range(yq)
    step.bounds[step.node.outputs[0]] = (lo, hi)
    r = (y / f32(scalar_scale(step, yq, "the output"))).astype(f32) + f32(scalar_zp(step, yq, "the output"))
    return to_storage(np.clip(x86_cvt_i32(r.astype(f32)), lo, hi), yq)


def global_avgpool(step: Step):
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    if step.rt.avgpool is not Kernels.ONNXRUNTIME:
        if not same_params(xq, yq):
            raise Fallback
        y = step.kernels.avgpool2d(x, x.shape[2:], (1, 1), (0, 0, 0, 0), False, step.rt.avgpool,
                                   scalar_zp(step, xq, "the input"))
        return [_clamped(step, y, yq)]
    return [_ort_global_avgpool(step, x, xq, yq)]


def _ort_global_avgpool(step: Step, x, xq, yq):
    """MLAS QLinearGlobalAveragePool: exact integer sum minus zp_in * HW, times the fp32 scale
    s_in / (s_out * HW), clamped to the output range less its zero point, rounded to even."""
    f32 = np.float32
    hw = int(np.prod(x.shape[2:]))
    scale = f32(scalar_scale(step, xq, "the input") / f32(scalar_scale(step, yq, "the output") * f32(hw)))
    zin, zout = scalar_zp(step, xq, "the input"), scalar_zp(step, yq, "the output")
    lo, hi = int_range(yq)
    acc = x.reshape(x.shape[:2] + (hw,)).astype(np.int64).sum(-1) - zin * hw
    r = np.clip((acc.astype(f32) * scale).astype(f32), f32(lo - zout), f32(hi - zout))
    y = np.rint(r).astype(np.int64) + zout
    step.bounds[step.node.outputs[0]] = (lo, hi)
    return to_storage(y.reshape(x.shape[:2] + (1,) * (x.ndim - 2)), yq)
