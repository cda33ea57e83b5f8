"""Number formats as frozen dataclasses, and the enums for rounding and overflow: the one
vocabulary of number formats in qsim.

A format says which values exist and how they are stored: ``storage_bits`` (bits per element in
memory; MX formats add their shared 8-bit scale per block), ``compute_class`` (the matrix-unit class
of a hardware profile that executes it), ``is_float``, ``storage_dtype`` (the numpy type that holds
its codes or values in the simulator) and ``element_type`` (the ONNX spelling used by
``TensorSpec.dtype``). The functions in ``rounding``, ``fixed``, ``minifloat`` and ``mx`` say how a
value gets there (one cast function per format family). ``get_format`` is the only place that turns
a name into a format: it takes qsim's names (``int8``, ``fp8``, ``mxfp4`` ...) and the ONNX element
type spellings (``float8e4m3fn``, ``bfloat16`` ...) and lists the known ones when it does not know
a name.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Union

import numpy as np

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


def _int_dtype(bits: int, signed: bool) -> np.dtype:
    """The narrowest numpy integer type that holds ``bits``-bit codes (sub-byte codes in one byte)."""
    width = next(w for w in (8, 16, 32, 64) if bits <= w)
    return np.dtype(f"{'int' if signed else 'uint'}{width}")


@dataclass(frozen=True)
class IntFormat:
    """A two's complement (signed) or plain binary (unsigned) integer of ``bits`` bits, 2..64
    (64: the bias of TFLite's 16x8 kernels; precision plans take 2..32)."""

    bits: int
    signed: bool = True

    def __post_init__(self):
        if not 2 <= self.bits <= 64:
            raise WorkloadError(f"integer width must be 2..64 bits, got {self.bits}")

    @property
    def name(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    element_type = name

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def storage_bits(self) -> int:
        return self.bits

    @property
    def compute_class(self) -> str:
        """Sub-byte widths run on the next power-of-two integer unit (int3 on an int4 unit)."""
        return "int" + str(next(w for w in (2, 4, 8, 16, 32, 64) if self.bits <= w))

    @property
    def is_float(self) -> bool:
        return False

    @property
    def storage_dtype(self) -> np.dtype:
        return _int_dtype(self.bits, self.signed)


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
    def name(self) -> str:
        return f"ap_{'' if self.signed else 'u'}fixed<{self.width},{self.integer}>"

    @property
    def frac_bits(self) -> int:
        return self.width - self.integer

    @property
    def raw_min(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def raw_max(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def storage_bits(self) -> int:
        return self.width

    @property
    def compute_class(self) -> str:
        """A fixed-point MAC is an integer MAC on the raw values."""
        return IntFormat(min(max(self.width, 2), 32), self.signed).compute_class

    @property
    def is_float(self) -> bool:
        return False

    @property
    def storage_dtype(self) -> np.dtype:
        """Raw values (int64 by ``fixed_raw``; the narrowest type that holds ``width`` bits)."""
        return _int_dtype(self.width, self.signed)


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with an implicit leading one and subnormals.

    ``finite_only``: no infinities; ``nan``: whether a NaN encoding exists (E4M3FN has one, the MX
    element types FP6/FP4 have none). ``max`` is the largest finite value. ``storage_bits`` defaults
    to 1 + exp_bits + man_bits (tf32 is stored in 32), ``compute_class`` to ``fp<storage_bits>``,
    ``element_type`` (the ONNX spelling) to the name.
    """

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    max: float
    finite_only: bool
    nan: bool = True
    storage_bits: int = 0
    compute_class: str = ""
    element_type: str = ""

    def __post_init__(self):
        if not self.storage_bits:
            object.__setattr__(self, "storage_bits", 1 + self.exp_bits + self.man_bits)
        if not self.compute_class:
            object.__setattr__(self, "compute_class", f"fp{self.storage_bits}")
        if not self.element_type:
            object.__setattr__(self, "element_type", self.name)

    @property
    def is_float(self) -> bool:
        return True

    @property
    def storage_dtype(self) -> np.dtype:
        """fp16 values in numpy's float16; every other format's values are held exactly in float32."""
        return np.dtype(np.float16 if self.name == "fp16" else np.float32)

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number (OCP MX calls it emax_elem)."""
        return math.frexp(self.max)[1] - 1

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.man_bits)


FP32 = FloatFormat("fp32", 8, 23, 127, 3.4028234663852886e38, False, element_type="float32")
# TF32: fp32 storage and range, 10-bit mantissa products on tensor cores.
TF32 = FloatFormat("tf32", 8, 10, 127, 3.4028234663852886e38, False, storage_bits=32, compute_class="tf32",
                   element_type="float32")
FP16 = FloatFormat("fp16", 5, 10, 15, 65504.0, False, element_type="float16")
BF16 = FloatFormat("bf16", 8, 7, 127, 3.3895313892515355e38, False, compute_class="bf16",
                   element_type="bfloat16")
# OCP E4M3FN: S.1111.111 is NaN, no inf.
FP8_E4M3 = FloatFormat("fp8_e4m3", 4, 3, 7, 448.0, True, element_type="float8e4m3fn")
# IEEE-like: inf and NaN encodings.
FP8_E5M2 = FloatFormat("fp8_e5m2", 5, 2, 15, 57344.0, False, element_type="float8e5m2")
FP6_E2M3 = FloatFormat("fp6_e2m3", 2, 3, 1, 7.5, True, nan=False)
FP6_E3M2 = FloatFormat("fp6_e3m2", 3, 2, 3, 28.0, True, nan=False)
FP4_E2M1 = FloatFormat("fp4_e2m1", 2, 1, 1, 6.0, True, nan=False, element_type="float4e2m1")

FLOATS: dict[str, FloatFormat] = {f.name: f for f in
                                  (FP32, TF32, FP16, BF16, FP8_E4M3, FP8_E5M2, FP6_E2M3, FP6_E3M2, FP4_E2M1)}


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

    element_type = property(lambda self: self.name)

    @property
    def emax_elem(self) -> int:
        return 0 if isinstance(self.element, IntFormat) else self.element.emax

    @property
    def storage_bits(self) -> float:
        """Element bits plus the block's shared E8M0 scale (8 bits per ``block`` elements)."""
        return self.element.storage_bits + 8 / self.block

    @property
    def compute_class(self) -> str:
        """MX formats run on the unit of their element type."""
        return self.element.compute_class

    @property
    def is_float(self) -> bool:
        return self.element.is_float

    @property
    def storage_dtype(self) -> np.dtype:
        """The simulator holds MX tensors as their real values (``mx_cast``)."""
        return np.dtype(np.float32)


Format = Union[IntFormat, FloatFormat, MXFormat]

MX: dict[str, MXFormat] = {
    "mxfp8_e4m3": MXFormat("mxfp8_e4m3", FP8_E4M3), "mxfp8_e5m2": MXFormat("mxfp8_e5m2", FP8_E5M2),
    "mxfp6_e2m3": MXFormat("mxfp6_e2m3", FP6_E2M3), "mxfp6_e3m2": MXFormat("mxfp6_e3m2", FP6_E3M2),
    "mxfp4": MXFormat("mxfp4", FP4_E2M1), "mxint8": MXFormat("mxint8", IntFormat(8, True)),
}
# Every other spelling in use: qsim's short names and the ONNX / numpy element type names.
# ``mxfp8`` is MXFP8 with E4M3 elements (and ``mxfp6`` E2M3), the variants the OCP MX spec and
# microxcaling use as the default of each width; E5M2 / E3M2 have their own names.
_ALIASES = {"fp8": "fp8_e4m3", "float8e4m3fn": "fp8_e4m3", "float8_e4m3fn": "fp8_e4m3",
            "float8e5m2": "fp8_e5m2", "float8_e5m2": "fp8_e5m2", "float4e2m1": "fp4_e2m1",
            "float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float32": "fp32", "float": "fp32",
            "mxfp8": "mxfp8_e4m3", "mxfp6": "mxfp6_e2m3"}


def get_format(name) -> Format:
    """Format by name: ``int2..int64``, ``uint2..uint64``, a float name, an MX name, or an alias
    (an ONNX element type spelling). A format object is returned unchanged."""
    if isinstance(name, (IntFormat, FloatFormat, MXFormat)):
        return name
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    for prefix, signed in (("uint", False), ("int", True)):
        if key.startswith(prefix) and key[len(prefix):].isdigit() and 2 <= int(key[len(prefix):]) <= 64:
            return IntFormat(int(key[len(prefix):]), signed)
    if key in FLOATS:
        return FLOATS[key]
    if key in MX:
        return MX[key]
    known = ["int2..int64", "uint2..uint64", *FLOATS, *MX, *_ALIASES]
    raise WorkloadError(f"unknown number format {name!r}; known: {', '.join(known)}")


def int_format(name) -> IntFormat | None:
    """The integer format of a name or format, None for every other format or an unknown name."""
    try:
        fmt = get_format(name)
    except WorkloadError:
        return None
    return fmt if isinstance(fmt, IntFormat) else None
