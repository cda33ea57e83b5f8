"""LiteRT's int8 / int16 ADD of two same-size operands in one vectorizable pass, straight from the
operands' storage type into the output's (the planned executor's kernel for the TFLite kernel
families, ``plan_ops._binary_kernel``).

``elementwise_jit._add_kernel`` computes the same integers through int64 copies of both operands,
an int64 result and a cast, with branches per element (the optimized kernel's 16-element vectors
against its scalar tail, and the branchy scalar twins of ``rounding_jit``). Here the vector part
and the tail are two loops, the input scaling uses ``rounding_jit.single_rounding_multiply`` (no
branches) or ``requant_jit.gemmlowp_mul`` (``multiply_by_quantized_multiplier`` with selects), and
the output scaling ``requant_jit.gemmlowp_code``: the same functions of the same int64 values
(tests/kernels/test_add_tflite.py compares both with the numpy spec ``elementwise.add_tflite``).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.numerics.requant_jit import gemmlowp_code, gemmlowp_mul
from qsim.numerics.rounding_jit import single_rounding_multiply


@njit(cache=True)
def add_into(a, b, p, zp1, zp2, zp_out, qmin, qmax, optimized, out):
    """out[i] = LiteRT ADD of a[i], b[i] (flat, same size; any integer storage types), ``p`` from
    ``elementwise.tflite_add_params``. ``optimized``: LiteRT's builtin kernel (elements in full
    16-element vectors scale their inputs with single rounding, the size % 16 tail as the
    reference); else the reference kernel (gemmlowp double rounding throughout)."""
    n = a.size
    nvec = n - n % 16 if optimized else 0
    q1, s1, q2, s2, qo, so, ls = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    z1, z2, zo, lo, hi = np.int64(zp1), np.int64(zp2), np.int64(zp_out), np.int64(qmin), np.int64(qmax)
    for i in range(nvec):
        x = (np.int64(a[i]) - z1) << ls
        y = (np.int64(b[i]) - z2) << ls
        raw = single_rounding_multiply(x, q1, s1) + single_rounding_multiply(y, q2, s2)
        out[i] = gemmlowp_code(raw, qo, so, zo, lo, hi)
    for i in range(nvec, n):
        x = (np.int64(a[i]) - z1) << ls
        y = (np.int64(b[i]) - z2) << ls
        raw = gemmlowp_mul(x, q1, s1) + gemmlowp_mul(y, q2, s2)
        out[i] = gemmlowp_code(raw, qo, so, zo, lo, hi)


def applies(dtype, zp1: int, zp2: int, left_shift: int) -> bool:
    """Whether ``add_into`` equals ``elementwise_jit._add_kernel`` for these operands: 8- or 16-bit
    codes and zero points in their range, so every shifted input (a - zp) << left_shift and the sum
    of the two scaled inputs (each at most half of it: TFLite's input multipliers are
    s_i / (2 max(s1, s2)) <= 1/2) fit int32, where ``gemmlowp_mul``'s wrap to int32 is the identity
    as in ``multiply_by_quantized_multiplier``."""
    dt = np.dtype(dtype)
    if dt.kind not in "iu" or dt.itemsize > 2:
        return False
    info = np.iinfo(dt)
    span = int(info.max) - int(info.min)
    return all(int(info.min) <= int(z) <= int(info.max) for z in (zp1, zp2)) and span << left_shift < 1 << 31
