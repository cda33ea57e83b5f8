"""Softmax on an NPU without an exponent unit: the chain of NPU operations its compiler lowers it to.

Arm Ethos-U has no Softmax operation. Vela rewrites an 8-bit (int8 / uint8) Softmax into 31 NPU
operations (nxp-imx/ethos-u-vela, ethosu/vela/softmax.py, ``get_graph_8bit`` @ 5ff4cd12, passes 0-30):

- over every element: PASS 1 Sub (x - max) with the exp lookup table in the output stage (int8 in,
  int32 out), PASS 2 SHR, PASS 29 Mul by the per-row scale, PASS 30 SHR to the int8 output;
- reductions over the Softmax axis: PASS 0 a depthwise max-pool (the row maximum), PASS 3 a
  reduce-sum of the exponentials;
- 25 operations on one int32 value per row (PASSES 4-28): the count-leading-zeros headroom, shifts
  and three Newton-Raphson steps of the reciprocal of the sum (1/(1+x)).

Each is an operation of its own in the command stream: issued, and waited for, one after another
(every one depends on the one before). ``VELA_INT8_SOFTMAX`` lists them with the operands each reads
and writes, so the bytes and the operation count of a Softmax of ``elements`` values in ``rows`` rows
follow. Output-stage cycles per element are Vela's table for the 256-MAC configurations
(architecture_features.py ``_generate_output_perf_tables``, Ethos-U55-256 / U65-256:
output_cycles_per_elem (0.625, 1.125, 0.5, 0.375, 0.5, 0.75, 0.125, 0.25), LUT activation 1.0), picked
as ``_estimate_output_cycles_per_element`` does: an elementwise op on 32-bit inputs takes index 0
(binary) or 1 (unary); the int8 Sub takes the LUT's 1.0; the two reductions are costed at the array's
fastest output rate (index 6, 0.125), an approximation of Vela's pooling / reduce-sum estimate.
"""
from __future__ import annotations

from dataclasses import dataclass

ALL, ROW = "all", "row"  # an operand over every element, or one value per row


@dataclass(frozen=True)
class NpuPass:
    name: str
    reads: tuple[tuple[str, int], ...]  # (extent, bytes per element) of each tensor operand read
    write: tuple[str, int]  # (extent, bytes per element) written
    cycles_per_elem: float  # cycles per element of its largest operand (the written one, or a reduction's input)


def _row_op(name: str, row_operands: int, unary: bool = False) -> NpuPass:
    """One of PASSES 4-28: int32 in and out, one value per row; scalar constants are not tensors."""
    return NpuPass(name, ((ROW, 4),) * row_operands, (ROW, 4), 1.125 if unary else 0.625)


_NEWTON_STEP = (_row_op("mul", 2), _row_op("sub", 1), _row_op("mul", 2), _row_op("mul", 1), _row_op("add", 2))
VELA_INT8_SOFTMAX: tuple[NpuPass, ...] = (
    NpuPass("maxpool", ((ALL, 1),), (ROW, 1), 0.125),  # PASS 0: the row maximum
    NpuPass("sub_exp_lut", ((ALL, 1), (ROW, 1)), (ALL, 4), 1.0),  # PASS 1: x - max through the exp LUT
    NpuPass("shr", ((ALL, 4),), (ALL, 4), 0.625),  # PASS 2
    NpuPass("reduce_sum", ((ALL, 4),), (ROW, 4), 0.125),  # PASS 3
    _row_op("clz", 1, unary=True),  # PASS 4
    _row_op("sub", 1), _row_op("sub", 1), _row_op("shl", 2), _row_op("sub", 1),  # PASSES 5-8
    _row_op("shl", 1), _row_op("add", 1), _row_op("mul", 1), _row_op("add", 1),  # PASSES 9-12
    *_NEWTON_STEP, *_NEWTON_STEP, *_NEWTON_STEP,  # PASSES 13-27: three Newton-Raphson steps
    _row_op("mul", 1),  # PASS 28
    NpuPass("mul", ((ALL, 4), (ROW, 4)), (ALL, 4), 0.625),  # PASS 29: exp x reciprocal
    NpuPass("shr", ((ALL, 4), (ROW, 4)), (ALL, 1), 0.625),  # PASS 30: to the int8 output
)
EXP_LUT_BYTES = 256 * 4  # PASS 1's table: 256 int32 entries, copied into the NPU before the pass


@dataclass(frozen=True)
class Lowering:
    operations: int
    bytes_read: int  # tensor operands, every pass (the lookup table apart)
    bytes_written: int
    lut_bytes: int
    cycles: float  # output-stage cycles, all passes


def lowered_softmax(elements: int, rows: int, passes: tuple[NpuPass, ...] = VELA_INT8_SOFTMAX) -> Lowering:
    """Operations, bytes and output-stage cycles of an 8-bit Softmax of ``elements`` values in ``rows`` rows."""
    extent = {ALL: elements, ROW: rows}
    read = sum(extent[e] * b for p in passes for e, b in p.reads)
    written = sum(extent[p.write[0]] * p.write[1] for p in passes)
    cycles = sum(max(extent[e] for e, _ in (*p.reads, p.write)) * p.cycles_per_elem for p in passes)
    return Lowering(len(passes), read, written, EXP_LUT_BYTES, cycles)
