"""The compiled LiteRT ADD (``elementwise_jit._add_kernel``, in the operands' storage types) equals
the numpy spec ``elementwise.add_tflite`` byte for byte, reference and optimized kernels: every
code pair of three zero-point sets (all 65,536 int8 pairs), int16, sizes with and without the
optimized kernel's scalar tail (n % 16), output scales that make the last rounding a tie on most
outputs (s_out = 2, 4 and 8 times the input scale: RoundingDivideByPOT's ties away from zero),
unequal input scales (single against double rounding of the inputs), fused-activation clamps;
and the inputs where the kernel's former general path (int64 arithmetic, no wrap to int32 before
a multiply; ``_int64_loop`` here) gave other codes than the spec: zero points outside the storage
type, int32 codes, large left shifts, values at the int32 wrap edges, shifts of 64 or more. Each of
those cases asserts that it does reach a wrap (the former arithmetic differs there)."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.kernels import elementwise as ew
from qsim.kernels import elementwise_jit as ewj
from qsim.numerics.rounding_jit import multiply_by_quantized_multiplier, single_rounding_multiply

CASES = [  # (s1, s2, s_out): ties at s_out = 2^k * s; unequal scales; an ordinary quotient
    (0.25, 0.25, 0.5), (0.25, 0.25, 1.0), (0.1, 0.1, 0.8), (0.5, 0.125, 0.5), (0.0371, 0.0593, 0.0789),
    (0.02, 0.3, 0.05),
]
KERNELS = ["reference", "optimized"]


def _jit(a, b, s1, z1, s2, z2, so, zo, lo, hi, kernels, left_shift, dtype):
    got = np.empty(a.size, dtype)
    p = ew.tflite_add_params(s1, s2, so, left_shift)
    ewj._add_kernel(a.reshape(-1), b.reshape(-1), p, z1, z2, zo, lo, hi, kernels == "optimized", got)
    return got


def _both(a, b, s1, z1, s2, z2, so, zo, lo, hi, kernels, left_shift, dtype):
    want = ew.add_tflite(a, b, s1, z1, s2, z2, so, zo, lo, hi, left_shift, kernels)
    got = _jit(a, b, s1, z1, s2, z2, so, zo, lo, hi, kernels, left_shift, dtype)
    np.testing.assert_array_equal(got, want.reshape(-1).astype(dtype))
    return want.reshape(-1)


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("scales", CASES)
def test_every_int8_pair(kernels, scales):
    s1, s2, so = scales
    codes = np.arange(-128, 128)
    a, b = (v.astype(np.int8).reshape(-1) for v in np.meshgrid(codes, codes))   # 65,536: a multiple of 16
    for z1, z2, zo, lo, hi in [(0, 0, 0, -128, 127), (-128, 5, -128, -128, 127), (17, -3, 9, 9, 127)]:
        _both(a, b, s1, z1, s2, z2, so, zo, lo, hi, kernels, 20, np.int8)
        _both(a[:1000 + 7], b[:1000 + 7], s1, z1, s2, z2, so, zo, lo, hi, kernels, 20, np.int8)   # a tail of 7


@pytest.mark.parametrize("kernels", KERNELS)
def test_int16(kernels):
    rng = np.random.default_rng(3)
    a = np.concatenate([rng.integers(-32768, 32768, 4000), [-32768, 32767, 0, -1, 1]]).astype(np.int16)
    b = np.concatenate([rng.integers(-32768, 32768, 4000), [32767, -32768, 0, 1, -1]]).astype(np.int16)
    for s1, s2, so in CASES:
        _both(a, b, s1, 0, s2, 0, so, 0, -32768, 32767, kernels, 15, np.int16)


def _int64_loop(a, b, s1, z1, s2, z2, so, zo, lo, hi, kernels, left_shift):
    """The kernel's former general path element by element, with ``rounding_jit``'s scalar
    functions: int64 throughout, no wrap to int32 before a multiplier without a left shift (LiteRT
    and the numpy spec wrap there)."""
    p = ew.tflite_add_params(s1, s2, so, left_shift)
    a, b = a.reshape(-1), b.reshape(-1)
    out, nvec = np.empty(a.size, np.int64), a.size - a.size % 16 if kernels == "optimized" else 0
    for i, (u, v) in enumerate(zip(a.tolist(), b.tolist())):
        x, y = np.int64(u - z1) << p[6], np.int64(v - z2) << p[6]
        mul = single_rounding_multiply if i < nvec else multiply_by_quantized_multiplier
        raw = mul(x, p[0], p[1]) + mul(y, p[2], p[3])
        out[i] = min(max(multiply_by_quantized_multiplier(raw, p[4], p[5]) + zo, lo), hi)
    return out


_rng = np.random.default_rng(11)
_I8, _I8B = (_rng.integers(-128, 128, 100 + 7).astype(np.int8) for _ in range(2))
_EDGE = np.array([2**31 - 1, -2**31, 2**31 - 2, -2**31 + 1, 2**30, -2**30, 1, -1, 0, 2**31 - 1, -2**31, 7,
                  -7, 2**20, -2**20, 12345, 2**31 - 1, -2**31], np.int64)
# the edges at both ends: in the optimized kernel's vectors and in its scalar tail (89 % 16 = 9)
_I32 = np.concatenate([_EDGE, _rng.integers(-2**31, 2**31, 62), _EDGE[:9]]).astype(np.int32)
_I32B = np.concatenate([_EDGE[::-1], _rng.integers(-2**31, 2**31, 62), _EDGE[9:]]).astype(np.int32)
_I16 = np.concatenate([[32767, -32768, 32767, -32768], _rng.integers(-32768, 32768, 60)]).astype(np.int16)
_I16B = np.concatenate([[-32768, 32767, 32767, -32768], _rng.integers(-32768, 32768, 60)]).astype(np.int16)
WIDE = (-2**31, 2**31 - 1)   # no clamp: a wrong wrap shows in the output instead of saturating it
PLANTED = {  # name: (a, b, s1, z1, s2, z2, s_out, zo, left_shift)
    "int8 codes, zero points 3000 and -2500": (_I8, _I8B, 0.25, 3000, 0.125, -2500, 1.0, 400, 20),
    "uint8 zero point -5000, int8 4000": (_I8.view(np.uint8), _I8B, 0.3, -5000, 0.2, 4000, 0.6, 3, 20),
    "int32 codes, zero points +-2^30": (_I32, _I32B, 0.5, 2**30, 0.25, -2**30, 4.0, 0, 0),
    "int32 codes, left shift 20": (_I32, _I32B, 1.0, 0, 0.7, 0, 2.0**-10, 0, 20),
    "int32 edges, a - zp = +-2^31": (_I32, _I32B, 1.0, -1, 0.75, 1, 0.01, -5, 0),
    "int16 codes, left shift 20": (_I16, _I16B, 0.5, 0, 0.5, 0, 0.25, 0, 20),
    "int8 codes, left shift 27": (_I8, _I8B, 0.25, 0, 0.125, 0, 2.0**-25, 0, 27),
}


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("name", list(PLANTED))
def test_planted_wraps(kernels, name):
    a, b, s1, z1, s2, z2, so, zo, ls = PLANTED[name]
    want = _both(a, b, s1, z1, s2, z2, so, zo, *WIDE, kernels, ls, np.int64)
    old = _int64_loop(a, b, s1, z1, s2, z2, so, zo, *WIDE, kernels, ls)
    assert not np.array_equal(old, want), "this case never reaches a wrap to int32"
    assert np.unique(want).size > 20, "an (almost) constant output would hide a wrong kernel"


@pytest.mark.parametrize("kernels", KERNELS)
def test_shifts_of_64_or_more(kernels):
    """Shifts that leave nothing of the inputs: the input left shift 40 (the low 32 bits the
    multipliers see are 0) and 63; 64 and 70 (numpy shifts an int64 by 64 or more to 0; a 64-bit
    shift instruction takes the count mod 64); an output multiplier with a left shift of 40 or 70
    (left_shift 0, s_out tiny: gemmlowp_mul's wrap leaves 0). Every output is the zero point."""
    for ls, so in [(40, 1.0), (63, 1.0), (64, 1.0), (70, 1.0), (0, 2.0**-39.5), (0, 2.0**-69.5)]:
        p = ew.tflite_add_params(0.5, 0.5, so, ls)
        assert ls > 0 or p[5] in (40, 70)
        want = _both(_I8, _I8B, 0.5, 3, 0.5, -4, so, 11, -128, 127, kernels, ls, np.int8)
        assert np.all(want == 11)


def _random_case(rng):
    pairs = [(np.int8, np.int8), (np.uint8, np.int16), (np.int16, np.int16), (np.int32, np.uint32)]
    d1, d2 = pairs[rng.integers(0, len(pairs))]   # few pairs: each is a compilation of the kernel
    n = int(rng.integers(1, 80))
    a, b = (rng.integers(np.iinfo(d).min, int(np.iinfo(d).max) + 1, n, dtype=np.int64).astype(d) for d in (d1, d2))
    z1, z2 = (int(rng.choice([rng.integers(-300, 300), rng.integers(-2**31, 2**31)])) for _ in range(2))
    s1, s2 = (float(np.float32(2.0 ** rng.uniform(-12, 4))) for _ in range(2))
    ls = int(rng.choice([0, 8, 15, 20, 24, 31, int(rng.integers(0, 40))]))
    so = float(np.float32(max(s1, s2) * 2.0 ** rng.uniform(-ls - 8, 4)))
    lo, hi = WIDE if rng.random() < 0.5 else (int(rng.choice([-128, -32768, 0])), int(rng.choice([127, 255, 32767])))
    return (a, b, s1, z1, s2, z2, so, int(rng.integers(-50, 50)), lo, hi), ls


@pytest.mark.parametrize("kernels", KERNELS)
def test_random(kernels):
    """300 random cases: storage types up to 32 bits, zero points in and far out of range, left
    shifts 0..39, output multipliers of either sign of shift, clamps from int8 to none."""
    rng = np.random.default_rng(2026)
    differed = varied = 0
    for _ in range(300):
        case, ls = _random_case(rng)
        want = _both(*case, kernels, ls, np.int64)
        differed += not np.array_equal(_int64_loop(*case, kernels, ls), want)
        varied += np.unique(want).size > 3
    assert differed >= 100 and varied >= 100, (differed, varied)   # the set reaches the wraps, unclamped
