"""Planned convolutions (``plan``): the fused kernels of ``qsim.kernels.jit.conv2d_requant`` with
everything but the input values resolved when the node is planned.

* ``vnni``: the VNNI core (``vnni_ops.conv`` with a requantization): packed weights (shared with
  the per-node path's cache), tap offsets, zero-point and bias constants per group, the padded
  channels-last input buffer, the int32 tile buffer and the output; each run copies the input
  into the padded buffer (or reads a channels-last input in place), then ``conv_rows``,
  ``window_sums`` where the weights' zero point needs them, and ``epilogue_q`` per image and group;
* ``depthwise``: the channels-last depthwise kernel (``depthwise.depthwise_nhwc``), including
  LiteRT's optimized DEPTHWISE_CONV_2D, whose last C % 8 channels round by another policy
  (``int_ops._optimized_depthwise``): those channels run a second time on their own.

The arithmetic is the kernels' own: the outputs equal the per-node path's (tests/sim/test_plan.py).
"""
from __future__ import annotations

import numba
import numpy as np

from qsim.kernels import depthwise as dw_kernel, jit, vnni, vnni_epilogue, vnni_ops
from qsim.kernels._common import INT_DTYPES, acc_range, bias_vector, conv_geometry, zero_point
from qsim.sim import int_ops
from qsim.sim.int_common import Step, storage
from qsim.sim.int_fast import fused_spec
from qsim.sim.plan import Bound


def plan_conv(step: Step) -> Bound | None:
    c = int_ops.conv_setup(step)
    yq = step.out_q()
    if not int_ops._fusable(step, yq, c.s_in, c.wq.scale, c.b_float):
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
    if not c.fusable or g.mg < vnni_ops.MIN_COLS or not vnni_ops.usable(x.dtype, w.dtype, g.cg * g.kh * g.kw, xz):
        return None
    spec, lo, hi = fused_spec(step, g.m, c.policy, c.s_in, c.wq.scale, yq, c.b_float)
    return _vnni(step, w, g, xz, wz, b, spec, storage(yq), (lo, hi))


def _checked(g, k: int, x, w, xz: int, wz, b, hi: int) -> bool:
    """Whether an exact sum can leave the accumulator (``jit._bound`` > hi): outputs are tested."""
    return jit._bound(k, jit._span(x.dtype, np.array([xz])), jit._span(w.dtype, wz), b) > hi


