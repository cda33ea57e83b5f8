"""LiteRT's builtin quantized ADD and MUL (reference and optimized kernels, int8, uint8, int16): numpy
specs, re-exported by ``qsim.kernels.elementwise`` (``elementwise_jit`` has numba twins of the int8 /
int16 forms, same signatures). Outputs are int64 arrays already clamped to [qmin, qmax].

``kernels`` names the kernel set: "reference" (``reference_ops`` / ``reference_integer_ops``),
"optimized" (``optimized_integer_ops``: int8, and int16 ADD), "optimized-uint8" (the legacy uint8
kernels of ``optimized_ops.h``). The optimized kernels run NEON code (on x86 through NEON_2_SSE):
vectors over runs of the flattened output (``litert_vectors``), scalar code, as the reference, on the
rest; the vectors round and narrow differently. Each form was measured against LiteRT 2.3 on every
element (tests/golden/test_tflite_add_broadcast.py, test_tflite_add_narrowing.py,
test_tflite_binary_uint8.py).
"""
from __future__ import annotations

import numpy as np

from qsim.numerics.multipliers import quantize_multiplier
from qsim.numerics.requant_ref import _rdbpot
from qsim.numerics.requant_ref import multiply_by_quantized_multiplier as _mbqm

_F32 = np.float32
KERNELS = ("reference", "optimized", "optimized-uint8")
# the vector widths (rows of equal or fivefold-broadcast operands, scalar broadcasts) of each
# optimized kernel (optimized_ops.h, optimized/integer_ops): int8 ADD's AddScalarBroadcast runs
# 8-wide vectors, int8 MUL's MulSimpleBroadcast 16-wide ones; the uint8 kernels are 8-wide throughout
WIDTHS = {("optimized", "add"): (16, 8), ("optimized", "mul"): (16, 16),
          ("optimized-uint8", "add"): (8, 8), ("optimized-uint8", "mul"): (8, 8)}


def _check(kernels: str, op: str) -> None:
    if kernels not in KERNELS:
        raise ValueError(f"unknown {op} kernels {kernels!r}; known: {', '.join(KERNELS)}")


def tflite_add_params(s1, s2, s_out, left_shift: int = 20) -> np.ndarray:
    """TFLite ``PrepareGeneralSubOp``/``PrepareAdd`` (int8/uint8: left_shift 20; int16: 15):
    ``twice_max = 2 * max(s1, s2)`` in double; input multipliers ``s_i / twice_max``, output
    multiplier ``twice_max / (2^left_shift * s_out)``, each through QuantizeMultiplier.
    Returns int64 [q1, shift1, q2, shift2, q_out, shift_out, left_shift]."""
    s1, s2, so = (float(_F32(v)) for v in (s1, s2, s_out))
    twice_max = 2.0 * max(s1, s2)
    q1, e1 = quantize_multiplier(s1 / twice_max)
    q2, e2 = quantize_multiplier(s2 / twice_max)
    qo, eo = quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return np.array([q1[0], e1[0], q2[0], e2[0], qo[0], eo[0], left_shift], np.int64)


def _single(x, q, shift):
    """TFLITE_SINGLE_ROUNDING MultiplyByQuantizedMultiplier: (x*q + 2^(30-shift)) >> (31-shift)."""
    total = 31 - np.asarray(shift, np.int64)
    return (np.asarray(x, np.int64) * q + (np.int64(1) << (total - 1))) >> total


