"""Integer elementwise ops per runtime: Add/Mul (and their Const forms), Softmax, and the table
activations (Sigmoid, Tanh, GELU).

LiteRT and XNNPACK kernels come from ``qsim.kernels.elementwise`` (numba twins in
``elementwise_jit``); the onnxruntime ones are here:

* ``ort_add``: MLAS ``MlasQLinearAddKernelAvx2Helper`` (x86-64 with AVX2, used on AVX-512 machines
  too), as GCC compiles it (it contracts ``x * y + z`` into one FMA): ratios ``rA = fp32(sA / sC)``,
  ``rB = fp32(sB / sC)``, a fixed part ``fp32(zC - fma(rA, zA, fp32(rB * zB)))``, then
  ``fma(a, rA, fma(b, rB, fixed))`` on the stored integers, ``cvtps`` (ties to even; out of range:
  INT32_MIN) and saturating packs. Broadcasting: onnxruntime's broadcaster calls the kernel per
  span; where the innermost broadcast dimension makes A the scalar, QLinearAdd passes the span as A
  and the scalar as B, so the two operands swap roles in the formula above (a scalar B folds as
  ``fma(b, rB, fixed)``, which is the same-shape formula). Checked on every uint8 (a, b) pair for
  several scale sets, same shape and both broadcast directions (tests/sim/test_ort_elementwise.py).
* ``ort_mul``: MLAS ``MlasQLinearMulKernel`` (SSE2 build, no contraction): ``(a - zA) * (b - zB)``
  in int32, ``cvtps(fp32(fp32(acc) * fp32(fp32(sA * sB) / sC)) + fp32(zC))``, then saturating packs.
* ``ort_softmax``: contrib ``QLinearSoftmax``: a 256-entry fp32 table
  ``exp((i - 255 + shift) * s_in)`` computed in double, with ``shift = max(0, logf(FLT_MAX / D) - 5)
  / s_in`` (glibc's ``logf`` of an fp32 quotient); per row an fp32 sum in order, then
  ``rint(e * floor(1 / s_out) / sum) + zp`` with the quotient in fp64 (see ``ort_softmax``).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import qsim.kernels.elementwise as ew
from qsim.kernels.elementwise_libm import logf
from qsim.errors import GraphError
from qsim.numerics.requant_ref import fma_f32
from qsim.numerics.rounding import x86_cvt_i32
from qsim.numerics.policies import Kernels, PolicyName
from qsim.sim.int_common import (Step, activation_range, int_range, quantize_as, scalar_scale, scalar_zp, storage,
                                 to_storage)
from qsim.sim.int_ops import Fallback

_F32 = np.float32


def ort_add_params(sa, za, sb, zb, sc, zc) -> tuple[np.float32, np.float32, np.float32]:
    """(rA, rB, fixed) of MLAS's QLinearAdd, with the compiler's FMA in the fixed part."""
    ra, rb = _F32(_F32(sa) / _F32(sc)), _F32(_F32(sb) / _F32(sc))
    return ra, rb, _F32(_F32(zc) - fma_f32(ra, _F32(za), _F32(rb * _F32(zb))))


def ort_scalar_a(shape_a, shape_b) -> bool:
    """Whether onnxruntime's broadcaster runs QLinearAdd/Mul with A as the scalar of each span: the
    innermost output dimension larger than 1 broadcasts A (and not B)."""
    nd = max(len(shape_a), len(shape_b))
    sa, sb = (1,) * (nd - len(shape_a)) + tuple(shape_a), (1,) * (nd - len(shape_b)) + tuple(shape_b)
    for da, db in zip(reversed(sa), reversed(sb)):
        if max(da, db) > 1:
            return da == 1 and db > 1
    return False


def ort_add(a, b, sa, za, sb, zb, sc, zc, qmin, qmax) -> np.ndarray:
    if ort_scalar_a(np.shape(a), np.shape(b)):
        a, sa, za, b, sb, zb = b, sb, zb, a, sa, za
    ra, rb, fixed = ort_add_params(sa, za, sb, zb, sc, zc)
    a, b = (np.asarray(v).astype(_F32) for v in np.broadcast_arrays(np.asarray(a), np.asarray(b)))
    t = fma_f32(a, ra, fma_f32(b, rb, fixed))
    return np.clip(x86_cvt_i32(t), qmin, qmax)


def ort_mul_ratio(sa, sb, sc) -> np.float32:
    return _F32(_F32(_F32(sa) * _F32(sb)) / _F32(sc))


def ort_mul(a, b, sa, za, sb, zb, sc, zc, qmin, qmax) -> np.ndarray:
    acc = (np.asarray(a).astype(np.int64) - int(za)) * (np.asarray(b).astype(np.int64) - int(zb))
    t = (acc.astype(_F32) * ort_mul_ratio(sa, sb, sc)).astype(_F32) + _F32(zc)
    return np.clip(x86_cvt_i32(t.astype(_F32)), qmin, qmax)


def ort_softmax_table(s_in: float, d: int, signed: bool) -> np.ndarray:
    """Indexed by ``i = 255 + (x - max)``, i.e. table[255] = exp(shift * s_in)."""
    s = float(_F32(s_in))
    # log(FLT_MAX / D): an fp32 quotient and C++'s float overload of log, i.e. glibc's logf (not
    # correctly rounded); one ulp of it moves every table entry by about 8 fp32 ulps
    shift = max(0.0, float(logf(_F32(np.finfo(_F32).max) / _F32(d))) - 5.0) / s
    return np.array([math.exp((i - 255 + shift) * s) for i in range(256)], dtype=np.float32)


def ort_softmax(x: np.ndarray, s_in, s_out, zp_out: int, signed: bool) -> np.ndarray:
    """Softmax over the last axis; returns the stored integer codes (int64).

    Measured against onnxruntime 1.32 (x86-64) on planted ties and on every element where the
    candidate evaluations disagree: the fp32 table entries summed in fp32 in element order, then
    the quotient ``e * floor(1 / s_out) / sum`` taken in fp64 (the product is exact there, so it
    never overflows, even for a row of one element) and rounded to the nearest integer, ties to
    even (ys / 2 for odd ys: 2.5 -> 2, 3.5 -> 4, 126.5 -> 126). An fp32 quotient, as the published
    source reads, differs from the runtime near ties, at every output scale including 1/256.
    Results above the type's maximum saturate to it (127 / 255)."""
    d = x.shape[-1]
    table = ort_softmax_table(s_in, d, signed)
    xi = x.astype(np.int64)
    e = table[255 + xi - xi.max(axis=-1, keepdims=True)]
    # fp32 sum in element order, as the runtime's loop: accumulate adds one element at a time,
    # rounding each partial sum to fp32 (a reduce would sum pairwise); a Python loop over the
    # elements took ~0.9 ms for ResNet-50's 1000 classes
    total = np.add.accumulate(e, axis=-1, dtype=np.float32)[..., -1] if d else np.zeros(x.shape[:-1], np.float32)
    y_scale = float(np.floor(_F32(1.0) / _F32(s_out)))
    v = e.astype(np.float64) * y_scale / total[..., None].astype(np.float64)
    return np.minimum(np.rint(v).astype(np.int64) + zp_out, 127 if signed else 255)


