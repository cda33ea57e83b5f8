"""Planned convolutions (``plan``): the fused kernels of ``qsim.kernels.jit.conv2d_requant`` with
everything but the input values resolved when the node is planned.

* ``vnni``: the VNNI core with its requantization fused (``vnni_ops.plan_conv`` / ``run_planned``):
  packed weights (shared with the per-node path's cache), tap offsets, epilogue terms and each output
  pixel's input offset are planned once; each run pads the input channels-last and runs ``vnni_fused.conv_rows_q``;
* ``depthwise``: the channels-last depthwise kernel (``depthwise.depthwise_tiled``, its tiles planned), including
  LiteRT's optimized DEPTHWISE_CONV_2D, whose last C % 8 channels round by another policy
  (``int_ops.optimized_depthwise``): those channels run a second time on their own.

The arithmetic is the kernels' own: the outputs equal the per-node path's (tests/sim/test_plan.py).
"""
from __future__ import annotations

import numpy as np

from qsim.kernels import conv_input, jit, vnni_ops
from qsim.kernels._common import INT_DTYPES, acc_range, bias_vector, conv_geometry, zero_point
from qsim.sim import int_ops
from qsim.sim.int_common import Step, storage
from qsim.sim.int_fast import fused_spec
from qsim.sim.plan import Bound

# Below this many MACs a planned depthwise conv runs on one thread (VNNI convs: vnni_ops.SERIAL_MACS).
# With the OpenMP workers spinning briefly between regions (qsim.kernels: ~2 us per region), splitting
# even MobileNetV2's smallest depthwise layers pays (benchmarks/bench_depthwise_layers.py, 2 cores:
# the whole model 4.2 ms against 5.5 ms with jit.SERIAL_MACS' 2^22).
SERIAL_MACS = 1 << 16


def plan_conv(step: Step) -> Bound | None:
    c = int_ops.conv_setup(step)
    yq = step.out_q()
    if not int_ops.fusable_requant(step, yq, c.s_in, c.wq.scale, c.b_float):
        return None
    x, w = step.args[0], c.w
    _, x_zp, w_zp, b_int, stride, pads, dilation, groups = c.rest
    if x.dtype.type not in INT_DTYPES or w.dtype.type not in INT_DTYPES:
        return None
    g = conv_geometry(x, w, stride, pads, dilation, groups)
    xz = int(zero_point("x_zp", x_zp, None)[0])
    wz = zero_point("w_zp", w_zp, g.m)
    b = bias_vector(b_int, g.m)
    if g.cg == 1 and g.mg == 1:
        return _depthwise(step, c, g, xz, wz, b, yq)
    if not c.fusable or g.mg < vnni_ops.MIN_COLS or not vnni_ops.planned_usable(x.dtype, w.dtype, g.cg * g.kh * g.kw,
                                                                                   xz):
        return None
    spec, lo, hi = fused_spec(step, g.m, c.policy, c.s_in, c.wq.scale, yq, c.b_float)
    return _vnni(step, w, g, xz, wz, b, spec, storage(yq), (lo, hi))


def _bound(k: int, x, w, xz: int, wz, b) -> int:
    """The largest exact sum (``jit.sum_bound``): past the accumulator's range, outputs are tested."""
    return jit.sum_bound(k, jit.value_span(x.dtype, np.array([xz])), jit.value_span(w.dtype, wz), b)


def _vnni(step: Step, w, g, xz: int, wz, b, spec, dtype, out_range) -> Bound | None:
    """The VNNI core (or its AVX2 variant) with the requantization in its epilogue, planned by the
    kernel itself (``vnni_ops.plan_conv``: packed weights, tap offsets, epilogue terms, the pixel
    offsets). The runtime's ``u8s8_pairs16`` (MLAS on x86 without VNNI: uint8 x int8 byte pairs
    summed with int16 saturation) is the kernel's pairs16; None where the host's core does not
    compute the sums the runtime asks for (the node then runs the per-node path)."""
    x = step.args[0]
    lo, hi = acc_range(step.acc_bits)
    checked = _bound(g.cg * g.kh * g.kw, x, w, xz, wz, b) > hi
    requant = (spec, dtype)
    pairs16 = step.rt.u8s8_pairs16
    plan = vnni_ops.plan_conv(w, x.dtype, xz, wz, b, g, step.acc_bits, lo, hi, checked, requant, pairs16)
    if plan is None:
        return None
    macs = g.n * g.m * g.oh * g.ow * g.cg * g.kh * g.kw
    outs = [np.empty((g.n, g.oh * g.ow, g.m), dtype=dtype)]
    scratch = conv_input.input_buffers(plan, x)

    def run(args, fresh):
        y, count = vnni_ops.run_planned(plan, args[0], requant, None if fresh else outs[0], scratch)
        return [y], count

    return Bound(run, [out_range], outs, scratch, serial=macs < vnni_ops.SERIAL_MACS)