def add_tflite(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127, left_shift=20,
               kernels: str = "reference"):
    """TFLite/LiteRT quantized ADD: shift each offset input left by ``left_shift``, scale it with its
    own Q31 multiplier, add, scale the sum with the output multiplier (MultiplyByQuantizedMultiplier).

    ``kernels="reference"``: ``reference_integer_ops::Add`` (uint8: ``reference_ops::Add``), gemmlowp
    double rounding throughout. ``kernels="optimized"`` (int8, int16): LiteRT's builtin kernel on x86
    (measured, LiteRT 2.3): elements in vectors (``litert_vectors``: for equal shapes, the full
    16-element vectors of the flattened tensor) scale the inputs with single rounding (ties up,
    once) and the sum with gemmlowp double rounding; the scalar tail is gemmlowp throughout, like the
    reference. In the vectors of the 8-bit kernels (left_shift 20) the scaled sum is narrowed to int16
    without saturation (``vmovn_s32``), the output zero point added in int16 lanes (wrapping), then
    saturated to 8 bits: where the output scale is far below the input scales (|sum| * s_in / s_out
    past 32767 - zp, reached from s_in / s_out near 64 with zero points at the ends), the codes wrap.
    This form matched LiteRT on all 65,536 int8 pairs for s_in / s_out from 1 to 5e5, zero points at
    both ends (tests/golden/test_tflite_add_narrowing.py). A broadcast operand: BroadcastAddDispatch
    (``litert_broadcast_layout``); its scalar broadcasts (AddScalarBroadcast) scale both inputs with
    the rounding high multiply (``vqrdmulhq``) then a flooring shift (``vshlq`` by the negative shift):
    matched on all 65,536 pairs of 30 scale / zero-point sets, either operand the scalar (a former
    form, gemmlowp's rounding for the first operand, differed on up to 21 pairs per set where the
    first operand's scale is the smaller). ``kernels="optimized-uint8"``: ``optimized_ops::AddElementwise``
    / ``AddScalarBroadcast`` for uint8: 8-wide vectors that scale both inputs that way, the sum as
    above, the same int16 lanes; matched on all 65,536 uint8 pairs of 40 scale / zero-point sets.

    Zero points in the storage type's range only, as converters write them: out of range, LiteRT's
    optimized kernel shifts (x - zp) left by left_shift + its input shift in int32 lanes, which wrap,
    before its rounding doubling high multiply (that form matched it on all 9 sets of scales and zero
    points up to 5000 tried), and the reference kernel overflows otherwise. qsim's TFLite loader refuses
    such files (``qsim.ir.tflite_context``; tests/golden/test_tflite_zero_point_range.py)."""
    _check(kernels, "ADD")
    p = tflite_add_params(s1, s2, s_out, left_shift)
    shapes = np.shape(x1), np.shape(x2)
    x1, x2 = np.broadcast_arrays(np.asarray(x1, np.int64), np.asarray(x2, np.int64))
    a = (x1 - zp1) << left_shift
    b = (x2 - zp2) << left_shift
    raw = _mbqm(a, p[0], p[1]) + _mbqm(b, p[2], p[3])
    vec, scalar = litert_vectors(*shapes, "add", kernels)
    if vec is None:  # the reference kernel, or BroadcastAdd6DSlow: the reference form throughout
        return np.clip(_mbqm(raw, p[4], p[5]) + zp_out, qmin, qmax)
    if kernels == "optimized" and scalar is None:  # AddElementwiseInt8 (int16) rows: single rounding
        vsum = _single(a, p[0], p[1]) + _single(b, p[2], p[3])
    else:  # int8 AddScalarBroadcast, both uint8 kernels
        vsum = _srdhm_floor(a, p[0], p[1]) + _srdhm_floor(b, p[2], p[3])
    out = _mbqm(np.where(vec, vsum, raw), p[4], p[5])
    if left_shift == 20:  # the 8-bit kernels' vectors: int16 lanes before the zero point
        out = np.where(vec, _wrap16(_wrap16(out) + zp_out) - zp_out, out)
    return np.clip(out + zp_out, qmin, qmax)


def add_pot_int16(x1, x2, shift1: int, shift2: int, qmin=-32768, qmax=32767):
    """LiteRT's int16 ADD when all three scales are powers of two (``pot_scale_int16``, the schema's
    default; the same code in the reference and optimized kernels): ``shift_i`` = log2(s_i) - log2(s_out),
    rounded (Prepare requires one of them 0, both <= 0); the other input is divided by 2^-shift with
    gemmlowp's RoundingDivideByPOT, added to the unshifted one with int16 saturation (zero points are
    not read), then clamped. Measured on 65,792 random int16 pairs per scale set (the general formula
    differs on up to 19% of them)."""
    x1, x2 = np.broadcast_arrays(np.asarray(x1, np.int64), np.asarray(x2, np.int64))
    plain, shifted, right = (x1, x2, -shift2) if shift1 == 0 else (x2, x1, -shift1)
    return np.clip(np.clip(_rdbpot(shifted, right) + plain, -32768, 32767), qmin, qmax)


def _srdhm_floor(x, q, shift):
    """gemmlowp's SaturatingRoundingDoublingHighMul (ties away from zero), then an arithmetic
    (flooring) right shift by -shift: ``vqrdmulhq_n_s32`` then ``vshlq_s32``, as the optimized ADD's
    scalar broadcasts (int8) and both uint8 kernels scale an input."""
    ab = np.asarray(x, np.int64) * q
    v = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    hi = np.where(v >= 0, v >> 31, -((-v) >> 31))
    return hi >> np.maximum(-np.asarray(shift, np.int64), 0)


