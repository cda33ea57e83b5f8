"""The input copies of a planned conv (``vnni_ops.plan_conv``): what its kernel reads, laid out once
per run: the input channels-last, padded (spatially with the zero point, channels to whole quads)
and flipped to unsigned where the kernel needs it, or its receptive fields as rows
(``avx2_cols.im2col``), into buffers the executor reuses from run to run."""
from __future__ import annotations

import numpy as np

from qsim.kernels import avx2_cols, vnni
from qsim.kernels._common import serial_below

# Copies of fewer bytes run on one thread (``serial_below``): a row copy of 400 KB took 20 us.
SERIAL_COPY = 1 << 21


def input_buffers(plan, x) -> list[np.ndarray]:
    """The arrays ``planned_input`` writes for an input laid out as x: the padded copy, and the
    receptive-field rows where the plan reads rows. Reused from run to run, they cost no page
    faults: a fresh array's made ResNet-18's stem rows 5x slower to copy (58 against 11 ms at batch 32)."""
    g = plan.g
    cg = g.cg if plan.cols else plan.cgp
    bufs = [] if unpadded(x, g, cg, plan.flip) else [np.empty(padded_shape(g, cg), dtype=np.uint8)]
    if plan.cols:
        bufs.append(np.empty((g.n, g.groups, g.oh * g.ow, plan.cgp), dtype=np.uint8))
    return bufs


def planned_input(plan, x, bufs=None) -> np.ndarray:
    """What the kernel reads: (N, G, Hp, Wp, cgp) padded channels-last images (``padded_nhwc``),
    or (N, G, OH * OW, Kp) receptive-field rows (``_plan_cols``); written into ``bufs``
    (``input_buffers``) where given."""
    g = plan.g
    bufs = list(bufs) if bufs is not None else []
    if not plan.cols:
        return padded_nhwc(x, g, plan.cgp, plan.a0, plan.flip, bufs[0] if bufs else None)
    rows = bufs.pop() if bufs else np.empty((g.n, g.groups, g.oh * g.ow, plan.cgp), dtype=np.uint8)
    xp = padded_nhwc(x, g, g.cg, plan.a0, plan.flip, bufs[0] if bufs else None)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    with serial_below(rows.size, SERIAL_COPY // 8):     # a stem's rows: 1.9 MB, 2 threads pay
        avx2_cols.im2col(xp.reshape(g.n * g.groups, xp.shape[2], -1), g.cg, g.kh, g.kw, sh, sw, dh, dw, g.oh,
                         g.ow, rows.reshape(g.n * g.groups, g.oh * g.ow, plan.cgp))
    return rows


def unpadded(x, g, cgp: int, flip: int) -> bool:
    """Whether ``padded_nhwc`` reads x as it is: an NCHW view of channels-last data (a fused
    conv's output) with nothing to pad or flip."""
    return g.groups == 1 and flip == 0 and cgp == g.cg and not any(g.pads) \
        and x.transpose(0, 2, 3, 1).flags.c_contiguous


def padded_shape(g, cgp: int) -> tuple:
    """``padded_nhwc``'s array shape."""
    pt, pl, pb, pr = g.pads
    return g.n, g.groups, g.h + pt + pb, g.w + pl + pr, cgp


def padded_nhwc(x, g, cgp: int, a0: int, flip: int, buf=None) -> np.ndarray:
    """(N, G, Hp, Wp, cgp) uint8: x ^ flip channels-last per group, a0 in the spatial padding and 0
    in the channel padding, written into ``buf`` (that shape) or a new array. An x that is an NCHW
    view of channels-last data is copied row by row, or used as it is (``unpadded``)."""
    pt, pl = g.pads[0], g.pads[1]
    xh = x.transpose(0, 2, 3, 1)
    if unpadded(x, g, cgp, flip):
        return xh.view(np.uint8).reshape(g.n, 1, g.h, g.w, cgp)
    xp = np.empty(padded_shape(g, cgp), dtype=np.uint8) if buf is None else buf
    if g.groups == 1 and xh.flags.c_contiguous:
        with serial_below(xp.size, SERIAL_COPY):
            vnni.pad_nhwc(xh.view(np.uint8), pt, pl, a0, flip, xp.reshape(xp.shape[0], *xp.shape[2:]))
        return xp
    with serial_below(xp.size, SERIAL_COPY):
        vnni.to_nhwc(np.ascontiguousarray(x).view(np.uint8), g.groups, cgp, pt, pl, a0, flip, xp)
    return xp
