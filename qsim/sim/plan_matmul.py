"""Planned Gemm (``plan``): the VNNI core (or its AVX2 variant) with the requantization fused, everything but the input
values resolved when the node is planned.

A Gemm ``y = x @ W.T`` with x (M, K) and W (N, K) is a 1x1 convolution of one M x 1 image of K
channels by N filters: x's rows, read in place, are that image's channels-last pixels, and the
convolution's channels-last output (1, M, N) is y itself. So the planned conv of ``vnni_ops``
(``plan_conv`` / ``run_planned``) runs it: the weights packed once (the same packing as
``vnni_ops._pack_mm``: one tap, K padded to whole quads, N to whole 64-column panels), the
epilogue terms (w0, const, the float32 fast path) derived once, and at each run one fused kernel
(``vnni_fused.conv_rows_q``) that requantizes each panel while its sums are in L1. The per-node path
(``jit.matmul_requant`` -> ``vnni_ops.matmul``) re-derived all of that at every call, wrote an int32
buffer and read it back in a second parallel region: a 1280 -> 1000 classifier at M = 1 took
0.25-0.31 ms in MobileNetV2 against onnxruntime's 0.09-0.12 ms (benchmarks/bench_depthwise_layers.py).

Same arithmetic, same bits: the exact sum C - W0 * SA - A0 * SW + K * A0 * W0 + bias (``vnni_ops``'
module doc) wrapped and requantized by the same block functions (tests/sim/test_plan.py).
"""
from __future__ import annotations

import numpy as np

from qsim.kernels import conv_input, jit, vnni_ops
from qsim.kernels._common import acc_range, bias_vector, conv_geometry, zero_point
from qsim.sim import int_ops
from qsim.sim.int_common import Fallback, Step, storage
from qsim.sim.int_fast import fused_spec
from qsim.sim.plan import Bound


def plan_gemm(step: Step) -> Bound | None:
    """Gemm of a 2-D 8-bit input by 8-bit weights whose requantization fuses; None otherwise (the
    per-node path)."""
    x, yq = step.args[0], step.out_q()
    try:
        c = int_ops.gemm_setup(step)
    except Fallback:
        return None
    if not c.fusable or x.ndim != 2 or c.w.ndim != 2:
        return None
    _, x_zp, w_zp, b_int = c.rest
    n, k = c.w.shape
    xz = int(zero_point("a_zp", x_zp, None)[0])
    if x.shape[1] != k or x.shape[0] < 1 or not vnni_ops.planned_usable(x.dtype, c.w.dtype, k, xz):
        return None
    wz = zero_point("b_zp", w_zp, n)
    b = bias_vector(b_int, n)
    spec, qlo, qhi = fused_spec(step, n, step.rt.fc, c.s_in, c.wq.scale, yq, c.b_float)
    dtype = storage(yq)
    # A read-only copy of the weights as (N, K, 1, 1) filters: packed once (``vnni_ops.cached``) for
    # as long as the plan holds them.
    w4 = np.array(c.w).reshape(n, k, 1, 1)
    w4.setflags(write=False)
    m = x.shape[0]
    g = conv_geometry(_image(x), w4, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    lo, hi = acc_range(step.acc_bits)
    bound = jit.sum_bound(k, jit.value_span(x.dtype, np.array([xz])), jit.value_span(w4.dtype, wz), b)
    requant = (spec, dtype)
    # MLAS's AVX2 sums (``plan_conv._vnni``); one tap: its byte pairs are always MLAS's (K odd: the
    # last element pairs with a zero weight, as MLAS's padding).
    pairs16 = step.rt.u8s8_pairs16
    plan = vnni_ops.plan_conv(w4, x.dtype, xz, wz, b, g, step.acc_bits, lo, hi, bound > hi, requant, pairs16)
    if plan is None:
        return None
    outs = [np.empty((1, m, n), dtype=dtype)]
    scratch = conv_input.input_buffers(plan, _image(x))

    def run(args, fresh):
        y = np.empty_like(outs[0]) if fresh else outs[0]
        _, count = vnni_ops.run_planned(plan, _image(args[0]), requant, y, scratch)
        return [y.reshape(m, n)], count

    # Serial below the VNNI convs' threshold: MobileNetV2's 1280 -> 1000 at M = 1 took 0.080 ms on one
    # thread and 0.092 ms split by panels over two (benchmarks/bench_depthwise_layers.py, 2 threads, under
    # the CPU lock, load ~2).
    return Bound(run, [(qlo, qhi)], outs, scratch, serial=m * n * k < vnni_ops.SERIAL_MACS)


def _image(x: np.ndarray) -> np.ndarray:
    """x (M, K) as the NCHW view (1, K, M, 1) of the channels-last image (1, M, 1, K) its rows are."""
    return x.reshape(1, x.shape[0], 1, x.shape[1]).transpose(0, 3, 1, 2)
