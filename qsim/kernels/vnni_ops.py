"""Host side of the VNNI path: operand sign shifts, zero-point algebra, packed-weight cache.

vpdpbusd multiplies unsigned by signed bytes, so int8 activations become uint8 by +128 (a' = x + da)
and uint8 weights become int8 by -128 (w' = w - dw). With A0 = x_zp + da and W0 = w_zp - dw,

    sum_k (x - x_zp)(w - w_zp) = sum_k (a' - A0)(w' - W0)
                               = C - W0 * SA - A0 * SW + K * A0 * W0

where C = sum a'w' (the int32 VNNI sum, exact for K <= vnni.MAX_K), SA = sum a' over the receptive
field (spatial padding holds a' = A0, channel padding 0), SW = sum w'. The epilogue forms this
exactly in int64, adds the bias, counts outputs outside the accumulator range and wraps them.
Only wrap mode comes here: the result is order-independent, so the kernel's order is free.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from qsim.kernels import avx2, avx2_requant, vnni, vnni_epilogue, vnni_fused
from qsim.kernels.conv_input import padded_nhwc, planned_input
from qsim.numerics.requant_jit import KIND_FLOAT32

_I32_MAX = 2**31 - 1

# Below this many MACs a planned VNNI conv runs on one thread (``plan_conv._vnni``'s ``serial``).
# Inside a whole network, with OpenMP's passive wait (no spin), a parallel region cost
# ~100 us more than its work on this 2-core machine (per-layer times in ResNet-18/50 and MobileNetV2
# at batch 1, every conv on 2 threads vs every conv on 1: 12.8 M MACs 169 vs 119 us, 4.8 M 130 vs
# 40-65 us, 51 M 225-340 vs 255-440 us, 116 M 380-430 vs 545-630 us): the break-even is ~2^25. With
# the short spin qsim.kernels now sets, 2^16 was no faster (MobileNetV2 b1 6.6 against 6.2 ms, idle).
# The AVX2 core does ~5x fewer MACs per second (Zen 3: ~190 GOPS a core in the tiles), so a conv's
# work outweighs a parallel region's cost ~16x sooner: MobileNetV2's 1x1 convs (5-20 M MACs) ran on
# one thread at 2^25 (a 16 -> 96 channel 112x112 layer: 786 us alone, 1373 in the network).
# MobileNetV2 b1 against onnxruntime (2 threads, load ~1.5): 2^25 2.09x / 2.14x, 2^21 1.69x / 1.77x,
# 2^19 1.69x / 1.90x; ResNet-18 unchanged.
SERIAL_MACS = 1 << 25 if vnni_fused.CORE == "vnni" else 1 << 21
# A panel is 64 output columns; below this many per group the padding waste beats the portable path.
MIN_COLS = 16
_PACKED: dict = {}


def usable(x_dtype, w_dtype, k: int, x_zp: int, core: bool | None = None) -> bool:
    """Whether the core takes 8-bit x, w, a reduction of k and this x_zp. core: whether a core
    runs on the host; by default the VNNI one (``conv`` / ``matmul``); ``planned_usable``: the
    fused kernel's, VNNI or AVX2."""
    eight = (np.dtype(np.int8), np.dtype(np.uint8))
    core = vnni.HAS_VNNI if core is None else core
    # The tile's loops run at least once, so an empty reduction (k == 0) goes the portable way.
    if not core or x_dtype not in eight or w_dtype not in eight or not 1 <= k <= vnni.MAX_K:
        return False
    info = np.iinfo(x_dtype)
    return info.min <= x_zp <= info.max


def planned_usable(x_dtype, w_dtype, k: int, x_zp: int) -> bool:
    """``usable`` for ``plan_conv`` / ``run_planned`` (planned convs and Gemms), whose kernel
    (``vnni_fused``) runs the VNNI core or the AVX2 one; on AVX2, ``plan_conv`` may still decline."""
    return usable(x_dtype, w_dtype, k, x_zp, vnni.HAS_VNNI or avx2.HAS_AVX2)


