"""The NEON kind's single-shift form (``requant_jit.neon_fx`` with ``neon_terms``) equals the
two-rounding ``neon_code`` and the numpy spec ``requant_ref.neon_ref`` on the values where the two
could part: exact ties of both roundings (vqrdmulh's 2^31 and vrshl's 2^r), INT32_MIN and
INT32_MAX accumulators with the largest multipliers, every right shift 0..31, left shifts 1..31
(which wrap to int32) and accumulators past int32 (an unchecked wide accumulator: the left shift
wraps them too). Channels outside the proof's range get no terms and keep ``neon_code``."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.numerics import requant_ref
from qsim.numerics.requant_jit import KIND_GEMMLOWP, KIND_NEON, neon_terms, requant_rows

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
QS = [1 << 30, I32_MAX, 3 << 29, (1 << 30) + 1, 1, 0, 1518500250]   # Q31 multipliers (TFLite's are in [2^30, 2^31))
SHIFTS = list(range(-31, 1)) + [1, 2, 7, 30, 31]


def _accumulators(rng, q, sh):
    """Ties of both roundings for (q, sh), the int32 extremes and random values."""
    r = max(-sh, 0)
    base = [0, 1, -1, 2, -2, I32_MIN, I32_MAX, I32_MIN + 1, I32_MAX - 1]
    if q == 1 << 30 and sh <= 0:   # x * 2^30 / 2^(31 + r) = x / 2^(r + 1): odd multiples of 2^r are ties
        k = np.arange(-40, 40)
        base += list(((2 * k + 1) << r).clip(I32_MIN, I32_MAX)) + list(((2 * k + 1) << r).clip(I32_MIN, I32_MAX) - 1)
    if q == 3 << 29 and sh <= 0:   # x * 0.75 / 2^r: the first rounding's ties at x = 2 (mod 4)
        base += [v << r for v in range(-34, 34, 2) if I32_MIN <= v << r <= I32_MAX]
    rand = rng.integers(I32_MIN, I32_MAX + 1, 200)
    small = rng.integers(-(1 << (r + 9)), 1 << (r + 9), 200).clip(I32_MIN, I32_MAX)   # results near the int8 range
    return np.concatenate([np.array(base, np.int64), rand, small])


@pytest.mark.parametrize("q", QS)
def test_single_shift_equals_two_roundings(q):
    rng = np.random.default_rng(q % 1000)
    for sh in SHIFTS:
        qm, sv = np.array([q], np.int64), np.array([sh], np.int64)
        fx = neon_terms(KIND_NEON, qm, sv)
        assert fx.shape == (4, 1)   # every channel here is in the proof's range
        acc = _accumulators(rng, q, sh).reshape(-1, 1)
        for zp, lo, hi in [(0, I32_MIN, I32_MAX), (-5, -128, 127), (-128, -128, -100)]:
            want = requant_ref.neon_ref(acc, qm, sv, zp, lo, hi)
            z = np.zeros(1)
            got = requant_rows(acc, KIND_NEON, z.astype(np.float32), z.astype(np.float32), z.astype(np.float32),
                               z, z, z, qm, sv, zp, lo, hi)
            np.testing.assert_array_equal(got, want, err_msg=f"q={q} shift={sh} zp={zp}")


def test_run_along_channels_and_wide_accumulators():
    """Many channels in one run (the epilogues' case), accumulators past int32 (wrapped by the left shift)."""
    rng = np.random.default_rng(7)
    c = 37
    qm = rng.choice(np.array(QS, np.int64), c)
    sv = rng.choice(np.array(SHIFTS, np.int64), c)
    acc = np.concatenate([rng.integers(I32_MIN, I32_MAX + 1, (50, c)), rng.integers(-(1 << 40), 1 << 40, (50, c)),
                          np.full((1, c), I32_MIN), np.full((1, c), I32_MAX)])
    z = np.zeros(c)
    args = (z.astype(np.float32), z.astype(np.float32), z.astype(np.float32), z, z, z, qm, sv, 3, -128, 127)
    want = requant_ref.neon_ref(acc, qm, sv, 3, -128, 127)
    np.testing.assert_array_equal(requant_rows(acc, KIND_NEON, *args), want)


def test_terms_refused_outside_the_proof():
    """q = -2^31 (the saturation can act), left shift 32 (every bit shifted out), another kind: no terms."""
    one = np.array([1 << 30], np.int64)
    assert neon_terms(KIND_NEON, np.array([I32_MIN], np.int64), np.array([0], np.int64)).shape == (0, 1)
    assert neon_terms(KIND_NEON, one, np.array([32], np.int64)).shape == (0, 1)
    assert neon_terms(KIND_NEON, one, np.array([-32], np.int64)).shape == (0, 1)
    assert neon_terms(KIND_GEMMLOWP, one, np.array([0], np.int64)).shape == (0, 1)
    # ...and those channels still round as the spec (the saturated INT32_MIN * INT32_MIN, the lost bits)
    acc = np.array([[I32_MIN, I32_MAX, 5, -7]], np.int64).T
    for qm, sv in [(np.array([I32_MIN], np.int64), np.array([0], np.int64)), (one, np.array([32], np.int64))]:
        z = np.zeros(1)
        got = requant_rows(acc, KIND_NEON, z.astype(np.float32), z.astype(np.float32), z.astype(np.float32), z, z, z,
                           qm, sv, 0, I32_MIN, I32_MAX)
        np.testing.assert_array_equal(got, requant_ref.neon_ref(acc, qm, sv, 0, I32_MIN, I32_MAX))
