"""ONNX Cast as onnxruntime's CPU kernel converts, bit for bit (measured against onnxruntime 1.32 on
an x86 host with F16C: tests/golden/test_cast_golden.py).

* float32 -> float16: round to nearest even (subnormals kept, past 65520 to inf), as numpy; a NaN
  in a whole block of 8 keeps its payload's top bits and is made quiet (F16C's ``vcvtps2ph``), one
  in the last ``size % 8`` elements becomes 0x7e00 with its sign (MLAS's scalar tail).
* float64 -> float16: through float32 (two roundings: 1 + 2**-11 + 2**-40 becomes 1, not the nearer
  1 + 2**-10), one element at a time in software: a NaN becomes 0x7e00 with its sign.
* float16 -> float32: exact; a signaling NaN is made quiet in whole blocks of 16 (F16C) and kept
  in the last ``size % 16`` elements (software); float16 -> float64: exact, a NaN made quiet.
* to bfloat16 (from any type, through float32): round to nearest even, not truncation (300.7 -> 300,
  1e30 -> 1.00025555e30, 3.4e38 -> inf); a NaN becomes the default quiet NaN with its sign (0x7fc0),
  as ml_dtypes converts. bfloat16 -> anything: exactly to float32, then as from float32.
* float -> integer: the C conversion numpy's ``astype`` makes on this host (toward zero; NaN, inf and
  out-of-range values as x86's ``cvtt`` instructions give them), integer -> float: round to nearest
  even: numpy's ``astype`` matched onnxruntime for every float and integer type, NaN and inf included.
"""
from __future__ import annotations

import numpy as np

_F16_QUIET, _F32_QUIET, _F64_QUIET = np.uint16(0x0200), np.uint32(0x00400000), np.uint64(0x0008000000000000)
# element types Cast converts to (qsim's names; bfloat16 through ml_dtypes)
CAST_TYPES = {"bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
              "float16", "bfloat16", "float32", "float64"}


def _bfloat16():
    import ml_dtypes  # onnx's dependency: only bfloat16 casts need it

    return ml_dtypes.bfloat16


def _quiet(y: np.ndarray, nan: np.ndarray, bit, view) -> np.ndarray:
    if nan.any():
        y.view(view)[nan] |= bit
    return y


def _f32_to_f16(x: np.ndarray) -> np.ndarray:
    """MLAS converts whole blocks of 8 with F16C (a NaN keeps its payload's top 10 bits, made quiet)
    and the last ``size % 8`` elements in software (a NaN becomes 0x7e00 with its sign): measured with a
    NaN at every position of vectors of 1-33."""
    y = x.astype(np.float16, order="C")  # C order: the flat index is onnxruntime's, and reshape a view
    nan = np.isnan(x)
    if nan.any():
        bits = np.ascontiguousarray(x).view(np.uint32).reshape(-1)
        out = y.reshape(-1).view(np.uint16)
        f16c = ((bits >> 16) & 0x8000) | 0x7E00 | ((bits >> 13) & 0x3FF)
        f16c[x.size - x.size % 8:] = ((bits[x.size - x.size % 8:] >> 16) & 0x8000) | 0x7E00
        flat = nan.reshape(-1)
        out[flat] = f16c[flat].astype(np.uint16)
    return y


def ort_cast(x, to: str) -> np.ndarray:
    """``x`` cast to the element type ``to`` (a name in ``CAST_TYPES``) as onnxruntime's Cast."""
    if to not in CAST_TYPES:
        raise ValueError(f"Cast to {to} is not simulated (supported: {', '.join(sorted(CAST_TYPES))})")
    x = np.asarray(x)
    src = x.dtype.name
    if src == to:
        return x
    if src == "bfloat16":  # exact; onnxruntime's own bfloat16 NaNs are the default ones
        x, src = x.astype(np.float32), "float32"
        if to == "float32":
            return x
    with np.errstate(over="ignore", invalid="ignore"):
        if to == "bfloat16":
            return x.astype(np.float32).astype(_bfloat16())
        if to == "float16" and src == "float32":
            return _f32_to_f16(x)
        if to == "float16" and src == "float64":  # per element in software: no F16C payload
            y = x.astype(np.float32).astype(np.float16)
            nan = np.isnan(x)
            y.view(np.uint16)[nan] = np.where(np.signbit(x[nan]), 0xFE00, 0x7E00).astype(np.uint16)
            return y
        if src == "float16" and to == "float32":  # MLAS: F16C on blocks of 16, the tail in software
            nan = np.isnan(x).reshape(-1).copy()
            nan[x.size - x.size % 16:] = False  # the software tail keeps a signaling NaN as it is
            y = x.astype(np.float32, order="C")
            _quiet(y.reshape(-1), nan, _F32_QUIET, np.uint32)
            return y
        if src == "float16" and to == "float64":  # through float32 in software: quiet
            return _quiet(x.astype(np.float64), np.isnan(x), _F64_QUIET, np.uint64)
        return x.astype(np.dtype(to))