def _operands(step: Step):
    """(a, qa, b, qb) in the runtime's operand order; Const ops read the constant operand."""
    node = step.node
    if node.op.endswith("Const"):
        c = step.weight("operand")
        cq = step.weight_quant("operand")
        if cq is None or not np.issubdtype(c.dtype, np.integer):
            raise Fallback
        x, xq = step.args[0], step.in_q()
        return (c, cq, x, xq) if step.attr("reversed", False) else (x, xq, c, cq)
    return step.args[0], step.in_q(0), step.args[1], step.in_q(1)


def add(step: Step):
    return _binary(step, "add")


def mul(step: Step):
    return _binary(step, "mul")


def binary_setup(step: Step, op: str):
    """(kernel family, a, b, the six scales and zero points, lo, hi) of an Add or Mul node
    (``Fallback`` where the runtime runs it in float)."""
    family = step.rt.add if op == "add" else step.rt.mul
    if family is Kernels.FLOAT:
        raise Fallback
    a, qa, b, qb = _operands(step)
    yq = step.out_q()
    if family is Kernels.ONNXRUNTIME and any(q.scale.size != 1 for q in (qa, qb, yq)):
        # QLinearAdd / QLinearMul take per-tensor parameters: onnxruntime leaves a unit with a
        # per-channel operand (ConvNeXt's Linear bias through quantize_static) as DQ -> float op -> Q,
        # one fp32 operation per element, which the float island is
        raise Fallback
    lo, hi = activation_range(step, yq)
    p = (scalar_scale(step, qa, "operand A"), scalar_zp(step, qa, "operand A"),
         scalar_scale(step, qb, "operand B"), scalar_zp(step, qb, "operand B"),
         scalar_scale(step, yq, "the output"), scalar_zp(step, yq, "the output"))
    # int16: XNNPACK delegates 8-bit ADD / MUL only; the builtin kernel answers (measured: XNNPACK's
    # answers equal the optimized kernels' on 20 int16 ADD models, same-shape and broadcast)
    if family is Kernels.XNNPACK and (yq.fmt.name == "int16" or xnnpack_declines(op, p)):
        family = Kernels.TFLITE_OPTIMIZED
    return family, a, b, p, lo, hi


