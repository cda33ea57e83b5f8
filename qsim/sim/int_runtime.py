"""Which integer arithmetic each op gets under a requantization policy.

A policy names a runtime (DESIGN.md, "Numerics"); a runtime does not use one rounding for every op.
The golden tests (tests/golden/test_policy_litert.py, test_policy_elementwise.py) measured which
kernel each LiteRT kernel set runs per op, e.g. the optimized (builtin) kernels round
DEPTHWISE_CONV_2D like the reference kernels, and FULLY_CONNECTED in the reference kernels uses the
float64 multiplier. ``Runtime`` records those choices for one policy, as enums:

* ``conv`` / ``depthwise`` / ``fc`` / ``matmul``: the requantization policy (``PolicyName``) of each
  matrix op; ``depthwise_tail``: the policy of the last C % 8 depthwise channels where it differs
  (LiteRT's optimized DEPTHWISE_CONV_2D, see ``int_ops.optimized_depthwise``);
* ``add`` / ``mul``: the elementwise integer kernel family (``Kernels``; FLOAT = dequantize, float
  op, quantize);
* ``softmax`` / ``lut``: the table implementation (ONNXRUNTIME, TFLITE_REFERENCE) or FLOAT;
* ``avgpool``: the ``Rounding`` of the integer sum / count, or ``Kernels.ONNXRUNTIME`` (MLAS's fp32
  formula, ``int_pool._ort_avgpool``);
* ``quantize``: the ``qsim.numerics.quantize`` variant used for float inputs and float islands;
* ``hardswish``: LiteRT's fixed-point HARD_SWISH (``Kernels.TFLITE_REFERENCE``: one kernel for all
  three LiteRT kernel sets, ``qsim.sim.int_hardswish``) or FLOAT (a float island: onnxruntime has no
  quantized HardSwish and runs DQ -> HardSwish -> Q in float);
* ``u8s8_pairs16``: uint8 x int8 matrix products are summed in int16 pairs that saturate
  (``qsim.kernels.pairs16``): onnxruntime on x86 CPUs without VNNI. Which CPU onnxruntime runs on is
  ``ort_cpu()``: the ``ort_cpu=`` argument of ``qsim.simulate`` / ``qsim.compile`` / ``qsim validate
  --ort-cpu`` (``ort_cpu_scope`` while they run), else ``QSIM_ORT_CPU``, else the host's.

Rows marked "unverified" follow the runtime's documented kernel but have no golden test here.
"""
from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import lru_cache

from qsim.errors import QsimError
from qsim.numerics.formats import Rounding
from qsim.numerics.policies import Kernels, PolicyName, policy_name

P, K = PolicyName, Kernels


@dataclass(frozen=True)
class Runtime:
    policy: PolicyName
    conv: PolicyName
    depthwise: PolicyName
    fc: PolicyName
    matmul: PolicyName
    add: Kernels
    mul: Kernels
    softmax: Kernels
    lut: Kernels
    avgpool: Rounding | Kernels
    quantize: Kernels
    depthwise_tail: PolicyName | None = None
    dequantize: Kernels | None = None  # a float model output read back: None = DequantizeLinear's formula
    u8s8_pairs16: bool = False
    hardswish: Kernels = Kernels.FLOAT


def _tflite(policy: PolicyName, *, conv: PolicyName, fc: PolicyName, add: Kernels = K.TFLITE_REFERENCE,
            quantize: Kernels = K.TFLITE_REFERENCE, depthwise_tail: PolicyName | None = None,
            dequantize: Kernels | None = None) -> Runtime:
    """LiteRT's builtin kernels: MUL as ADD (the optimized one has int16 lanes: elementwise.mul_tflite),
    SOFTMAX, the LUT activations and HARD_SWISH as the reference kernels."""
    return Runtime(policy=policy, conv=conv, depthwise=conv, fc=fc, matmul=conv, add=add, mul=add,
                   softmax=K.TFLITE_REFERENCE, lut=K.TFLITE_REFERENCE, avgpool=Rounding.HALF_AWAY,
                   quantize=quantize, depthwise_tail=depthwise_tail, dequantize=dequantize,
                   hardswish=K.TFLITE_REFERENCE)


def _torch(policy: PolicyName) -> Runtime:
    """PyTorch engines: matrix ops per the policy, everything else as a float island (unverified)."""
    return Runtime(policy=policy, conv=policy, depthwise=policy, fc=policy, matmul=policy, add=K.FLOAT,
                   mul=K.FLOAT, softmax=K.FLOAT, lut=K.FLOAT, avgpool=Rounding.HALF_EVEN, quantize=K.FBGEMM)


