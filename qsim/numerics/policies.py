"""Requantization policies: one registry keyed by name, each bit-exact with the runtime it names.

A policy owns both halves of requantization: how the multiplier is derived from (s_in, s_w[c],
s_out), and how the int32 accumulator is scaled, rounded, offset by the zero point and clamped.

    >>> get_policy("tflite-reference").requantize(acc, s_in, s_w, s_out, zero_point=-3,
    ...                                            qmin=-128, qmax=127, axis=1)

``acc`` holds int32 values (an int64 array is fine; the integer policies require int32 range);
bias is already added, except for ``fbgemm`` which takes the float bias itself (``bias=``).
``s_w`` is a scalar (per tensor) or a vector along ``axis`` of ``acc`` (per channel). An activation
clamp (ReLU, ReLU6) is folded into [qmin, qmax] by the caller. ``impl="numba"`` runs the compiled
kernel, which returns the same bytes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from qsim.errors import WorkloadError
from qsim.numerics import multipliers as mul
from qsim.numerics import requant_ref as ref


class PolicyName(enum.StrEnum):
    """The requantization policies: each names the runtime it is bit-exact with."""

    ONNXRUNTIME = "onnxruntime"
    FBGEMM = "fbgemm"
    QNNPACK = "qnnpack"
    XNNPACK = "xnnpack"
    TFLITE_REFERENCE = "tflite-reference"
    TFLITE_OPTIMIZED = "tflite-optimized"
    TFLITE_SINGLE_ROUNDING = "tflite-single-rounding"
    CMSIS_NN = "cmsis-nn"
    LITERT_FC_REFERENCE = "litert-fc-reference"


# Other spellings of one runtime, resolved where a name enters (CLI, YAML, API arguments).
_POLICY_ALIASES = {"ort": PolicyName.ONNXRUNTIME, "onnx": PolicyName.ONNXRUNTIME}


def _member(cls, aliases: dict, value, what: str, listed: str = ""):
    """``value`` (a member, a name or an alias) as a member of ``cls``; unknown names list the known."""
    if isinstance(value, cls):
        return value
    key = str(value).strip().lower()
    try:
        return aliases.get(key) or cls(key)
    except ValueError:
        raise WorkloadError(f"unknown {what} {value!r}; known: {', '.join(m.value for m in cls)}{listed}") from None


def policy_name(value) -> PolicyName:
    """A policy name (or alias) as a ``PolicyName``; an unknown name lists the known ones."""
    return _member(PolicyName, _POLICY_ALIASES, value, "requantization policy")


class Kernels(enum.StrEnum):
    """A runtime's kernel family for the ops that are not matrix products (elementwise, tables,
    pooling, quantize), or FLOAT: the op runs as a float island (dequantize, float op, quantize)."""

    ONNXRUNTIME = "onnxruntime"
    TFLITE_REFERENCE = "tflite-reference"
    TFLITE_OPTIMIZED = "tflite-optimized"
    XNNPACK = "xnnpack"
    FBGEMM = "fbgemm"
    FLOAT = "float"


# Spellings of the same kernel family in the runtimes' own vocabularies.
_KERNELS_ALIASES = {"ort": Kernels.ONNXRUNTIME, "onnx": Kernels.ONNXRUNTIME, "tflite": Kernels.TFLITE_REFERENCE}


def kernels_name(value, what: str = "kernel family") -> Kernels:
    """A kernel family name (or alias) as a ``Kernels`` member; an unknown name lists the known ones."""
    return _member(Kernels, _KERNELS_ALIASES, value, what, f" (or {', '.join(_KERNELS_ALIASES)})")


class RequantKind(enum.StrEnum):
    """The integer pipeline a policy runs (``requant_jit.KIND_CODES`` numbers them for numba)."""

    FLOAT32 = "float32"            # fp32 multiplier, round half to even
    FLOAT32_BIAS = "float32_bias"  # as FLOAT32 with fbgemm's float bias
    GEMMLOWP = "gemmlowp"          # double rounding, TFLite reference
    NEON = "neon"                  # vqrdmulh + rounding shift
    SINGLE = "single"              # TFLITE_SINGLE_ROUNDING
    CMSIS = "cmsis"                # CMSIS-NN arm_nn_requantize
    FLOAT64 = "float64"            # double(acc) * s_in * s_w / s_out, half away


_FIXED_POINT_KINDS = (RequantKind.GEMMLOWP, RequantKind.NEON, RequantKind.SINGLE, RequantKind.CMSIS)
_FLOAT_KINDS = (RequantKind.FLOAT32, RequantKind.FLOAT32_BIAS, RequantKind.FLOAT64)


@dataclass(frozen=True)
class Policy:
    name: PolicyName
    kind: RequantKind
    multiplier: str  # float32 | float64 (the product in which s_in * s_w / s_out is formed)
    runtime: str     # what it is bit-exact with, and where that was measured

    def params(self, s_in, s_w, s_out) -> dict[str, np.ndarray]:
        """The per-channel numbers this runtime's integer pipeline uses (length C or 1)."""
        s_w = np.atleast_1d(np.asarray(s_w, dtype=np.float32))
        c = s_w.shape[0]
        p = {"fmult": mul.float32_multiplier(s_in, s_w, s_out), "fatw": mul.float32_act_times_w(s_in, s_w),
             "s_in": np.full(c, np.float64(np.float32(s_in))), "s_w": s_w.astype(np.float64),
             "s_out": np.full(c, np.float64(np.float32(s_out)))}
        if self.kind in _FIXED_POINT_KINDS:
            q, sh = mul.quantize_multiplier(mul.float64_multiplier(s_in, s_w, s_out),
                                            single_rounding=self.kind is RequantKind.SINGLE)
            if self.kind is RequantKind.GEMMLOWP:
                # LiteRT's scalar kernels on x86: ``x * (1 << left_shift)`` with a shift of 32 or more
                # (a multiplier >= 2^31) compiles to ``shl``, which takes the count mod 32. The vector
                # (NEON-style) kernels shift every bit out instead, as the int32 wrap does.
                sh = np.where(sh >= 32, sh & 31, sh)
        else:
            q, sh = np.zeros(c, np.int64), np.zeros(c, np.int64)
        p["qmult"], p["shift"] = q, sh
        return p

    def requantize(self, acc, s_in, s_w, s_out, zero_point: int, qmin: int, qmax: int,
                   axis: int = -1, bias=None, impl: str = "numpy") -> np.ndarray:
        """Requantize an accumulator array; returns int64 values in [qmin, qmax], ``acc``'s shape."""
        acc = np.asarray(acc)
        if not np.issubdtype(acc.dtype, np.integer):
            raise WorkloadError(f"requantize: accumulator must be an integer array, got {acc.dtype}")
        per_tensor_weights = np.size(s_w) == 1
        if bias is not None and np.size(bias) > 1 and np.size(s_w) == 1:
            s_w = np.full(np.size(bias), np.float32(np.asarray(s_w).reshape(-1)[0]))  # per-channel bias
        p = self.params(s_in, s_w, s_out)
        c = p["fmult"].shape[0]
        shape = acc.shape
        a2 = _rows(acc.astype(np.int64), axis, c)
        if self.kind not in _FLOAT_KINDS:
            if a2.size and (a2.min() < mul.INT32_MIN or a2.max() > mul.INT32_MAX):
                raise ValueError(f"policy {self.name!r} takes int32 accumulators; wrap or saturate "
                                 "them to the accumulator width first")
        fbias, frcp = np.zeros(c, np.float32), np.ones(c, np.float32)
        if bias is not None:
            if self.kind is not RequantKind.FLOAT32_BIAS:
                raise WorkloadError(f"policy {self.name!r} takes an integer bias already in the "
                                    "accumulator; only 'fbgemm' adds a float bias")
            fbias, frcp = fbgemm_bias_term(bias, p["fatw"], per_tensor=per_tensor_weights)
        kw = dict(zp=int(zero_point), qmin=int(qmin), qmax=int(qmax))
        if impl == "numba":
            from qsim.numerics.requant_jit import kind_code, requant_rows
            out = requant_rows(np.ascontiguousarray(a2), kind_code(self.kind), p["fmult"], fbias, frcp, p["s_in"],
                               p["s_w"], p["s_out"], p["qmult"], p["shift"], kw["zp"], kw["qmin"],
                               kw["qmax"])
        elif impl == "numpy":
            out = self._numpy(a2, p, (fbias, frcp), kw)
        else:
            raise WorkloadError(f"unknown requantize impl {impl!r}; known: numpy, numba")
        return _unrows(out, shape, axis, c)

    def _numpy(self, a2, p, fbias, kw):
        if self.kind is RequantKind.FLOAT32:
            return ref.float32_ref(a2, p["fmult"], **kw)
        if self.kind is RequantKind.FLOAT32_BIAS:
            return ref.float32_bias_ref(a2, p["fmult"], *fbias, **kw)
        if self.kind is RequantKind.FLOAT64:
            return ref.float64_ref(a2, p["s_in"], p["s_w"], p["s_out"], **kw)
        fn = {RequantKind.GEMMLOWP: ref.gemmlowp_ref, RequantKind.NEON: ref.neon_ref,
              RequantKind.SINGLE: ref.single_ref, RequantKind.CMSIS: ref.cmsis_ref}[self.kind]
        return fn(a2, p["qmult"], p["shift"], **kw)


