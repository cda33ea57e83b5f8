"""The min and max onnxruntime's dynamic quantization finds (``GetQuantizationParameter``, core/util/
qmath.h: DynamicQuantizeLinear, DynamicQuantizeMatMul), NaN included.

On finite values and infinities min and max do not depend on the order of the reduction. A NaN
does: on x86, MLAS's ``MlasReduceMinimumMaximumF32KernelAvx`` (every AVX host, AVX-512 ones too)
folds the tensor into 32 lanes (4 x 8 floats per step) with ``maxps(acc, x)`` / ``minps(acc, x)``,
which return their second operand whenever either is a NaN: a NaN makes its lane NaN and the lane's
next value replaces it, so the NaN hides every earlier value of its lane and survives only as the
lane's last one. The 4 accumulators are then merged (again maxps / minps), a tail of whole 8-float
vectors folded in, the 8 lanes reduced to one (maxps / minps of halves, then shuffles) and the last
``n % 8`` values folded with ``std::max`` / ``std::min``, which keep their first operand where a NaN
is involved: a NaN there is ignored, and a NaN result of the vector part sticks. Measured against
onnxruntime 1.32 on an AVX2 host (tests/golden/test_nan_paths.py).

Above ``SINGLE_RANGE_ELEMENTS`` elements onnxruntime splits the reduction among its intra-op threads
(blocks of ``ceil(n / 32)`` rounded up to 128, one kernel call per thread's range, merged with
``std::min`` / ``std::max``): where a NaN then lands depends on the thread count, which the model
does not carry, so ``min_max`` refuses such a tensor with a NaN.
"""
from __future__ import annotations

import numpy as np

F32_MAX = np.float32(np.finfo(np.float32).max)
# The largest tensor onnxruntime reduces in one call whatever its thread count: its cost model
# (Eigen's TensorCostModel: a block of b floats costs 4b loads * 11/64 + 2 stores * 11/64 + b cycles)
# gives a second thread from a total of 210000 cycles on, which 123009 elements reach (blocks of 128).
SINGLE_RANGE_ELEMENTS = 123008


def _maxps(a, b):
    return np.where(a > b, a, b)  # x86 maxps: b unless a > b (so b where either is a NaN)


def _minps(a, b):
    return np.where(a < b, a, b)


def _fold(acc: np.ndarray, rows: np.ndarray, is_max: bool) -> np.ndarray:
    """``acc = maxps(acc, row)`` (``minps``) for each row in turn, lane by lane. In a lane, a NaN row
    makes the lane that NaN and the next row replaces it: the lane ends as the max of its values after
    its last NaN (that NaN when it is the last row), and ``acc`` counts only in a lane without a NaN (up to
    the sign of a zero, which no use of the result sees)."""
    if rows.shape[0] == 0:
        return acc
    k = rows.shape[0]
    nan = np.isnan(rows)
    has = nan.any(axis=0)
    last = np.where(has, k - 1 - np.argmax(nan[::-1], axis=0), -1)
    after = np.arange(k)[:, None] > last
    fill = np.float32(-np.inf if is_max else np.inf)
    red = (np.max if is_max else np.min)(np.where(after, rows, fill), axis=0).astype(np.float32)
    out = np.where(has, red, _maxps(acc, red) if is_max else _minps(acc, red)).astype(np.float32)
    return np.where(last == k - 1, rows[-1], out)  # the NaN itself, its sign and payload kept


def _lanes(x: np.ndarray, is_max: bool):
    """The vector part of the AVX kernel: (its one-float result or None, the values left for the tail)."""
    n = x.size
    if n < 8:
        return None, x
    op = _maxps if is_max else _minps
    init = -F32_MAX if is_max else F32_MAX
    acc8 = np.full(8, init, np.float32)
    done = 0
    if n >= 32:
        done = n // 32 * 32
        a = _fold(np.full(32, init, np.float32), x[:done].reshape(-1, 32), is_max).reshape(4, 8)
        acc8 = op(op(a[0], a[1]), op(a[2], a[3]))
    end = done + (n - done) // 8 * 8
    acc8 = _fold(acc8, x[done:end].reshape(-1, 8), is_max)
    v = op(acc8[:4], acc8[4:])
    v = op(v, v[[2, 3, 2, 3]])
    v = op(v, v[[1, 1, 1, 1]])
    return np.float32(v[0]), x[end:]


def min_max(x: np.ndarray, op: str = "DynamicQuantizeLinear") -> tuple[np.float32, np.float32]:
    """(min, max) of a float32 tensor as onnxruntime's x86 MLAS finds them (see the module doc)."""
    x = np.ascontiguousarray(x, np.float32).reshape(-1)
    lo, hi = np.float32(x.min()), np.float32(x.max())
    if not np.isnan(lo):  # numpy's min propagates a NaN: there is none, and any order gives these
        return lo, hi
    if x.size > SINGLE_RANGE_ELEMENTS:
        raise ValueError(f"{op}: a NaN in a tensor of {x.size} elements (over {SINGLE_RANGE_ELEMENTS}): "
                         "onnxruntime splits its min/max among its threads, and the values a NaN hides "
                         "depend on the thread count; qsim does not reproduce that")
    hi, tail = _lanes(x, True)
    lo, _ = _lanes(x, False)
    hi = -F32_MAX if hi is None else hi
    lo = F32_MAX if lo is None else lo
    for v in tail:  # std::max(hi, v) / std::min(lo, v): the first operand unless the comparison holds
        hi = v if hi < v else hi
        lo = v if v < lo else lo
    return np.float32(lo), np.float32(hi)
