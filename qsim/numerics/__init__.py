"""Number formats, quantization and requantization policies (see DESIGN.md, "Numerics")."""
from qsim.numerics.fixed import fixed_cast, fixed_raw, fixed_value
from qsim.numerics.formats import (BF16, FP4_E2M1, FP6_E2M3, FP6_E3M2, FP8_E4M3, FP8_E5M2, FP16, FP32,
                                   TF32, FixedFormat, FloatFormat, Format, IntFormat, MXFormat, Overflow,
                                   Rounding, get_format)
from qsim.numerics.minifloat import round_float
from qsim.numerics.mx import mx_cast, mx_dequantize, mx_quantize
from qsim.numerics.policies import POLICIES, Policy, PolicyName, get_policy, policy_name, requantize
from qsim.numerics.quantize import dequantize, quantize
from qsim.numerics.rounding import cast_int, float_to_int, round_to_int, rounding_shift, wrap
from qsim.numerics.tensor_quant import TensorQuant

__all__ = [
    "BF16", "FP4_E2M1", "FP6_E2M3", "FP6_E3M2", "FP8_E4M3", "FP8_E5M2", "FP16", "FP32", "TF32", "FixedFormat",
    "FloatFormat", "Format", "IntFormat", "MXFormat", "Overflow", "Rounding", "get_format", "fixed_cast",
    "fixed_raw", "fixed_value", "round_float", "mx_cast", "mx_dequantize", "mx_quantize", "POLICIES",
    "Policy", "PolicyName", "policy_name", "TensorQuant", "get_policy", "requantize", "dequantize", "quantize", "cast_int", "float_to_int",
    "round_to_int", "rounding_shift", "wrap",
]
