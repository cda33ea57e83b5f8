"""Hypothesis strategies for kernel tests: integer tensors with planted extremes and edge zero points."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Derandomized so CI and local runs see the same examples; no example database on disk.
KERNEL_SETTINGS = settings(derandomize=True, deadline=None, database=None, max_examples=50,
                           suppress_health_check=list(HealthCheck))

# name -> (storage dtype, lowest, highest); 4-bit values live in 8-bit storage.
KINDS = {"int8": (np.int8, -128, 127), "uint8": (np.uint8, 0, 255), "int16": (np.int16, -32768, 32767),
         "int4": (np.int8, -8, 7), "uint4": (np.uint8, 0, 15)}


@st.composite
def tensors(draw, shape, kind):
    """Random values, or mostly the kind's extremes, or all lowest/highest."""
    dt, lo, hi = KINDS[kind]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a = rng.integers(lo, hi + 1, size=shape)
    fill = draw(st.sampled_from(["random", "extremes", "lowest", "highest"]))
    if fill == "extremes":
        mask = rng.random(shape) < 0.7
        a[mask] = rng.choice([lo, hi], size=int(mask.sum()))
    elif fill != "random":
        a[...] = lo if fill == "lowest" else hi
    return a.astype(dt)


@st.composite
def zero_points(draw, kind, n=None):
    """A zero point at an edge of the kind's range, at 0 or anywhere; per channel when n is given."""
    _, lo, hi = KINDS[kind]
    one = st.one_of(st.sampled_from([lo, hi, max(lo, 0), (lo + hi) // 2]), st.integers(lo, hi))
    if n is None or draw(st.booleans()):
        return draw(one)
    return np.array(draw(st.lists(one, min_size=n, max_size=n)), dtype=np.int64)


@st.composite
def biases(draw, m):
    if draw(st.booleans()):
        return None
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([100, 40_000, 2**31 - 1]))
    return rng.integers(-scale, scale, size=m, endpoint=True).astype(np.int32)


def acc_modes():
    return st.tuples(st.sampled_from([8, 16, 24, 32]), st.sampled_from(["wrap", "saturate"]))