def _depthwise(step: Step, c, g, xz: int, wz, b, yq) -> Bound:
    """One filter per channel (multiplier 1), channels-last, requantized in the kernel."""
    from qsim.kernels import depthwise as dw_kernel  # here: a model without depthwise convs does not import it

    x, w = step.args[0], c.w
    bits = step.acc_bits
    lo, hi = acc_range(bits)
    bound = _bound(g.kh * g.kw, x, w, xz, wz, b)
    checked = bound > hi
    dt = np.int32 if bound <= jit.I32_LIMIT else np.int64  # as jit._depthwise_plan: 16 lanes where sums fit
    ws, b = jit.depthwise_weights(w, wz, dt), b.astype(dt)
    dtype = storage(yq)
    tail_policy = step.rt.depthwise_tail if c.depthwise else None
    spec, qlo, qhi = fused_spec(step, g.m, c.policy, c.s_in, c.wq.scale, yq, c.b_float)
    tail = g.m - g.m % 8 if tail_policy is not None else g.m
    if tail < g.m:  # LiteRT's optimized depthwise: the last C % 8 channels round by the reference policy
        s_w = np.asarray(c.wq.scale, np.float32).reshape(-1)
        tail_spec = fused_spec(step, g.m - tail, tail_policy, c.s_in, s_w if s_w.size == 1 else s_w[tail:], yq,
                               c.b_float)[0]
        ws_t, b_t = np.ascontiguousarray(ws[:, :, tail:]), np.ascontiguousarray(b[tail:])
        tiles_t = dw_kernel.tiles(ws_t, b_t, xz, x.dtype, tail_spec)
    tiles = dw_kernel.tiles(ws, b, xz, x.dtype, spec)   # the kernel's tiled weights and terms, planned once
    scratch = [np.empty((g.n, g.oh, g.ow, g.m - tail), dtype=dtype)]  # the tail channels' outputs
    outs = [np.empty((g.n, g.oh, g.ow, g.m), dtype=dtype)]
    (sh, sw), (dh, dwid) = g.stride, g.dilation
    pt, pl = g.pads[0], g.pads[1]
    macs = g.n * g.m * g.oh * g.ow * g.kh * g.kw

    xbuf = []  # the channels-last copy of a channels-first input, reused from run to run

    def run(args, fresh):
        xh = args[0].transpose(0, 2, 3, 1)  # no copy for a channels-last input
        if not xh.flags.c_contiguous and args[0].flags.c_contiguous:
            if not xbuf or xbuf[0].shape != xh.shape or xbuf[0].dtype != xh.dtype:
                xbuf[:] = [np.empty(xh.shape, dtype=xh.dtype)]
            dw_kernel.to_nhwc(args[0], xbuf[0])
            xh = xbuf[0]
        elif not xh.flags.c_contiguous:
            xh = np.ascontiguousarray(xh)
        y = np.empty_like(outs[0]) if fresh else outs[0]
        count = dw_kernel.depthwise_tiled(xh, xz, ws, b, tiles, sh, sw, dh, dwid, pt, pl, bits, lo, hi, checked, spec, y)
        if tail < g.m:
            dw_kernel.depthwise_tiled(np.ascontiguousarray(xh[..., tail:]), xz, ws_t, b_t, tiles_t, sh, sw, dh, dwid,
                                      pt, pl, bits, lo, hi, checked, tail_spec, scratch[0])
            y[..., tail:] = scratch[0]
        return [y.transpose(0, 3, 1, 2)], int(count)

    return Bound(run, [(qlo, qhi)], outs, scratch if tail < g.m else [], serial=macs < SERIAL_MACS)