def fbgemm_bias_term(bias, act_times_w, per_tensor: bool):
    """How fbgemm ``ReQuantizeOutput`` adds a float bias: ``raw_f = fma(b, r, fp32(acc))``.

    Per channel, ``b = fp32(bias[c] / act_times_w_scale[c])`` (``_mm256_div_ps``) and ``r = 1``,
    i.e. a plain fp32 add. Per tensor, the AVX2 kernel multiplies by the broadcast reciprocal
    ``r = fp32(1.0 / act_times_w_scale)`` (computed in double) and the compiler fuses that multiply
    into the add (one rounding): ``b = bias``. The two differ on exact ties when the scale is not a
    power of two (measured with torch 2.13, every column, including the masked remainder).
    Returns (b, r) as fp32 vectors.
    """
    atw = np.asarray(act_times_w, np.float32)
    bvec = np.broadcast_to(np.asarray(bias, np.float32), atw.shape)
    if not per_tensor:
        return (bvec / atw).astype(np.float32), np.ones(atw.shape, np.float32)
    rcp = np.float32(1.0 / np.float64(atw[0]))
    return bvec.astype(np.float32), np.full(atw.shape, rcp, np.float32)


def _rows(acc: np.ndarray, axis: int, c: int) -> np.ndarray:
    """(…, C along axis, …) -> (N, C); per tensor (C = 1) -> (size, 1)."""
    if c == 1:
        return acc.reshape(-1, 1)
    ax = axis % acc.ndim
    if acc.shape[ax] != c:
        raise WorkloadError(f"per-channel scales of length {c} do not match axis {axis} of an "
                            f"accumulator of shape {acc.shape}")
    return np.moveaxis(acc, ax, -1).reshape(-1, c)