def xnnpack_declines(op: str, p) -> bool:
    """Whether LiteRT's XNNPACK delegate leaves an int8 ADD / MUL to the builtin optimized kernel:
    its scale checks (fp32 quotients) refuse an input-to-output scale (ADD, each input) outside
    [2^-10, 256) or a product-to-output scale (MUL) of 256 or more. Measured on all 65,536 pairs: at
    256, 1000 and 1e4 the answers are the builtin kernel's (tests/golden/test_tflite_add_narrowing.py);
    ADD's lower bound lies between 0.000975 and 0.00098 (the delegate's kernel and the builtin one
    differ there). MUL's lower bound (below about 2^-16) is not modelled: no case where the two
    kernels differ was found there."""
    s1, s2, so = (_F32(v) for v in p[::2])
    if op == "add":
        r = (_F32(s1 / so), _F32(s2 / so))
        return max(r) >= 256 or min(r) < 2.0 ** -10
    return _F32(_F32(s1 * s2) / so) >= 256


def _binary(step: Step, op: str):
    family, a, b, p, lo, hi = binary_setup(step, op)
    yq = step.out_q()
    step.bounds[step.node.outputs[0]] = (lo, hi)
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    if family is Kernels.ONNXRUNTIME:
        if step.impl == "numba":
            from qsim.sim.int_fast import ort_binary
            return [ort_binary(op, a, b, p, lo, hi, storage(yq))]
        return [to_storage((ort_add if op == "add" else ort_mul)(a, b, *p, lo, hi), yq)]
    same_shape = np.shape(a) == np.shape(b)
    litert = family in (Kernels.TFLITE_REFERENCE, Kernels.TFLITE_OPTIMIZED, Kernels.XNNPACK)
    if litert and op == "add" and litert_pot_int16(step, p):
        return [to_storage(_pot_int16_add(step, a, b, p, lo, hi, same_shape), yq)]
    kernels = litert_kernels(family, yq.fmt.name, same_shape)
    if kernels != "reference" and not same_shape:
        return [_optimized_broadcast(step, op, kernels, a, b, p, lo, hi, yq)]
    mod = ew
    if step.impl == "numba" and same_shape and kernels != "optimized-uint8":  # the twins: int8 / int16 forms
        import qsim.kernels.elementwise_jit as mod
    a, b = np.ascontiguousarray(np.broadcast_to(a, shape)), np.ascontiguousarray(np.broadcast_to(b, shape))
    if family is Kernels.XNNPACK:
        fn = mod.add_xnnpack if op == "add" else mod.mul_xnnpack
        return [to_storage(fn(a, b, *p, lo, hi), yq)]
    # their scalar tail is the last size % 16 (uint8: % 8) elements in the file's NHWC order (the IR is NCHW)
    nhwc = kernels != "reference" and a.ndim == 4 and a.size % 16
    if nhwc:
        a, b = (np.ascontiguousarray(v.transpose(0, 2, 3, 1)) for v in (a, b))
    y = _litert_binary(mod, op, kernels, a, b, p, lo, hi, yq)
    return [to_storage(y.transpose(0, 3, 1, 2) if nhwc else y, yq)]


