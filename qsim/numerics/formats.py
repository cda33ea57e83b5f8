"""Number formats as frozen dataclasses, and the enums for rounding and overflow.

A format says which values exist; the functions in ``rounding``, ``intfmt``, ``fixed``, ``minifloat``
and ``mx`` say how a value gets there (one cast function per format family). Names are the spellings
used in precision plans and YAML; ``get_format`` turns a name into a format and lists the known ones
when it does not know a name.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from qsim.errors import WorkloadError


class Rounding(str, enum.Enum):
    """Rounding of a real value to the format's grid. The ap_fixed name of each mode is in brackets."""

    FLOOR = "floor"                  # toward -inf [AP_TRN, the ap_fixed default]
    TOWARD_ZERO = "toward_zero"      # truncate the magnitude [AP_TRN_ZERO]
    HALF_UP = "half_up"              # nearest, ties toward +inf [AP_RND]
    HALF_DOWN = "half_down"          # nearest, ties toward -inf [AP_RND_MIN_INF]
    HALF_TOWARD_ZERO = "half_toward_zero"  # nearest, ties toward zero [AP_RND_ZERO]
    HALF_AWAY = "half_away"          # nearest, ties away from zero [AP_RND_INF]; C round(), TFLite
    HALF_EVEN = "half_even"          # nearest, ties to even [AP_RND_CONV]; IEEE default, nearbyint


class Overflow(str, enum.Enum):
    """What happens to a value outside the format's range. ap_fixed's AP_WRAP_SM is not modelled."""

    WRAP = "wrap"                    # two's complement modulo 2^width [AP_WRAP, the ap_fixed default]
    SATURATE = "saturate"            # clamp to [min, max] [AP_SAT]
    SATURATE_SYMMETRIC = "saturate_symmetric"  # clamp to [-max, max]: -2^(w-1) never occurs [AP_SAT_SYM]
    SATURATE_ZERO = "saturate_zero"  # an out-of-range value becomes 0 [AP_SAT_ZERO]


def enum_value(cls: type[enum.Enum], value) -> enum.Enum:
    """Turn a string (or an enum member) into a member of ``cls``; unknown names list the known ones."""
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value).lower())
    except ValueError:
        known = ", ".join(m.value for m in cls)
        raise WorkloadError(f"unknown {cls.__name__.lower()} mode {value!r}; known: {known}") from None


@dataclass(frozen=True)
class IntFormat:
    """A two's complement (signed) or plain binary (unsigned) integer of ``bits`` bits, 2..32."""

    bits: int
    signed: bool = True

    def __post_init__(self):
        if not 2 <= self.bits <= 32:
            raise WorkloadError(f"integer width must be 2..32 bits, got {self.bits}")

    @property
    def name(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1


@dataclass(frozen=True)
class FixedFormat:
    """``ap_fixed<width, integer, rounding, overflow>`` (``signed=False``: ap_ufixed).

    ``integer`` counts the integer bits including the sign bit, as in ap_fixed; it may be negative or
    exceed ``width`` (then the grid step is 2^(integer - width)). The value is ``raw * 2^-frac_bits``.
    """

    width: int
    integer: int
    signed: bool = True
    rounding: Rounding = Rounding.FLOOR
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self):
        if not 1 <= self.width <= 62:
            raise WorkloadError(f"fixed-point width must be 1..62 bits, got {self.width}")
        object.__setattr__(self, "rounding", enum_value(Rounding, self.rounding))
        object.__setattr__(self, "overflow", enum_value(Overflow, self.overflow))

    @property
    def frac_bits(self) -> int:
        return self.width - self.integer

    @property
    def raw_min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with an implicit leading one and subnormals.

    ``finite_only``: no infinities; ``nan``: whether a NaN encoding exists (E4M3FN has one, the MX
    element types FP6/FP4 have none). ``max`` is the largest finite value.
    """

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    max: float
    finite_only: bool
    nan: bool = True

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number (OCP MX calls it emax_elem)."""
        import math
        return math.frexp(self.max)[1] - 1

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.man_bits)


FP32 = FloatFormat("fp32", 8, 23, 127, 3.4028234663852886e38, False)
FP16 = FloatFormat("fp16", 5, 10, 15, 65504.0, False)
BF16 = FloatFormat("bf16", 8, 7, 127, 3.3895313892515355e38, False)
FP8_E4M3 = FloatFormat("fp8_e4m3", 4, 3, 7, 448.0, True)        # OCP E4M3FN: S.1111.111 is NaN, no inf
FP8_E5M2 = FloatFormat("fp8_e5m2", 5, 2, 15, 57344.0, False)    # IEEE-like: inf and NaN encodings
FP6_E2M3 = FloatFormat("fp6_e2m3", 2, 3, 1, 7.5, True, nan=False)
FP6_E3M2 = FloatFormat("fp6_e3m2", 3, 2, 3, 28.0, True, nan=False)
FP4_E2M1 = FloatFormat("fp4_e2m1", 2, 1, 1, 6.0, True, nan=False)

FLOATS: dict[str, FloatFormat] = {f.name: f for f in
                                  (FP32, FP16, BF16, FP8_E4M3, FP8_E5M2, FP6_E2M3, FP6_E3M2, FP4_E2M1)}


@dataclass(frozen=True)
class MXFormat:
    """OCP MX v1.0: blocks of ``block`` elements share one E8M0 scale 2^(floor(log2 amax) - emax_elem).

    ``element`` is a FloatFormat, or the IntFormat int8 for MXINT8 (two's complement with an implicit
    2^-6, i.e. values k/64). ``rounding`` applies to the elements: the OCP reference code
    (microxcaling) rounds ties away from zero; recent hardware rounds ties to even.
    """

    name: str
    element: FloatFormat | IntFormat
    block: int = 32
    rounding: Rounding = Rounding.HALF_EVEN

    def __post_init__(self):
        object.__setattr__(self, "rounding", enum_value(Rounding, self.rounding))

    @property
    def emax_elem(self) -> int:
        return 0 if isinstance(self.element, IntFormat) else self.element.emax


MX: dict[str, MXFormat] = {
    "mxfp8_e4m3": MXFormat("mxfp8_e4m3", FP8_E4M3), "mxfp8_e5m2": MXFormat("mxfp8_e5m2", FP8_E5M2),
    "mxfp6_e2m3": MXFormat("mxfp6_e2m3", FP6_E2M3), "mxfp6_e3m2": MXFormat("mxfp6_e3m2", FP6_E3M2),
    "mxfp4": MXFormat("mxfp4", FP4_E2M1), "mxint8": MXFormat("mxint8", IntFormat(8, True)),
}
_ALIASES = {"fp8": "fp8_e4m3", "float8e4m3fn": "fp8_e4m3", "float8e5m2": "fp8_e5m2",
            "float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "mxfp8": "mxfp8_e4m3",
            "mxfp6": "mxfp6_e2m3"}


def get_format(name: str) -> IntFormat | FloatFormat | MXFormat:
    """Format by name: ``int2..int32``, ``uint2..uint32``, a float name, or an MX name."""
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    for prefix, signed in (("uint", False), ("int", True)):
        if key.startswith(prefix) and key[len(prefix):].isdigit() and 2 <= int(key[len(prefix):]) <= 32:
            return IntFormat(int(key[len(prefix):]), signed)
    if key in FLOATS:
        return FLOATS[key]
    if key in MX:
        return MX[key]
    known = ["int2..int32", "uint2..uint32", *FLOATS, *MX, *_ALIASES]
    raise WorkloadError(f"unknown number format {name!r}; known: {', '.join(known)}")