def _unrows(out: np.ndarray, shape, axis: int, c: int) -> np.ndarray:
    if c == 1:
        return out.reshape(shape)
    ax = axis % len(shape)
    moved = tuple(s for i, s in enumerate(shape) if i != ax) + (shape[ax],)
    return np.moveaxis(out.reshape(moved), -1, ax)


POLICIES: dict[PolicyName, Policy] = {p.name: p for p in (
    Policy(PolicyName.ONNXRUNTIME, RequantKind.FLOAT32, "float32",
           "onnxruntime MLAS QLinearConv / QLinearMatMul / QDQ (MlasRequantizeOutput)"),
    Policy(PolicyName.FBGEMM, RequantKind.FLOAT32_BIAS, "float32",
           "PyTorch quantized ops, fbgemm/x86 engine (fbgemm ReQuantizeOutput, float bias)"),
    Policy(PolicyName.QNNPACK, RequantKind.FLOAT32, "float32", "PyTorch quantized ops, qnnpack engine (fp32 requantization)"),
    Policy(PolicyName.XNNPACK, RequantKind.FLOAT32, "float32", "XNNPACK qs8/qu8 fp32 requantization (LiteRT XNNPACK delegate)"),
    Policy(PolicyName.TFLITE_REFERENCE, RequantKind.GEMMLOWP, "float64",
           "LiteRT reference CONV_2D / DEPTHWISE_CONV_2D and TFLite Micro's reference kernels: gemmlowp "
           "double rounding (MultiplyByQuantizedMultiplier). LiteRT's optimized DEPTHWISE_CONV_2D on x86 "
           "uses it only for the last C % 8 channels (tflite-optimized for full groups of 8)"),
    Policy(PolicyName.TFLITE_OPTIMIZED, RequantKind.NEON, "float64",
           "LiteRT optimized (builtin, ruy) CONV_2D and FULLY_CONNECTED on x86, and NEON kernels: "
           "vqrdmulh then rounding shift, ties toward +inf twice"),
    Policy(PolicyName.TFLITE_SINGLE_ROUNDING, RequantKind.SINGLE, "float64", "TFLite built with TFLITE_SINGLE_ROUNDING"),
    Policy(PolicyName.CMSIS_NN, RequantKind.CMSIS, "float64",
           "CMSIS-NN arm_nn_requantize (default build): doubling high mul ties up, then ties away"),
    Policy(PolicyName.LITERT_FC_REFERENCE, RequantKind.FLOAT64, "float64",
           "LiteRT reference FULLY_CONNECTED float-scale path: double(acc)*s_in*s_w/s_out, ties away"),
)}


def get_policy(name) -> Policy:
    return POLICIES[policy_name(name)]


def requantize(acc, s_in, s_w, s_out, zero_point: int, qmin: int, qmax: int, policy: PolicyName | str = PolicyName.ONNXRUNTIME,
               axis: int = -1, bias=None, impl: str = "numpy") -> np.ndarray:
    """Functional form of ``get_policy(policy).requantize(...)``."""
    return get_policy(policy).requantize(acc, s_in, s_w, s_out, zero_point, qmin, qmax, axis, bias, impl)