RUNTIMES: dict[PolicyName, Runtime] = {r.policy: r for r in (
    # onnxruntime MLAS: QLinearConv/QGemm/QLinearMatMul fp32 requantization, QLinearAdd (AVX2 fp32
    # FMA kernel), QLinearSoftmax, QLinearAveragePool and QLinearGlobalAveragePool. QLinearSigmoid
    # (a table of MLAS's logistic) and QLinearConcat run as float islands: they matched on every
    # code tested; QLinearMul: MLAS SSE2 kernel (int_elementwise.ort_mul).
    Runtime(policy=P.ONNXRUNTIME, conv=P.ONNXRUNTIME, depthwise=P.ONNXRUNTIME, fc=P.ONNXRUNTIME,
            matmul=P.ONNXRUNTIME, add=K.ONNXRUNTIME, mul=K.ONNXRUNTIME, softmax=K.ONNXRUNTIME, lut=K.FLOAT,
            avgpool=K.ONNXRUNTIME, quantize=K.ONNXRUNTIME),
    # LiteRT reference kernels (BUILTIN_REF).
    _tflite(P.TFLITE_REFERENCE, conv=P.TFLITE_REFERENCE, fc=P.LITERT_FC_REFERENCE),
    # LiteRT optimized builtin kernels, no delegate: depthwise rounds like the NEON kernels on
    # channels in full groups of 8 and like the reference on the rest (int_ops.optimized_depthwise).
    # QUANTIZE / DEQUANTIZE: blocks of 8 and a scalar tail (qsim.numerics.quantize).
    _tflite(P.TFLITE_OPTIMIZED, conv=P.TFLITE_OPTIMIZED, fc=P.TFLITE_OPTIMIZED, add=K.TFLITE_OPTIMIZED,
            quantize=K.TFLITE_OPTIMIZED, depthwise_tail=P.TFLITE_REFERENCE, dequantize=K.TFLITE_OPTIMIZED),
    # LiteRT with the XNNPACK delegate; SOFTMAX, the LUT activations and quantized HARD_SWISH stay on
    # the builtin kernels.
    Runtime(policy=P.XNNPACK, conv=P.XNNPACK, depthwise=P.XNNPACK, fc=P.XNNPACK, matmul=P.XNNPACK,
            add=K.XNNPACK, mul=K.XNNPACK, softmax=K.TFLITE_REFERENCE, lut=K.TFLITE_REFERENCE,
            avgpool=Rounding.HALF_AWAY, quantize=K.XNNPACK, hardswish=K.TFLITE_REFERENCE),
    # Unverified rows: matrix ops per the policy, the rest as the TFLite reference kernels.
    _tflite(P.TFLITE_SINGLE_ROUNDING, conv=P.TFLITE_SINGLE_ROUNDING, fc=P.TFLITE_SINGLE_ROUNDING),
    _tflite(P.CMSIS_NN, conv=P.CMSIS_NN, fc=P.CMSIS_NN),
    _tflite(P.LITERT_FC_REFERENCE, conv=P.TFLITE_REFERENCE, fc=P.LITERT_FC_REFERENCE),
    _torch(P.FBGEMM),
    _torch(P.QNNPACK),
)}


# The CPU kinds whose onnxruntime (MLAS) u8 x s8 products differ: "avx2" (x86 with AVX2, or AVX-512
# without VNNI: vpmaddubsw, int16 pairs that saturate) and "vnni" (x86 with AVX-512 VNNI or AVX-VNNI:
# vpdpbusd, exact); "arm64": exact (unverified here).
ORT_CPUS = ("avx2", "vnni", "arm64")


@lru_cache(maxsize=1)
def _host_features() -> dict:
    if platform.machine().lower() not in ("x86_64", "amd64", "x86", "i686"):
        return {}
    import llvmlite.binding as llb

    return dict(llb.get_host_cpu_features())


def host_ort_cpu() -> str:
    """The kind (``ORT_CPUS``) of this machine's CPU, as onnxruntime's MLAS dispatch chooses it."""
    features = _host_features()
    if not features:
        return "arm64"
    return "vnni" if features.get("avx512vnni") or features.get("avxvnni") else "avx2"


# The CPU kind a simulation in progress was asked for (``ort_cpu_scope``). A context variable, not a
# module global: the float kernels (``float_mlas``, ``int_dynamic``) are called as (inputs, weights,
# attrs) from several executors, and a scoped value reaches them all without changing their
# signatures, while concurrent simulations (threads, asyncio) keep their own kinds.
_SCOPED: ContextVar[str | None] = ContextVar("qsim_ort_cpu", default=None)


def _checked(value, what: str) -> str:
    name = value.strip().lower() if isinstance(value, str) else value
    if name == "":
        return "host"
    if name != "host" and name not in ORT_CPUS:
        raise QsimError(f"{what}={value!r}: use one of host, {', '.join(ORT_CPUS)}")
    return name


def ort_cpu_name(cpu: str | None = None) -> str:
    """The CPU kind named for onnxruntime, "host" or one of ``ORT_CPUS``: ``cpu`` (an ``ort_cpu=``
    argument) if given, else the enclosing ``ort_cpu_scope``'s, else ``QSIM_ORT_CPU``, else "host".
    "host" stays a name (not resolved to a kind): MLAS's float lanes follow the host's AVX-512F,
    which the kind does not say."""
    if cpu is not None:
        return _checked(cpu, "ort_cpu")
    scoped = _SCOPED.get()
    if scoped is not None:
        return scoped
    return _checked(os.environ.get("QSIM_ORT_CPU", "host"), "QSIM_ORT_CPU")