def litert_broadcast_layout(shape1, shape2, widths=(16, 8)):
    """How LiteRT's optimized ADD / MUL (``BroadcastAddDispatch``, ``BroadcastMulDispatch``) split a
    broadcast, from TFLite's ``ProcessBroadcastShapes`` and ``BinaryBroadcastFiveFold``: None for the
    generic category (``BroadcastAdd6DSlow`` / ``BroadcastMul6DSlow``, the reference form); else
    (chunk, width, scalar). The output, in C order, is cut into chunks of ``chunk`` elements; in each
    the first ``chunk - chunk % width`` run in vectors, the rest in scalar code. ``scalar`` None: chunks
    are rows of y4 > 1 elements (the elementwise function: vectors ``widths[0]`` wide); else y4 == 1 and
    chunks of y3 elements broadcast one element of operand ``scalar`` (0 or 1) (the scalar-broadcast
    function: ``widths[1]``). Equal shapes: one chunk of every element, ``widths[0]`` wide. Measured on
    every element (tests/golden/test_tflite_add_broadcast.py, test_tflite_binary_uint8.py)."""
    nd = max(len(shape1), len(shape2))
    e1 = (1,) * (nd - len(shape1)) + tuple(shape1)
    e2 = (1,) * (nd - len(shape2)) + tuple(shape2)
    if e1 == e2:
        return max(1, int(np.prod(e1, dtype=np.int64))), widths[0], None
    first = None
    for d1, d2 in zip(reversed(e1), reversed(e2)):
        if d1 == d2:
            continue
        if d1 == 1 or d2 == 1:
            first = d1 == 1  # kFirstInputBroadcastsFast
            break
        return None
    sa, sb = (e1, e2) if first else (e2, e1)
    y = [1] * 5
    i = nd - 1
    for k, test in ((4, lambda i: sa[i] == sb[i]), (3, lambda i: sa[i] == 1), (2, lambda i: sa[i] == sb[i]),
                    (1, lambda i: sb[i] == 1), (0, lambda i: sa[i] == sb[i])):
        while i >= 0 and test(i):
            y[k] *= sa[i] if k in (1, 2) else sb[i]
            i -= 1
    if i >= 0:
        return None
    if y[4] > 1:
        return y[4], widths[0], None
    return y[3], widths[1], 0 if first else 1


def litert_vectors(shape1, shape2, op: str, kernels: str):
    """(mask, scalar): which output elements (C order) ``kernels`` computes in vectors for operands
    of these shapes, and the broadcast scalar operand as ``litert_broadcast_layout`` gives it;
    (None, None) where no element is (the reference kernels, the generic broadcast)."""
    if kernels == "reference":
        return None, None
    layout = litert_broadcast_layout(shape1, shape2, WIDTHS[(kernels, op)])
    if layout is None:
        return None, None
    chunk, width, scalar = layout
    shape = np.broadcast_shapes(tuple(shape1), tuple(shape2))
    pos = np.arange(int(np.prod(shape, dtype=np.int64))) % chunk
    return (pos < chunk - chunk % width).reshape(shape), scalar


def _wrap16(v):
    return ((np.asarray(v, np.int64) + 32768) & 0xFFFF) - 32768


def tflite_mul_params(s1, s2, s_out) -> np.ndarray:
    """TFLite MUL (``mul.cc`` Prepare): ``input1->params.scale * input2->params.scale /
    output->params.scale`` is float arithmetic, widened to double only when assigned, then
    QuantizeMultiplier (a long-run seed, 901511: the double quotient gives a multiplier 26 lower,
    which rounds 2815.49998 where LiteRT's rounds 2815.50002)."""
    q, e = quantize_multiplier(float(_F32(_F32(_F32(s1) * _F32(s2)) / _F32(s_out))))
    return np.array([q[0], e[0]], np.int64)


def mul_tflite(x1, x2, s1, zp1, s2, zp2, s_out, zp_out, qmin=-128, qmax=127, kernels: str = "reference"):
    """TFLite/LiteRT 8-bit MUL (reference ``reference_integer_ops::Mul``): the product of the offset
    inputs, requantized once with MultiplyByQuantizedMultiplier. ``kernels="optimized"``: LiteRT's
    builtin int8 kernel: in its 16-element vectors (``litert_vectors``: MulElementwise rows and
    MulSimpleBroadcast runs alike) the requantized product is narrowed to int16 with saturation, the
    zero point added in int16 lanes (wrapping), then saturated to int8; the scalar tail as the
    reference. It differs where |product| * m passes 32767 - |zp_out| (m = s1 * s2 / s_out from about
    0.5, zero points at the int8 ends): matched on all 65,536 pairs for m from 0.001 to 0.999
    (tests/golden/test_tflite_add_narrowing.py) and broadcast (test_tflite_add_broadcast.py).
    ``kernels="optimized-uint8"``: ``optimized_ops::MulElementwise`` / ``MulSimpleBroadcast`` for
    uint8: 8-wide vectors, the same lanes, except that MulSimpleBroadcast narrows without saturation
    (``vmovn_s32``: the product wraps to int16)."""
    _check(kernels, "MUL")
    p = tflite_mul_params(s1, s2, s_out)
    shapes = np.shape(x1), np.shape(x2)
    x1, x2 = np.broadcast_arrays(np.asarray(x1, np.int64), np.asarray(x2, np.int64))
    out = _mbqm((x1 - zp1) * (x2 - zp2), p[0], p[1])
    vec, scalar = litert_vectors(*shapes, "mul", kernels)
    if vec is not None:
        narrow = _wrap16(out) if kernels == "optimized-uint8" and scalar is not None else np.clip(out, -32768, 32767)
        out = np.where(vec, _wrap16(narrow + zp_out) - zp_out, out)
    return np.clip(out + zp_out, qmin, qmax)
