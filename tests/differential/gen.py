"""The seeded random source of the differential cases: every parameter a case builder draws comes
from one ``Gen``, so a (builder, seed) pair names a case exactly and reruns it bit for bit.

What it aims at: the corners where integer pipelines disagree.
* scales log-uniform over [1e-6, 1e2], or "tie" scales: a mantissa of at most 11 bits, so that
  the products s_in * s_w are exact in fp32 and double, and an output scale of s_in * s_w * 2^r
  makes the requantization multiplier exactly (odd) * 2^-r: accumulators then land on .5;
* zero points at the extremes of their type (0, 255, -128, 127) as often as in between;
* odd shapes and channel counts that are not multiples of 8 or 16 (vector tails).
"""
from __future__ import annotations

import numpy as np

INT_RANGE = {"uint8": (0, 255), "int8": (-128, 127), "int16": (-32768, 32767), "uint16": (0, 65535),
             "int4": (-8, 7), "uint4": (0, 15), "int32": (-2**31, 2**31 - 1)}
ODD_CHANNELS = (1, 2, 3, 5, 7, 9, 11, 13, 15, 17, 19, 23, 24, 31, 33)


class Gen:
    """A case's random source: ``Gen(seed)``; ``tie`` is drawn once per case (planted ties)."""

    def __init__(self, seed: int):
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.tie = bool(self.rng.random() < 0.5)

    # -- plain draws --------------------------------------------------------------------------------
    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def int(self, lo: int, hi: int) -> int:
        """Uniform in [lo, hi] (both included)."""
        return int(self.rng.integers(lo, hi + 1))

    def channels(self, hi: int = 33) -> int:
        return self.pick([c for c in ODD_CHANNELS if c <= hi])

    def spatial(self, lo: int = 1, hi: int = 11) -> int:
        return self.int(lo, hi)

    # -- quantization parameters -----------------------------------------------------------------
    def scale(self, lo: float = 1e-6, hi: float = 1e2) -> np.float32:
        """Log-uniform in [lo, hi]; a tie case keeps 11 mantissa bits (exact products)."""
        s = float(np.exp(self.rng.uniform(np.log(lo), np.log(hi))))
        return _short(s) if self.tie else np.float32(s)

    def scales(self, n: int, lo: float = 1e-6, hi: float = 1e2) -> np.ndarray:
        """Per-channel scales: independent, or (tie case) one base times odd * 2^k per channel."""
        if not self.tie:
            return np.array([self.scale(lo, hi) for _ in range(n)], np.float32)
        base = self.scale(lo, hi)
        odd = self.rng.choice([1, 1, 1, 3, 5, 7], n)
        return (base * odd * 2.0 ** self.rng.integers(-3, 1, n)).astype(np.float32)

    def out_scale(self, product, absmax: float) -> np.float32:
        """An output scale. Tie case: ``product`` (the fp32 s_in * s_w of channel 0) * 2^r, so the
        multiplier is exactly 2^-r (odd * 2^-r on the other channels). Otherwise: sized to the
        expected output range (``absmax``) times a log-uniform factor, or anywhere in the range."""
        product = float(np.float32(product))
        if self.tie:
            r = self.pick([1, 1, 2, 2, 3, 4, 5, 7, -1, 0]) if self.chance(0.85) else self.int(8, 14)
            return np.float32(product * 2.0 ** r)
        if self.chance(0.7):
            return np.float32(max(absmax, 1e-30) / 127 * np.exp(self.rng.uniform(np.log(0.25), np.log(4))))
        return self.scale()

    def zero_point(self, dtype: str) -> int:
        lo, hi = INT_RANGE[dtype]
        mid = (lo + hi + 1) // 2
        r = self.rng.random()
        if dtype == "int32" or r < 0.15:
            return 0
        if r < 0.3:
            return hi if self.chance(0.5) else lo
        if r < 0.45:
            return mid
        return self.int(lo, hi)

    # -- data ---------------------------------------------------------------------------------------
    def codes(self, dtype: str, shape, zero: int | None = None) -> np.ndarray:
        """Random stored values: the full range, or concentrated around the zero point (the values
        real activations take), or the two extremes only (saturation, accumulator range)."""
        lo, hi = INT_RANGE[dtype]
        mode = self.rng.random()
        if mode < 0.5 or zero is None:
            v = self.rng.integers(lo, hi + 1, shape, dtype=np.int64)
        elif mode < 0.85:
            spread = self.pick([2, 8, 32, 100])
            v = np.clip(np.rint(self.rng.normal(zero, spread, shape)), lo, hi)
        else:
            v = self.rng.choice([lo, hi], shape)
        return v.astype(np_dtype(dtype))

    def floats(self, shape, scale: float, zero: int, dtype: str) -> np.ndarray:
        """fp32 inputs of a QuantizeLinear of ``scale``/``zero``: codes plus offsets of exactly half a
        step (ties), random fractions and values far beyond the range (saturation)."""
        lo, hi = INT_RANGE[dtype]
        n = self.rng.integers(lo - 3, hi + 4, shape).astype(np.float64) - zero
        frac = self.rng.choice([0.0, 0.5, -0.5, 0.25], shape) if self.tie else self.rng.uniform(-0.5, 0.5, shape)
        x = ((n + frac) * float(scale)).astype(np.float32)
        if self.chance(0.3):
            x.flat[: max(1, x.size // 8)] *= np.float32(self.pick([4.0, 1e3, -1e3]))
        return x


def _short(s: float, bits: int = 11) -> np.float32:
    m, e = np.frexp(s)
    return np.float32(np.ldexp(np.round(m * 2 ** bits) / 2 ** bits, e))


def np_dtype(name: str):
    if name in ("int4", "uint4"):
        import ml_dtypes

        return getattr(ml_dtypes, name)
    return np.dtype(name)