def _pairs_exact(packed: np.ndarray) -> bool:
    """Whether no byte pair (e0, e1), (e2, e3) of the packed weights (P, T, Q, NR, 4), channel and
    column padding included, can leave int16 in vpmaddubsw for any unsigned operand (0..255):
    255 * (max(w0, 0) + max(w1, 0)) <= 32767 and 255 * (min(w0, 0) + min(w1, 0)) >= -32768."""
    w = packed.reshape(-1, 2).astype(np.int32)
    pos = np.maximum(w, 0).sum(axis=1)
    neg = np.minimum(w, 0).sum(axis=1)
    return bool(255 * int(pos.max(initial=0)) <= 32767 and 255 * int(neg.min(initial=0)) >= -32768)


def _pairs_aligned(cg: int, ntaps: int) -> bool:
    """Whether the packed byte pairs are MLAS's pairs (2j, 2j+1) of the reduction index in (ky, kx,
    c) order: each tap's cg channels are padded to whole quads, so tap t starts at index t * cg of
    the reduction but at a quad in the packing; both are even where cg is even (or one tap). With
    odd cg MLAS pairs a tap's last channel with the next tap's first: not computed here."""
    return cg % 2 == 0 or ntaps == 1


def _frozen_root(arr: np.ndarray):
    """The array that owns arr's memory when neither it nor any view up to it can be written
    (so a packing of arr may be reused); None otherwise."""
    a = arr
    while isinstance(a.base, np.ndarray):
        if a.flags.writeable:
            return None
        a = a.base
    if a.flags.writeable or not (a.base is None or isinstance(a.base, bytes)):
        return None
    return a


def cached(arr: np.ndarray, key: tuple, build):
    """Packed weights are reused for read-only arrays. The key is the owning array's identity plus
    the view's geometry, so a fresh view (w.T per call) of the same frozen weights still hits; the
    entry is dropped when the owner dies, before its id can be reused."""
    root = _frozen_root(arr)
    if root is None:
        return build()
    offset = arr.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    k = (id(root), offset, arr.shape, arr.strides, arr.dtype.str) + key
    hit = _PACKED.get(k)
    if hit is not None and hit[0]() is root:
        return hit[1]
    val = build()
    _PACKED[k] = (weakref.ref(root, lambda _r, k=k: _PACKED.pop(k, None)), val)
    return val


def _signed(w: np.ndarray) -> tuple[np.ndarray, int]:
    """(w', dw): int8 weights unchanged; uint8 shifted by -128 (the xor of the top bit)."""
    if w.dtype == np.uint8:
        return (w ^ np.uint8(0x80)).view(np.int8), 128
    return w, 0


