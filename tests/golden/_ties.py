"""Planting exact ties, and counting them, for the golden tests.

Random data hides rounding differences (double vs single rounding differ on ~2^-(r+1) of outputs for
a right shift r), so each case uses an effective multiplier M = s_in * s_w / s_out of the form
odd / 2^k with k = 1..4: then acc * M is exactly representable and lands on .5 for a large share of
accumulators, and the fixed-point policies get right shifts of 1..3.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

# (s_in, s_w, s_out) triples whose product/quotient is exact in fp32 and fp64: M = odd / 2^k.
TIE_SCALES = [
    (0.5, 0.5, 0.5),        # M = 1/2: a tie for every odd accumulator
    (0.25, 0.5, 0.5),       # M = 1/4
    (0.5, 0.25, 1.0),       # M = 1/8
    (0.75, 0.5, 1.0),       # M = 3/8: multiplier not a power of two
    (0.625, 0.25, 0.5),     # M = 5/16
    (1.5, 0.125, 0.25),     # M = 3/4
]
RANDOM_SCALES = [(0.0123, 0.0071, 0.0456), (0.05, 0.003, 0.011)]


def count_ties(acc, mult, inside=None) -> int:
    """Accumulators whose exact product with the multiplier ends in .5, counted only where
    ``inside`` (the output was not clamped, so the tie decided the output)."""
    acc = np.asarray(acc, np.int64)
    m = np.broadcast_to(np.asarray(mult, np.float64), acc.shape)
    keep = np.ones(acc.shape, bool) if inside is None else np.broadcast_to(inside, acc.shape)
    n = 0
    fracs = {}
    for a, mm in zip(acc[keep].tolist(), m[keep].tolist()):
        f = fracs.setdefault(mm, Fraction(mm))
        v = a * f
        n += (v - (v.numerator // v.denominator)) == Fraction(1, 2)
    return n


class Tally:
    """Collects (cases, elements, planted ties, mismatches) per policy for the report."""

    rows: dict[str, list[int]] = {}

    @classmethod
    def add(cls, policy: str, elements: int, ties: int, mismatches: int) -> None:
        r = cls.rows.setdefault(policy, [0, 0, 0])
        r[0] += elements
        r[1] += ties
        r[2] += mismatches
        print(f"[golden] {policy}: {elements} elements, {ties} planted ties, {mismatches} mismatches")
