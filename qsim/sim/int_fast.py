"""A compiled fast path for the fp32 requantization policies (onnxruntime, xnnpack, qnnpack):
``clamp(rne(fp32(acc) * m[c]) + zp)`` (``rounding_jit.requant_f32``) straight into the output's
storage type.

``qsim.numerics`` keeps the general per-element kernel (every policy kind, one branchy call per
element); this one covers the float32 kind only, vectorizes, and writes uint8/int8 directly. It is
the same formula as ``requant_ref.float32_ref`` (tests compare the two paths bit for bit through the
executor's numba and numpy runs).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.numerics import get_policy
from qsim.numerics.policies import RequantKind
from qsim.numerics.multipliers import float32_multiplier
from qsim.kernels import ort_binary_jit
from qsim.kernels._common import serial_below
from qsim.numerics.rounding_jit import requant_f32


@njit(cache=True)
def _rows(acc, mult, zp, lo, hi, out):
    """acc (R, L) int64; mult (R,) fp32 per row; out (R, L) of the storage type."""
    r, n = acc.shape
    for i in range(r):
        m = mult[i]
        for j in range(n):
            out[i, j] = requant_f32(np.float32(acc[i, j]), m, zp, lo, hi)


@njit(cache=True)
def _cols(acc, mult, zp, lo, hi, out):
    """acc (R, C) int64; mult (C,) fp32 per column."""
    r, n = acc.shape
    for i in range(r):
        for j in range(n):
            out[i, j] = requant_f32(np.float32(acc[i, j]), mult[j], zp, lo, hi)


def fused_spec(step, channels: int, policy, s_in, s_w, yq, b_float) -> tuple:
    """(requant_jit.requant_spec, lo, hi) of a node's output: its policy's requantization with the
    output's range narrowed by a fused activation."""
    from qsim.numerics.requant_jit import requant_spec
    from qsim.sim.int_common import activation_range, scalar_scale, scalar_zp

    lo, hi = activation_range(step, yq)
    spec = requant_spec(policy, s_in, s_w, scalar_scale(step, yq, "the output"), scalar_zp(step, yq, "the output"),
                        lo, hi, channels, b_float)
    return spec, lo, hi


def fused(step, kernel: str, args: tuple, policy, s_in, s_w, yq, b_float):
    """The node's output from ``qsim.kernels.jit.<kernel>`` (``conv2d_requant`` / ``matmul_requant``:
    the accumulation with the policy's requantization in its epilogue, ``requant_jit.requant_spec``),
    or None where that kernel does not apply. Fills the step's counters as the unfused path does."""
    from qsim.sim.int_common import storage

    channels = args[1].shape[0] if kernel == "conv2d_requant" else args[1].shape[-1]  # conv: w (M, ...)
    spec, lo, hi = fused_spec(step, channels, policy, s_in, s_w, yq, b_float)
    res = getattr(step.kernels, kernel)(*args, acc_bits=step.acc_bits, requant=(spec, storage(yq)))
    if res is None:
        return None
    y, events = res
    step.overflow_events += int(events)
    step.bounds[step.node.outputs[0]] = (lo, hi)
    return y


def applies(policy: str, bias) -> bool:
    return bias is None and get_policy(policy).kind is RequantKind.FLOAT32


def requantize_f32(policy: str, acc: np.ndarray, s_in, s_w, s_out, zp: int, lo: int, hi: int, axis: int,
                   dtype) -> np.ndarray:
    """The float32-kind policy's requantization of ``acc`` (channels on ``axis``) in ``dtype``."""
    m = float32_multiplier(s_in, s_w, s_out)  # the float32 kind's multiplier (Policy.params "fmult")
    acc = np.ascontiguousarray(acc, dtype=np.int64)
    out = np.empty(acc.shape, dtype=dtype)
    ax = axis % acc.ndim
    if m.size == 1 or ax == 0 and acc.ndim == 1:
        _rows(acc.reshape(1, -1), np.full(1, m[0], np.float32), zp, lo, hi, out.reshape(1, -1))
    elif ax == acc.ndim - 1:
        _cols(acc.reshape(-1, acc.shape[-1]), m, zp, lo, hi, out.reshape(-1, acc.shape[-1]))
    else:  # channels in the middle (NCHW): one multiplier per (outer, channel) row
        outer, c = int(np.prod(acc.shape[:ax])), acc.shape[ax]
        rows = np.tile(m, outer)
        _rows(acc.reshape(outer * c, -1), rows, zp, lo, hi, out.reshape(outer * c, -1))
    return out


def _memory_order(a, b, shape):
    """The axis order in which a and b (same shape and strides, not C-contiguous) are both
    C-contiguous, or None. Elementwise results do not depend on the order elements are visited."""
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.shape != shape or b.shape != shape:
        return None
    if a.strides != b.strides or a.flags.c_contiguous or a.dtype != b.dtype:
        return None
    order = tuple(int(i) for i in np.argsort(a.strides, kind="stable")[::-1])
    return order if np.transpose(a, order).flags.c_contiguous and np.transpose(b, order).flags.c_contiguous else None


def ort_binary(op: str, a, b, params, lo: int, hi: int, dtype) -> np.ndarray:
    """onnxruntime's QLinearAdd / QLinearMul (see ``int_elementwise``), broadcast like the runtime."""
    from qsim.sim.int_elementwise import ort_add_params, ort_mul_ratio, ort_scalar_a

    sa, za, sb, zb, sc, zc = params
    if op == "add" and ort_scalar_a(np.shape(a), np.shape(b)):
        a, sa, za, b, sb, zb = b, sb, zb, a, sa, za
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    order = _memory_order(a, b, shape)
    if order is not None:  # same shape and strides (channels-last conv outputs): run in memory order
        a, b = np.transpose(a, order), np.transpose(b, order)
        out = ort_binary(op, a.reshape(-1), b.reshape(-1), (sa, za, sb, zb, sc, zc), lo, hi, dtype)
        return out.reshape(a.shape).transpose(np.argsort(order))
    a, b = (np.ascontiguousarray(np.broadcast_to(v, shape)).reshape(-1) for v in (a, b))
    out = np.empty(a.size, dtype=dtype)
    with serial_below(a.size, 1 << 20):  # about 0.5 ms of work on one thread
        if op == "add":
            ra, rb, fixed = ort_add_params(sa, za, sb, zb, sc, zc)
            ort_binary_jit.ort_add(a, b, ra, rb, fixed, lo, hi, ort_binary_jit.add_bounded(ra, rb, fixed, a.dtype), out)
        else:
            ort_binary_jit.ort_mul(a, b, int(za), int(zb), ort_mul_ratio(sa, sb, sc), np.float32(zc), lo, hi, out)
    return out.reshape(shape)