def litert_kernels(family: Kernels, storage_type: str, same_shape: bool) -> str:
    """The ``kernels`` of ``elementwise.add_tflite`` / ``mul_tflite`` that LiteRT runs for a node of
    this kernel family and output type: the optimized ones under TFLITE_OPTIMIZED (uint8: the legacy
    8-wide kernels), except int16 broadcasts, which add.cc runs with BroadcastAdd6DSlow under every
    kernel set."""
    if family is not Kernels.TFLITE_OPTIMIZED or (storage_type == "int16" and not same_shape):
        return "reference"
    return "optimized-uint8" if storage_type == "uint8" else "optimized"


def _litert_binary(mod, op, kernels, a, b, p, lo, hi, yq):
    if op == "mul":
        return mod.mul_tflite(a, b, *p, lo, hi, kernels=kernels)
    left_shift = 15 if yq.fmt.name == "int16" else 20  # TFLite PrepareGeneralSubOp: 16x8 vs 8-bit
    return mod.add_tflite(a, b, *p, lo, hi, left_shift=left_shift, kernels=kernels)


def _optimized_broadcast(step: Step, op, kernels, a, b, p, lo, hi, yq):
    """LiteRT's optimized 8-bit ADD / MUL with a broadcast operand (``ew.litert_vectors``): its
    vectors and scalar code split the file's (NHWC) output in C order, so 4-D operands go back to
    NHWC; one value is the same in any layout; other operands of another rank than a 4-D output have
    no known file layout here and are refused."""
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    nhwc = len(shape) == 4
    if nhwc:
        a, b = (np.reshape(v, (1, 1, 1, 1)) if np.size(v) == 1 else v for v in (a, b))
    if nhwc and not (np.ndim(a) == 4 and np.ndim(b) == 4):
        raise step.fail(f"{yq.fmt.name} {op.upper()} with a broadcast operand of another rank than the 4-D output: "
                        "the file's operand layout (which LiteRT's optimized kernel splits into vectors) is not "
                        "known here")
    if nhwc:
        a, b = (np.transpose(v, (0, 2, 3, 1)) for v in (a, b))
    y = _litert_binary(ew, op, kernels, np.asarray(a), np.asarray(b), p, lo, hi, yq)
    return to_storage(y.transpose(0, 3, 1, 2) if nhwc else y, yq)


def litert_pot_int16(step: Step, p) -> bool:
    """Whether LiteRT runs this int16 ADD on its power-of-two path: the file's AddOptions set
    ``pot_scale_int16`` (the schema's default; a model without AddOptions does not) and all three
    scales are powers of two (measured: with the option false, the general formula is LiteRT's)."""
    return step.out_q().fmt.name == "int16" and bool(step.attr("pot_scale_int16", False)) and \
        all(litert_pot_scale(v) for v in p[::2])


def _pot_int16_add(step: Step, a, b, p, lo, hi, same_shape: bool):
    """LiteRT's power-of-two int16 ADD (``ew.add_pot_int16``), or its refusals: it does not broadcast (the
    process aborts) and its Prepare rejects shifts other than one 0 and one <= 0: no runtime answer."""
    if not same_shape:
        raise step.fail("int16 ADD with power-of-two scales and a broadcast operand: LiteRT runs its "
                        "power-of-two int16 path, which does not broadcast (the process aborts), so there "
                        "is no runtime answer to reproduce")
    e1, e2, eo = (round(math.log2(float(v))) for v in p[::2])
    shift1, shift2 = e1 - eo, e2 - eo
    if not (shift1 == 0 or shift2 == 0) or max(shift1, shift2) > 0:
        raise step.fail(f"int16 ADD with power-of-two scales whose input shifts ({shift1}, {shift2}) are not one 0 "
                        "and one <= 0: LiteRT's Prepare rejects the model, so there is no runtime answer")
    return ew.add_pot_int16(a, b, shift1, shift2, lo, hi)