def _vnni(step: Step, w, g, xz: int, wz, b, spec, dtype, out_range) -> Bound:
    x = step.args[0]
    bits = step.acc_bits
    lo, hi = acc_range(bits)
    k = g.cg * g.kh * g.kw
    checked = _checked(g, k, x, w, xz, wz, b, hi)
    flip = 0x80 if x.dtype == np.int8 else 0
    a0 = xz + flip
    cgp = -(-g.cg // 4) * 4
    pt, pl, pb, pr = g.pads
    (sh, sw), (dh, dwid) = g.stride, g.dilation
    hp, wp = g.h + pt + pb, g.w + pl + pr
    packs = vnni_ops._cached(w, ("conv", g.groups), lambda: vnni_ops._pack_conv(w, g.groups, cgp))
    w0 = wz - (128 if w.dtype == np.uint8 else 0)
    taps = np.array([(ky * dh * wp + kx * dwid) * cgp for ky in range(g.kh) for kx in range(g.kw)], dtype=np.int64)
    need_sa = bool(np.any(w0 != 0))
    groups = [(packs[gi][0], slice(gi * g.mg, (gi + 1) * g.mg), b[gi * g.mg:(gi + 1) * g.mg]
               - a0 * packs[gi][1] + k * a0 * w0[gi * g.mg:(gi + 1) * g.mg]) for gi in range(g.groups)]
    w0s = [np.ascontiguousarray(w0[ms]) for _, ms, _ in groups]
    channels_last = g.groups == 1 and x.transpose(0, 2, 3, 1).flags.c_contiguous
    in_place = channels_last and flip == 0 and cgp == g.cg and not any(g.pads)
    outs = [np.empty((g.n, g.oh * g.ow, g.m), dtype=dtype)]
    # scratch: the int32 tile sums, then the padded channels-last input (unless read in place)
    scratch = [np.empty((g.oh * g.ow, packs[0][0].shape[0] * vnni.NR), dtype=np.int32)]
    if not in_place:
        scratch.append(np.empty((g.n, g.groups, hp, wp, cgp), dtype=np.uint8))
    zeros = np.zeros(g.oh * g.ow, dtype=np.int64)
    macs = g.n * g.m * g.oh * g.ow * k
    threads = numba.get_num_threads()
    copy_alone = not in_place and macs >= jit.SERIAL_MACS and scratch[1].size < vnni_ops.SERIAL_COPY and threads > 1

    def run(args, fresh):
        x, cbuf = args[0], scratch[0]
        if in_place:
            src = x.transpose(0, 2, 3, 1).view(np.uint8).reshape(g.n, 1, g.h, g.w, cgp)
        else:
            src = xp = scratch[1]
            if copy_alone:  # a small copy in a conv that runs on two threads: one thread (as vnni_ops.conv)
                numba.set_num_threads(1)
            if channels_last:
                vnni.pad_nhwc(x.transpose(0, 2, 3, 1).view(np.uint8), pt, pl, a0, flip, xp.reshape(g.n, hp, wp, cgp))
            else:
                vnni.to_nhwc(np.ascontiguousarray(x).view(np.uint8), g.groups, cgp, pt, pl, a0, flip, xp)
            if copy_alone:
                numba.set_num_threads(threads)
        y = np.empty_like(outs[0]) if fresh else outs[0]
        count = 0
        for n in range(g.n):
            for gi, (packed, ms, const) in enumerate(groups):
                img = src[n, gi]
                vnni.conv_rows(img, packed, taps, cgp // 4, sh, sw, g.oh, g.ow, cbuf)
                sa = vnni.window_sums(img, g.kh, g.kw, sh, sw, dh, dwid, g.oh, g.ow) if need_sa else zeros
                count += vnni_epilogue.epilogue_q(cbuf, sa, w0s[gi], const, bits, lo, hi, checked, False,
                                                  ms.start, spec, y[n][:, ms])
        return [y.reshape(g.n, g.oh, g.ow, g.m).transpose(0, 3, 1, 2)], count

    return Bound(run, [out_range], outs, scratch, serial=macs < jit.SERIAL_MACS)


def _depthwise(step: Step, c, g, xz: int, wz, b, yq) -> Bound:
    """One filter per channel (multiplier 1), channels-last, requantized in the kernel."""
    x, w = step.args[0], c.w
    bits = step.acc_bits
    lo, hi = acc_range(bits)
    checked = _checked(g, g.kh * g.kw, x, w, xz, wz, b, hi)
    ws = np.ascontiguousarray((w[:, 0].astype(np.int64) - wz[:, None, None]).transpose(1, 2, 0))
    dtype = storage(yq)
    tail_policy = step.rt.depthwise_tail if c.depthwise else None
    spec, qlo, qhi = fused_spec(step, g.m, c.policy, c.s_in, c.wq.scale, yq, c.b_float)
    tail = g.m - g.m % 8 if tail_policy is not None else g.m
    if tail < g.m:  # LiteRT's optimized depthwise: the last C % 8 channels round by the reference policy
        s_w = np.asarray(c.wq.scale, np.float32).reshape(-1)
        tail_spec = fused_spec(step, g.m - tail, tail_policy, c.s_in, s_w if s_w.size == 1 else s_w[tail:], yq,
                               c.b_float)[0]
        ws_t, b_t = np.ascontiguousarray(ws[:, :, tail:]), np.ascontiguousarray(b[tail:])
    scratch = [np.empty((g.n, g.oh, g.ow, g.m - tail), dtype=dtype)]  # the tail channels' outputs
    outs = [np.empty((g.n, g.oh, g.ow, g.m), dtype=dtype)]
    (sh, sw), (dh, dwid) = g.stride, g.dilation
    pt, pl = g.pads[0], g.pads[1]
    macs = g.n * g.m * g.oh * g.ow * g.kh * g.kw

    def run(args, fresh):
        xh = np.ascontiguousarray(args[0].transpose(0, 2, 3, 1))  # no copy for a channels-last input
        y = np.empty_like(outs[0]) if fresh else outs[0]
        count = dw_kernel.depthwise_nhwc(xh, xz, ws, b, sh, sw, dh, dwid, pt, pl, bits, lo, hi, checked, spec, y)
        if tail < g.m:
            dw_kernel.depthwise_nhwc(np.ascontiguousarray(xh[..., tail:]), xz, ws_t, b_t, sh, sw, dh, dwid, pt, pl,
                                     bits, lo, hi, checked, tail_spec, scratch[0])
            y[..., tail:] = scratch[0]
        return [y.transpose(0, 3, 1, 2)], int(count)

    return Bound(run, [(qlo, qhi)], outs, scratch if tail < g.m else [], serial=macs < jit.SERIAL_MACS)
