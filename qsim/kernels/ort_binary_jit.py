"""onnxruntime's QLinearAdd / QLinearMul per element on flat same-size arrays, in parallel blocks
(the formulas and their derivation: ``qsim.sim.int_elementwise`` ``ort_add`` / ``ort_mul``).

Each part runs on 0-based slices of its arrays: numba wraps negative indices, so a loop over
``range(i0, i1)`` indexing whole arrays carried a wraparound test per access and did not vectorize
(65 ms for a 32 x 56 x 56 x 256 add on one thread; 9 ms as slices, the memory's pace).
``_cvtps_epi32``'s INT32_MIN for |t| >= 2^31 (and NaN) is the clamp's low bound: every output
range lies inside int32, so it is selected directly and the rest is clamped in float32 (exact:
the bounds are integers below 2^24 and rint gives integers). Where the operands' types and the
parameters keep |t| below 2^31 (``add_bounded``: every 8-bit add with finite ratios below ~4e6)
the select is left out (``_add_bounded``).

Timings (ResNet-50 b1's 16 residual adds, uint8, 100k-800k elements, 2 threads, Zen 3, best of
9 x 30 under the CPU lock): 0.93-0.97 ms with the select, clamp after rint and parallel blocks of
65,536; 0.67-0.70 ms without the select (clamping first lets LLVM fuse rint and the conversion
into one vcvtps2dq); 0.59-0.60 ms in blocks of 8,192 (numba hands each thread an equal run of
blocks; 65,536 left a 200,704-element add split 128k : 72k), as fast as one part per thread
(0.59 ms; that needs numba.get_num_threads() in the kernel, which numba cannot cache). One thread,
802,816 elements: 208 -> 148 us.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from qsim.kernels.fma_jit import fma32

# Below this many elements a kernel runs on the calling thread (no parallel region): waking the
# second one costs more than half of a short add saves; also the plan's threshold for running the
# node on the model's threads.
PARALLEL_MIN = 1 << 16
BLOCK = 1 << 13  # elements per parallel work item
_LIM = np.float32(2.0 ** 31)


def add_bounded(ra, rb, fixed, dtype) -> bool:
    """Whether |fma(a, ra, fma(b, rb, fixed))| stays below 2^31 for all codes of ``dtype``: bounded
    by 2^30 in float64 (room for the fp32 roundings, each relative 2^-24)."""
    info = np.iinfo(dtype)
    m = float(max(-int(info.min), int(info.max)))
    bound = m * (abs(float(ra)) + abs(float(rb))) + abs(float(fixed))
    return bool(np.isfinite(bound) and bound < 2.0 ** 30)


@njit(cache=True, parallel=True)
def ort_add(a, b, ra, rb, fixed, lo, hi, bounded, out):
    """out = clamp(cvt(fma(a, ra, fma(b, rb, fixed)))) (operands already in MLAS's order);
    ``bounded``: ``add_bounded(ra, rb, fixed, a.dtype)``."""
    if a.size < PARALLEL_MIN:
        _add_part(a, b, ra, rb, fixed, lo, hi, bounded, out)
        return
    for blk in prange((a.size + BLOCK - 1) // BLOCK):
        i0, i1 = blk * BLOCK, min(a.size, (blk + 1) * BLOCK)
        _add_part(a[i0:i1], b[i0:i1], ra, rb, fixed, lo, hi, bounded, out[i0:i1])


@njit(cache=True, inline="always")
def _add_part(a, b, ra, rb, fixed, lo, hi, bounded, out):
    if bounded:
        _add_bounded(a, b, ra, rb, fixed, np.float32(lo), np.float32(hi), out)
    else:
        _add_block(a, b, ra, rb, fixed, lo, hi, out)


@njit(cache=True)
def _add_block(a, b, ra, rb, fixed, lo, hi, out):
    flo, fhi, low = np.float32(lo), np.float32(hi), np.int32(lo)
    for i in range(a.size):
        t = fma32(np.float32(a[i]), ra, fma32(np.float32(b[i]), rb, fixed))
        # Both arms int32: a select with the int64 ``lo`` converted t to int64, which AVX2 has no
        # vector instruction for, and the loop stayed scalar (0.57 ns per element, Zen 3).
        out[i] = np.int32(min(max(np.rint(t), flo), fhi)) if abs(t) < _LIM else low


@njit(cache=True)
def _add_bounded(a, b, ra, rb, fixed, flo, fhi, out):
    for i in range(a.size):
        t = fma32(np.float32(a[i]), ra, fma32(np.float32(b[i]), rb, fixed))
        # Clamped before rounding: the same integer (integer bounds, rint monotone), and rint then
        # meets the conversion, which LLVM folds into one vcvtps2dq (one thread: 0.18 ns per
        # element; rounded before the clamp, 0.21 ns)
        out[i] = np.int32(np.rint(min(max(t, flo), fhi)))


@njit(cache=True, parallel=True)
def ort_mul(a, b, za, zb, ratio, zc, lo, hi, out):
    """out = clamp(cvt(fp32(fp32(fp32((a - za)(b - zb)) * ratio) + zc)))."""
    if a.size < PARALLEL_MIN:
        _mul_block(a, b, za, zb, ratio, zc, lo, hi, out)
        return
    for blk in prange((a.size + BLOCK - 1) // BLOCK):
        i0, i1 = blk * BLOCK, min(a.size, (blk + 1) * BLOCK)
        _mul_block(a[i0:i1], b[i0:i1], za, zb, ratio, zc, lo, hi, out[i0:i1])


@njit(cache=True)
def _mul_block(a, b, za, zb, ratio, zc, lo, hi, out):
    flo, fhi, low = np.float32(lo), np.float32(hi), np.int32(lo)
    if a.itemsize == 1 and b.itemsize == 1:
        # 8-bit codes: |(a - za)(b - zb)| <= 255^2, exact in int32 (and in fp32). Truncated to int32
        # explicitly (numba widens integer arithmetic to int64, which AVX2 multiplies and converts
        # to float one lane at a time): one thread 1.1 -> 0.48 ms for 802,816 uint8 elements (Zen 3)
        for i in range(a.size):
            out[i] = _mul_one(np.int32(np.int32(a[i] - za) * np.int32(b[i] - zb)), ratio, zc, flo, fhi, low)
    else:
        for i in range(a.size):
            out[i] = _mul_one((np.int64(a[i]) - za) * (np.int64(b[i]) - zb), ratio, zc, flo, fhi, low)


@njit(cache=True, inline="always")
def _mul_one(product, ratio, zc, flo, fhi, low):
    # (the store stays in the caller's loop: through an index argument it carried a wraparound test
    # and the loop did not vectorize)
    t = np.float32(np.float32(np.float32(product) * ratio) + zc)
    return np.int32(min(max(np.rint(t), flo), fhi)) if abs(t) < _LIM else low