def litert_pot_scale(scale) -> bool:
    """LiteRT's CheckedLog2: a scale whose log2 is within 1e-3 of an integer counts as a power of two
    (computed here in double; LiteRT's fp32 log can decide otherwise only within an ulp of 1e-3)."""
    v = math.log2(float(scale))
    return abs(v - round(v)) < 1e-3


class SoftmaxSetup(NamedTuple):
    """A Softmax node's parameters as its runtime's kernel takes them (``softmax_setup``)."""
    family: Kernels
    axis: int          # the softmax axis, non-negative
    beta: float
    s_in: np.float32
    s_out: np.float32
    zp_out: int
    lo: int            # the output type's range
    hi: int
    signed: bool       # int8 input codes (else uint8: onnxruntime's table and its saturation)


def softmax_setup(step: Step) -> SoftmaxSetup:
    """The parameters of a Softmax node, resolved once for ``softmax`` and the planner
    (``plan_ops.plan_softmax``); ``Fallback`` where the runtime runs the node in float: the float
    family, onnxruntime with beta != 1 or other than 8-bit types (QLinearSoftmax's table has 256
    entries), LiteRT with other than int8. A per-channel scale or zero point is an error."""
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    family = step.rt.softmax
    axis = int(step.attr("axis", -1)) % x.ndim
    beta = float(step.attr("beta", 1.0))
    if family is Kernels.FLOAT or beta != 1.0 and family is Kernels.ONNXRUNTIME:
        raise Fallback
    s_in, s_out = scalar_scale(step, xq, "the input"), scalar_scale(step, yq, "the output")
    zp_out = scalar_zp(step, yq, "the output")
    lo, hi = int_range(yq)
    types = ("int8", "uint8") if family is Kernels.ONNXRUNTIME else ("int8",)
    if xq.fmt.name not in types or yq.fmt.name not in types:
        raise Fallback
    return SoftmaxSetup(family, axis, beta, s_in, s_out, zp_out, lo, hi, xq.fmt.name == "int8")


def softmax(step: Step):
    s = softmax_setup(step)
    step.bounds[step.node.outputs[0]] = (s.lo, s.hi)
    xm = np.moveaxis(step.args[0], s.axis, -1)
    if s.family is Kernels.ONNXRUNTIME:
        y = ort_softmax(xm, s.s_in, s.s_out, s.zp_out, s.signed)
    else:
        _refuse_tflite_softmax_tie(step, xm, s.s_in, s.s_out, s.zp_out, s.hi)
        mod = ew
        if step.impl == "numba":
            import qsim.kernels.elementwise_jit as mod
        y = mod.softmax_tflite(np.ascontiguousarray(xm), s.s_in, s.s_out, s.zp_out, s.beta, s.lo, s.hi)
    return [to_storage(np.moveaxis(y, -1, s.axis), step.out_q())]


def _refuse_tflite_softmax_tie(step: Step, xm, s_in, s_out, zp_out, qmax) -> None:
    """LiteRT's reference and optimized int8 SOFTMAX kernels can round a quotient within an fp32 ulp of
    a tie differently (a long-run seed: 71.49999 gives 72 under the reference kernels); such an output
    is refused rather than answered differently."""
    r = ew.softmax_tflite_scaled(np.ascontiguousarray(xm), s_in, s_out, float(step.attr("beta", 1.0)))
    near_tie = np.abs(r - np.floor(r) - 0.5) <= r * 2.0 ** -20
    if np.any(near_tie & (np.floor(r) + zp_out < qmax)):
        raise GraphError(f"node {step.node.name!r} (SOFTMAX, int8, output scale {float(s_out):.6g}): an element "
                         "falls on a rounding tie (within 2^-20), which LiteRT's kernel sets resolve differently; "
                         "not simulated rather than answered differently")


