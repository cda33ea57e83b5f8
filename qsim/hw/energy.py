"""One per-precision energy table, used by every profile that states its process node.

Only arithmetic is scaled here. Memory energies (pJ per byte per level) stay explicit in each
profile with their source; the shipped ones are 45 nm SRAM/DRAM figures, upper bounds at newer nodes.

Anchors (pJ per operation):
* 45 nm, Horowitz, "Computing's energy problem", ISSCC 2014: int8 add 0.03, int8 mult 0.2,
  int32 add 0.1, int32 mult 3.1, fp16 add 0.4, fp16 mult 1.1, fp32 add 0.9, fp32 mult 3.7.
* 7 nm, Jouppi et al., "Ten lessons from three generations ...", ISCA 2021: int8 mult 0.07,
  fp16 mult 0.34, fp32 mult 1.31.

Scaling rules (stated, not measured):
1. A MAC costs one multiply at the operand format plus one add at the accumulator format
   (int32 for integer MACs, fp32 for float MACs).
2. Integer multipliers scale with bits squared (Horowitz: int32 mult 3.1 ~ 16 x int8's 0.2), so
   int4 = int8 / 4 and int16 = int8 x 4.
3. Float multipliers scale with (mantissa bits + 1) squared from the fp16 anchor (11 bits):
   bf16 (8) = 0.53 x fp16, fp8 E4M3 (4) = 0.13 x fp16; tf32 has fp16's 10-bit mantissa. fp32 uses
   its own anchor.
4. Between 45 nm and 7 nm, each operation scales log-linearly in the node by the ratio of its
   class's 7 nm to 45 nm multiply (integer: 0.35, fp16 family: 0.31, fp32: 0.354); adds scale
   with the multiply of their own type (int32 add with int8, fp32 add with fp32).
"""
from __future__ import annotations

from math import log

H45 = {"int8_add": 0.03, "int8_mult": 0.2, "int32_add": 0.1, "int32_mult": 3.1, "fp16_add": 0.4, "fp16_mult": 1.1,
       "fp32_add": 0.9, "fp32_mult": 3.7}
J7 = {"int8_mult": 0.07, "fp16_mult": 0.34, "fp32_mult": 1.31}
SCALE_7NM = {"int": J7["int8_mult"] / H45["int8_mult"], "fp16": J7["fp16_mult"] / H45["fp16_mult"],
             "fp32": J7["fp32_mult"] / H45["fp32_mult"]}
FLOAT_MANTISSA = {"fp16": 11, "bf16": 8, "tf32": 11, "fp8": 4, "fp6": 3, "fp4": 2}
INT_BITS = {"int2": 2, "int4": 4, "int8": 8, "int16": 16, "int32": 32}


def _node_factor(family: str, process_nm: float) -> float:
    """1 at 45 nm, the 7 nm ratio at 7 nm, log-linear in the node between (and beyond)."""
    t = log(45 / process_nm) / log(45 / 7)
    return SCALE_7NM[family] ** t


def mac_pj(compute_class: str, process_nm: float) -> float:
    """Energy of one multiply-accumulate of ``compute_class`` at ``process_nm``."""
    if compute_class in INT_BITS:
        mult = H45["int8_mult"] * (INT_BITS[compute_class] / 8) ** 2
        return (mult + H45["int32_add"]) * _node_factor("int", process_nm)
    if compute_class == "fp32":
        return (H45["fp32_mult"] + H45["fp32_add"]) * _node_factor("fp32", process_nm)
    if compute_class in FLOAT_MANTISSA:
        mult = H45["fp16_mult"] * (FLOAT_MANTISSA[compute_class] / 11) ** 2
        return mult * _node_factor("fp16", process_nm) + H45["fp32_add"] * _node_factor("fp32", process_nm)
    raise ValueError(f"no energy rule for compute class {compute_class!r}")


def vector_op_pj(process_nm: float) -> float:
    """One elementwise operation: an fp32 add (activations, normalisation, softmax)."""
    return H45["fp32_add"] * _node_factor("fp32", process_nm)


def energy_table(process_nodes=(45, 28, 16, 7)) -> dict[str, dict[float, float]]:
    classes = list(INT_BITS) + ["fp8", "bf16", "fp16", "tf32", "fp32"]
    return {c: {nm: round(mac_pj(c, nm), 4) for nm in process_nodes} for c in classes}