def _pack_conv(w: np.ndarray, groups: int, cgp: int, chunk: int = vnni.NR):
    """Per group: (``vnni.pack_weights``' (P, T, Q, NR, 4) layout of the group's signed filters, their
    sums); ``chunk=avx2.CHUNK``: the AVX2 tiles' int8 layout (``avx2.chunked(p, False)``). One gather
    of int32 quads from the filters channels-last (M, T, cgp), zero-padded to whole panels and quads:
    pack_weights' byte transposes and the chunking's copy took ResNet-18's weights 67 ms to pack in
    a fresh process, this ~21 ms."""
    ws, _ = _signed(np.ascontiguousarray(w))
    m, cg, kh, kw = ws.shape
    mg, ntaps, nr, quads = m // groups, kh * kw, vnni.NR, cgp // 4
    npanel = -(-mg // nr)
    padded = npanel * nr != mg or cgp != cg
    src = (np.zeros if padded else np.empty)((groups, npanel * nr, ntaps, cgp), dtype=np.int8)
    src[:, :mg, :, :cg] = ws.reshape(groups, mg, cg, ntaps).transpose(0, 1, 3, 2)
    packed = np.empty((groups, npanel, nr // chunk, ntaps, quads, chunk), dtype=np.int32)
    quad = src.view(np.int32).reshape(groups, npanel, nr // chunk, chunk, ntaps, quads)
    packed[...] = quad.transpose(0, 1, 2, 4, 5, 3)
    packed = packed.view(np.int8).reshape(groups, npanel, ntaps, quads, nr, 4)
    sw = ws.reshape(groups, mg, -1).sum(axis=2, dtype=np.int64)
    return [(packed[g], sw[g]) for g in range(groups)]


def conv(x, w, xz: int, wz: np.ndarray, bias: np.ndarray, g, acc_bits: int, lo: int, hi: int,
         checked: bool = True, requant=None):
    """Wrap-mode conv2d_acc on the VNNI core (see module doc); g is a ConvGeometry. checked=False:
    the caller proved that no exact sum leaves [lo, hi], so outputs are stored untested.
    ``requant=(spec, dtype)``: the output is requantized in the epilogue (``vnni_fused``,
    ``requant_jit.requant_spec``) and returned in dtype instead of int64 accumulators."""
    plan = plan_conv(w, x.dtype, xz, wz, bias, g, acc_bits, lo, hi, checked, requant)
    if requant is not None:
        return run_planned(plan, x, requant)
    xp = padded_nhwc(x, g, plan.cgp, plan.a0, plan.flip)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    out = np.empty((g.n, g.m, g.oh * g.ow), dtype=np.int64)
    cbuf = np.empty((g.oh * g.ow, plan.packs[0][0].shape[0] * vnni.NR), dtype=np.int32)
    count = 0
    for n in range(g.n):
        for gi, (w0g, const, _) in enumerate(plan.group_terms):
            img = xp[n, gi]
            sa = (vnni.window_sums(img, g.kh, g.kw, sh, sw, dh, dw, g.oh, g.ow) if plan.need_sa
                  else plan.zeros[:g.oh * g.ow])
            vnni.conv_rows(img, plan.packs[gi][0], plan.taps, plan.cgp // 4, sh, sw, g.oh, g.ow, cbuf)
            count += vnni_epilogue.epilogue(cbuf, sa, w0g, const, acc_bits, lo, hi, checked, True,
                                            out[n, gi * g.mg:(gi + 1) * g.mg])
    return out.reshape(g.n, g.m, g.oh, g.ow), int(count)


@dataclass(frozen=True)
class ConvPlan:
    """What a VNNI convolution derives from its weights, zero points, bias and shapes, built once
    per node (``jit.conv2d_requant`` caches it with the packed weights) and run on each input."""
    g: object
    acc_bits: int
    lo: int
    hi: int
    checked: bool
    flip: int
    a0: int
    cgp: int
    packs: list
    taps: np.ndarray
    need_sa: bool
    zeros: np.ndarray
    group_terms: list     # per group: (w0, const, fast) for the epilogue
    offs: np.ndarray      # conv_rows_q's input byte offset of each output pixel (``pixel_offsets``)
    run: int              # conv_rows_q's pixels per work item
    cols: bool = False    # the input read as receptive-field rows of cgp bytes (``_plan_cols``)
    batch: tuple | None = None  # (offs, run) of the batch's pixels as one run space (``batch_pixels``)


def plan_conv(w, x_dtype, xz: int, wz: np.ndarray, bias: np.ndarray, g, acc_bits: int, lo: int, hi: int,
              checked: bool, requant=None, pairs16: bool = False) -> ConvPlan | None:
    """The plan of ``run_planned``. pairs16: the sums of uint8 x by int8 w are MLAS's AVX2 ones, each
    byte pair's sum saturated to int16 (``avx2``; pairs MLAS forms across taps, ``_pairs_aligned``:
    from receptive-field rows, ``_plan_cols``), the exact ones otherwise (on the AVX2 core: its int8
    tiles where no packed pair can saturate, ``_pairs_exact``, else its int16 ones). None where the
    host's core (``vnni_fused.CORE``) does not compute the sums asked for: pairs16 on the VNNI core."""
    pairs16 = pairs16 and np.dtype(x_dtype) == np.uint8 and w.dtype == np.int8
    flip = 0x80 if x_dtype == np.int8 else 0
    a0 = xz + flip
    cgp = -(-g.cg // 4) * 4
    dh, dw = g.dilation
    wp = g.w + g.pads[1] + g.pads[3]
    if pairs16 and vnni_fused.CORE != "avx2":
        return None
    if pairs16 and not _pairs_aligned(g.cg, g.kh * g.kw):
        return _plan_cols(w, x_dtype, xz, wz, bias, g, acc_bits, lo, hi, checked, requant)
    def vnni_packs():
        return cached(w, ("conv", g.groups), lambda: _pack_conv(w, g.groups, cgp))

    if vnni_fused.CORE == "avx2":
        # exact sums asked for of pairs that can saturate: the exact int16 tiles
        wide = not pairs16 and not cached(w, ("conv-exact", g.groups),
                                          lambda: all(_pairs_exact(p) for p, _ in vnni_packs()))
        # int8 tiles: packed in their layout at once (MLAS's pairs: the VNNI packing is not needed)
        packs = cached(w, ("conv-avx2", g.groups, wide),
                       lambda: [(avx2.chunked(p, True), sw) for p, sw in vnni_packs()] if wide
                       else _pack_conv(w, g.groups, cgp, avx2.CHUNK))
    else:
        packs = vnni_packs()
    w0 = wz - (128 if w.dtype == np.uint8 else 0)
    k = g.cg * g.kh * g.kw
    taps = np.array([(ky * dh * wp + kx * dw) * cgp for ky in range(g.kh) for kx in range(g.kw)], dtype=np.int64)
    terms = []
    for gi in range(g.groups):
        ms = slice(gi * g.mg, (gi + 1) * g.mg)
        w0g = np.ascontiguousarray(w0[ms])
        const = bias[ms] - a0 * packs[gi][1] + k * a0 * w0g
        fast = None if requant is None else _fast_epilogue(requant[0], checked, hi, w0g, const, gi * g.mg)
        terms.append((w0g, const, fast))
    npix = g.oh * g.ow
    offs = pixel_offsets(g, cgp)
    hp, wp = g.h + g.pads[0] + g.pads[2], g.w + g.pads[1] + g.pads[3]
    return ConvPlan(g, acc_bits, lo, hi, checked, flip, a0, cgp, packs, taps, bool(np.any(w0 != 0)),
                    np.zeros(g.n * npix, dtype=np.int64), terms, offs, run_length(npix),
                    batch=batch_pixels(g.n, offs, hp * wp * cgp))


def _plan_cols(w, x_dtype, xz, wz, bias, g, acc_bits, lo, hi, checked, requant) -> ConvPlan:
    """``plan_conv`` over receptive fields copied out as rows (``avx2_cols``): the filters become
    (M, K, 1, 1) in (ky, kx, c) order, one tap of K channels (padded to whole quads), each output
    pixel's row Kp bytes after the last; the exact-sum algebra is unchanged (K, the weight sums)."""
    k = g.cg * g.kh * g.kw
    kp = -(-k // 4) * 4
    packs = cached(w, ("cols", g.groups),
                   lambda: _pack_conv(w.transpose(0, 2, 3, 1).reshape(g.m, k, 1, 1), g.groups, kp, avx2.CHUNK))
    w0 = wz - (128 if w.dtype == np.uint8 else 0)
    terms = []
    for gi in range(g.groups):
        ms = slice(gi * g.mg, (gi + 1) * g.mg)
        w0g = np.ascontiguousarray(w0[ms])
        const = bias[ms] - xz * packs[gi][1] + k * xz * w0g
        terms.append((w0g, const, None if requant is None else _fast_epilogue(requant[0], checked, hi, w0g, const,
                                                                                gi * g.mg)))
    npix = g.oh * g.ow
    offs = np.arange(npix, dtype=np.int64) * kp
    return ConvPlan(g, acc_bits, lo, hi, checked, 0, xz, kp, packs, np.zeros(1, dtype=np.int64),
                    bool(np.any(w0 != 0)), np.zeros(g.n * npix, dtype=np.int64), terms, offs, run_length(npix),
                    cols=True, batch=batch_pixels(g.n, offs, npix * kp))


def pixel_offsets(g, cgp: int) -> np.ndarray:
    """(OH * OW,) int64: the byte of output pixel (oy, ox)'s first tap in one padded NHWC image
    (Hp, Wp, cgp), ((oy * sh) * Wp + ox * sw) * cgp."""
    wp = g.w + g.pads[1] + g.pads[3]
    oy, ox = np.divmod(np.arange(g.oh * g.ow, dtype=np.int64), g.ow)
    return (oy * g.stride[0] * wp + ox * g.stride[1]) * cgp


def batch_pixels(n: int, offs: np.ndarray, img_bytes: int) -> tuple | None:
    """(offs, run) of the n images' output pixels as one run space, each pixel's offset from the
    first image's (the whole-batch kernel then reads image 0 at byte 0), where an image's runs
    waste more than 3 % of the tiles' rows: a 7x7 image's 49 pixels took 9 tiles of 6 rows (54
    rows); a batch of 32 takes 262 tiles for 1568. None otherwise: a 14x14 image wastes 1 %, and
    larger run spaces reorder the work items (``conv_rows_q``): a 256 -> 1024 layer's whole-batch
    items streamed its 256 KB of weights run by run, 1.3x slower."""
    npix = offs.shape[0]
    run = run_length(npix)
    last = npix % run
    rows = npix - last + (-(-last // vnni_fused.MR_WIDE) * vnni_fused.MR_WIDE if last >= vnni_fused.MR_WIDE else last)
    if n == 1 or rows - npix <= 0.03 * npix:
        return None
    return (np.arange(n, dtype=np.int64)[:, None] * img_bytes + offs).reshape(-1), run_length(n * npix)


def run_length(npix: int) -> int:
    """Pixels per work item: at most ``vnni_fused.RUN``, the runs about equal (49 pixels: 30 + 19,
    not 36 + 13), a multiple of the wide tile's rows."""
    per_run = -(-npix // -(-npix // vnni_fused.RUN))     # ceil(npix / number of runs)
    return -(-per_run // vnni_fused.MR_WIDE) * vnni_fused.MR_WIDE


def run_planned(plan: ConvPlan, x, requant, out=None, bufs=None):
    """The requantized convolution of x by a ``plan_conv`` plan: (NCHW view of channels-last
    output in requant[1], overflow events). ``out``: an (N, OH * OW, M) buffer to write (a planned
    executor reuses it between runs), else a new array; ``bufs``: ``input_buffers(plan, x)``, the
    input copies' buffers to reuse, else new arrays."""
    g = plan.g
    xp = planned_input(plan, x, bufs)
    # Written channels-last (the epilogue's natural order, and what the next conv reads) and
    # returned as an NCHW view of it: the same values, no transpose.
    if out is None:
        out = np.empty((g.n, g.oh * g.ow, g.m), dtype=requant[1])
    if g.groups == 1 and not plan.need_sa:   # the whole batch in one parallel region
        count = _conv_q(plan, xp, out.reshape(-1, g.m), requant)
        return out.reshape(g.n, g.oh, g.ow, g.m).transpose(0, 3, 1, 2), int(count)
    count = 0
    for n in range(g.n):
        for gi, (w0g, const, fast) in enumerate(plan.group_terms):
            img = xp[n, gi]
            sa = _window_sums(plan, img) if plan.need_sa else plan.zeros
            count += vnni_fused.conv_rows_q(img.reshape(-1), plan.packs[gi][0], plan.taps, plan.cgp // 4, plan.offs,
                                            plan.run, sa, w0g, const, plan.acc_bits, plan.lo, plan.hi, plan.checked,
                                            gi * g.mg, requant[0],
                                            out[n][:, gi * g.mg:(gi + 1) * g.mg] if g.groups > 1 else out[n], fast)
    return out.reshape(g.n, g.oh, g.ow, g.m).transpose(0, 3, 1, 2), int(count)


def _window_sums(plan: ConvPlan, img: np.ndarray) -> np.ndarray:
    """sa (OH * OW,) int64 of one image of ``planned_input``: its sums over each receptive field."""
    g = plan.g
    if plan.cols:    # a row per output pixel: the sum of its bytes (the padding zeros add nothing)
        return vnni.window_sums(img.reshape(g.oh, g.ow, plan.cgp), 1, 1, 1, 1, 1, 1, g.oh, g.ow)
    (sh, sw), (dh, dw) = g.stride, g.dilation
    return vnni.window_sums(img, g.kh, g.kw, sh, sw, dh, dw, g.oh, g.ow)


def _conv_q(plan: ConvPlan, xp: np.ndarray, out2: np.ndarray, requant) -> int:
    """The fused kernel on the whole batch (one group, no window sums): out2 (N * OH * OW, M).
    The input goes flat (``conv_rows_q`` reads it by byte offsets), as each image of the grouped
    path does: one compiled specialization for padded images and receptive-field rows (a cold
    process loads each from numba's cache, ~14 ms apiece)."""
    w0g, const, fast = plan.group_terms[0]
    offs, run, nimg = (*plan.batch, 1) if plan.batch is not None else (plan.offs, plan.run, plan.g.n)
    if avx2_requant.applies(fast, out2.shape[1]):   # requantized in the tiles' registers
        zlh = np.array(requant[0][9:12], dtype=np.float32)
        avx2_requant.conv_rows_f32(xp.reshape(-1), plan.packs[0][0], plan.taps, plan.cgp // 4, offs, run,
                                   fast[1], fast[2], zlh, out2, nimg, xp[0].size)
        return 0
    return vnni_fused.conv_rows_q(xp.reshape(-1), plan.packs[0][0], plan.taps, plan.cgp // 4, offs, run,
                                  plan.zeros, w0g, const, plan.acc_bits, plan.lo, plan.hi, plan.checked, 0, requant[0],
                                  out2, fast, nimg, xp[0].size)


def _fast_epilogue(spec, checked: bool, hi: int, w0: np.ndarray, const: np.ndarray, ch0: int):
    """``vnni_fused.conv_rows_q``'s ``fast`` argument, or None where its conditions do not hold."""
    small = all(-(1 << 17) < int(v) < (1 << 17) for v in spec[9:12])
    if checked or hi > _I32_MAX or spec[0] != KIND_FLOAT32 or not small:
        return None
    return (w0.astype(np.int32), const.astype(np.int32), np.ascontiguousarray(spec[1][ch0:ch0 + w0.shape[0]]))


def _pack_mm(b2: np.ndarray, k4: int):
    bs, _ = _signed(np.ascontiguousarray(b2))
    kpad = np.zeros((k4 * 4, bs.shape[1]), dtype=np.int8)
    kpad[:bs.shape[0]] = bs
    return vnni.pack_weights(kpad, 1, k4), bs.sum(axis=0, dtype=np.int64)


def matmul(a3, b3, b_orig, az: int, bz: np.ndarray, bias: np.ndarray, acc_bits: int, lo: int,
           hi: int, checked: bool = True, requant=None):
    """Wrap-mode matmul_acc on the VNNI core: a3 (B, M, K), b3 (B, K, N) -> (B, M, N) int64.
    A b shared by every batch entry (e.g. 2-D weights) is packed once and the batch flattened.
    ``requant=(spec, dtype)``: requantized in the epilogue, as in ``conv``."""
    nb, m, k = a3.shape
    n = b3.shape[2]
    flip = 0x80 if a3.dtype == np.int8 else 0
    a0 = az + flip
    k4 = -(-k // 4)
    w0 = bz - (128 if b3.dtype == np.uint8 else 0)
    need_sa = bool(np.any(w0 != 0))
    shared = b_orig.ndim <= 2 or int(np.prod(b_orig.shape[:-2])) == 1
    groups = [(slice(None), b3[0])] if shared else [(i, b3[i]) for i in range(nb)]
    out = np.empty((nb, m, n), dtype=np.int64 if requant is None else requant[1])
    count = 0
    for sel, b2 in groups:
        rows = a3[sel].reshape(-1, k)
        if k % 4 == 0 and not flip and rows.flags.c_contiguous:
            ap = rows.view(np.uint8)
        else:
            ap = np.zeros((rows.shape[0], k4 * 4), dtype=np.uint8)
            np.bitwise_xor(rows.view(np.uint8), np.uint8(flip), out=ap[:, :k])
        if shared:
            packed, swsum = cached(b_orig, ("mm",), lambda: _pack_mm(b2, k4))
        else:
            packed, swsum = _pack_mm(b2, k4)
        c = np.empty((ap.shape[0], packed.shape[0] * vnni.NR), dtype=np.int32)
        vnni.gemm_rows(ap, k4 * 4, packed, k4, c)
        sa = ap.sum(axis=1, dtype=np.int64) if need_sa else np.zeros(ap.shape[0], dtype=np.int64)
        const = bias - a0 * swsum + k * a0 * w0
        dst = out[sel].reshape(-1, n)        # a view: out is contiguous
        if requant is None:
            count += vnni_epilogue.epilogue(c, sa, w0, const, acc_bits, lo, hi, checked, False, dst)
        else:
            count += vnni_epilogue.epilogue_q(c, sa, w0, const, acc_bits, lo, hi, checked, False, 0, requant[0], dst)
    return out, int(count)