_LUT_NAMES = {"Sigmoid": "sigmoid", "Tanh": "tanh"}

# MlasLogisticKernelFma3 (Eigen's rational approximation on [-18, 18]): p(x) / q(x) + 0.5, clamped to
# [0, 1], every multiply-add fused (measured against QLinearSigmoid on every 8-bit code)
_LOGISTIC_P = tuple(_F32(c) for c in (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05,
                                      8.51377133304701e-03, 2.48287947061529e-01))
_LOGISTIC_Q = tuple(_F32(c) for c in (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
                                      1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01))


def mlas_logistic(x) -> np.ndarray:
    """onnxruntime's fp32 logistic (``MlasComputeLogistic`` on x86-64 with FMA3)."""
    v = np.clip(np.asarray(x, _F32), _F32(-18.0), _F32(18.0)).astype(_F32)
    v2 = (v * v).astype(_F32)
    p = fma_f32(v2, _LOGISTIC_P[0], _LOGISTIC_P[1])
    for c in _LOGISTIC_P[2:]:
        p = fma_f32(p, v2, c)
    p = (p * v).astype(_F32)
    q = fma_f32(v2, _LOGISTIC_Q[0], _LOGISTIC_Q[1])
    for c in _LOGISTIC_Q[2:]:
        q = fma_f32(q, v2, c)
    return np.clip(((p / q).astype(_F32) + _F32(0.5)).astype(_F32), _F32(0.0), _F32(1.0))


def _ort_sigmoid(step: Step, x, xq, yq) -> np.ndarray:
    """contrib QLinearSigmoid (and a fused QDQ Sigmoid): a 256-entry table of MLAS's logistic of
    ``fp32(s_in * (code - zp))``, quantized with MlasQuantizeLinear."""
    lo, hi = int_range(yq)
    codes = np.arange(lo if lo < 0 else 0, (lo if lo < 0 else 0) + 256)
    deq = (_F32(scalar_scale(step, xq, "the input")) *
           (codes - scalar_zp(step, xq, "the input")).astype(_F32)).astype(_F32)
    table = quantize_as(step, mlas_logistic(deq), yq).astype(np.int64)
    step.bounds[step.node.outputs[0]] = (lo, hi)
    return to_storage(table[x.astype(np.int64) - codes[0]], yq)


def lut(step: Step):
    """LiteRT's LUT activations (int8): LOGISTIC, TANH, GELU (approximate or exact); onnxruntime's
    QLinearSigmoid (8-bit)."""
    x, xq, yq = step.args[0], step.in_q(), step.out_q()
    if (step.rt.policy is PolicyName.ONNXRUNTIME and step.node.op == "Sigmoid" and xq is not None
            and yq is not None and xq.fmt.name == yq.fmt.name and xq.fmt.name in ("int8", "uint8")):
        return [_ort_sigmoid(step, x, xq, yq)]
    if step.rt.lut is not Kernels.TFLITE_REFERENCE or xq.fmt.name != "int8" or yq.fmt.name != "int8":
        raise Fallback
    fn = _LUT_NAMES.get(step.node.op) or ("gelu_tanh" if step.attr("approximate", False) else "gelu")
    # Each kernel set builds its table its own way (ew.LUT_TABLES): XNNPACK's LOGISTIC and TANH round
    # ties to even after adding the zero point in fp32, with its own float functions
    kernels = "xnnpack" if step.rt.policy is PolicyName.XNNPACK else "tflite"
    mod = ew
    if step.impl == "numba":
        import qsim.kernels.elementwise_jit as mod
    y = mod.activation_tflite(fn, np.ascontiguousarray(x), scalar_scale(step, xq, "the input"),
                              scalar_zp(step, xq, "the input"), scalar_scale(step, yq, "the output"),
                              scalar_zp(step, yq, "the output"), kernels=kernels)
    step.bounds[step.node.outputs[0]] = int_range(yq)
    return [to_storage(y, yq)]