# The onnxruntime session's graph optimization level a simulation in progress answers for (the
# ``ort_level`` of ``qsim.simulate``), scoped with the CPU kind: float kernels whose order onnxruntime's
# layout transformers change (``ort_nchwc_block``) read it.
_LEVEL: ContextVar[str] = ContextVar("qsim_ort_level", default="enable_all")


@contextmanager
def ort_cpu_scope(cpu: str | None, level: str | None = None):
    """Within it, ``ort_cpu()``, ``ort_float_lanes()`` and ``get_runtime`` follow ``cpu`` (checked
    here; None: ``ort_cpu_name()``'s default), and ``ort_nchwc_block()`` the session level ``level``
    (None: the enclosing one, else enable_all). Restored on exit; nothing global is changed."""
    token = _SCOPED.set(ort_cpu_name(cpu))
    level_token = None if level is None else _LEVEL.set(level)
    try:
        yield
    finally:
        _SCOPED.reset(token)
        if level_token is not None:
            _LEVEL.reset(level_token)


def ort_float_lanes(cpu: str | None = None) -> int:
    """The fp32 lanes of MLAS's float kernels (``qsim.sim.float_mlas``): 16 where it dispatches its
    AVX-512F kernels (the host has AVX-512F, or the kind named is "vnni"), else 8 (FMA3 / AVX2)."""
    name = ort_cpu_name(cpu)
    if name == "host":
        return 16 if _host_features().get("avx512f") else 8
    return 16 if name == "vnni" else 8


def ort_nchwc_block() -> int:
    """Channels per block of MLAS's NCHWc kernels where onnxruntime's NchwcTransformer runs (ORT_ENABLE_ALL
    on x86-64: 16 with AVX-512F, else 8, as its float lanes), 0 where it does not (lower levels, arm64)."""
    if _LEVEL.get() != "enable_all" or ort_cpu() == "arm64":
        return 0
    return ort_float_lanes()


def ort_cpu(cpu: str | None = None) -> str:
    """The CPU kind (one of ``ORT_CPUS``) whose onnxruntime the ``onnxruntime`` policy reproduces:
    ``ort_cpu_name(cpu)``, "host" resolved to this machine's kind."""
    name = ort_cpu_name(cpu)
    return host_ort_cpu() if name == "host" else name


def ort_nan_to_min(cpu: str | None = None) -> bool:
    """Whether onnxruntime's QuantizeLinear turns a NaN into the output type's minimum: yes on every
    CPU kind. MLAS clamps the quotient with max(q, qmin - zp) before converting it: x86's ``maxps``
    returns its second operand for a NaN (measured on an AVX2 host, every position of vectors of
    1-100). On arm64 MLAS's MlasQuantizeLinearVector clamps with ``vmaxnmq_f32(q, qmin - zp)`` then
    ``vminnmq_f32(q, qmax - zp)``: FMAXNM / FMINNM return the number when one operand is a quiet NaN,
    so the NaN becomes qmin - zp before ``vcvtnq_s32_f32`` (which would give 0 for a NaN) and the zero
    point is added back: the minimum too. arm64 follows that source (onnxruntime/core/mlas/lib/
    quantize.cpp, read at commit 06414ba6); it cannot be measured here. ``cpu`` is kept for callers."""
    ort_cpu(cpu)  # still validates the kind
    return True


def ort_cpu_tag(policy, cpu: str | None = None) -> str | None:
    """What an integer result of ``policy`` depends on in the CPU: under the onnxruntime policy
    "KIND/LANES" (``ort_cpu(cpu)`` and ``ort_float_lanes(cpu)``: an avx2 onnxruntime sums u8 x s8
    products differently from a vnni one, and MLAS softmax's lane count changes its float sums); None
    under every other policy (their kernels do not follow the CPU). Accuracy keys hold it
    (``qsim.evaluation.data.accuracy_key``), so a result measured for one kind never answers for another.
    The float reference's softmax lanes enter keys under every policy apart from it, where the model
    depends on them (``float_mlas.float_lanes_tag``)."""
    if policy_name(policy) is not P.ONNXRUNTIME:
        return None
    return f"{ort_cpu(cpu)}/{ort_float_lanes(cpu)}"


def get_runtime(policy, cpu: str | None = None) -> Runtime:
    """The runtime of a policy name (aliases such as "ort" resolved here, where the name enters);
    onnxruntime's for the CPU kind ``ort_cpu(cpu)``."""
    rt = RUNTIMES[policy_name(policy)]
    if rt.policy is P.ONNXRUNTIME and ort_cpu(cpu) == "avx2":
        return replace(rt, u8s8_pairs16=True)
    return rt
