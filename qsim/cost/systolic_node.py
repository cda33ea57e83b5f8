"""A graph node on a profile's systolic array: the dataflow model with the profile's SRAMs and DRAM port.

The array (``systolic:`` in the profile, ``qsim.hw.systolic``) gives rows, columns, dataflow, the
three double-buffered SRAMs and the memory behind each operand's DRAM port. A Conv, Gemm or
MatMul lowers to one GEMM per group (or per batch matrix) and runs through ``systolic_gemm``:
folds, fill and drain are the node's compute time; the cycles its SRAMs wait on DRAM are its
stall time, which the cost model counts as memory time on the port's memory.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from qsim.cost.systolic import SystolicArray, systolic_gemm
from qsim.cost.systolic_memory import stall_cycles
from qsim.hw.profile import Profile
from qsim.ir.registry import numel

ARRAY_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class ArrayTime:
    compute_s: float  # folds, fill and drain
    stall_s: float  # waiting for DRAM: SRAM re-fetches and a port slower than the array consumes


def word_bytes(compute_class: str) -> int:
    """Bytes per operand word of a compute class (``int8`` -> 1, ``fp16`` -> 2; sub-byte classes
    take a whole byte, as the array's SRAM words do)."""
    bits = int(re.search(r"\d+$", compute_class).group())
    return max(1, math.ceil(bits / 8))


def array_of(profile: Profile, compute_class: str) -> SystolicArray:
    sys = profile.systolic
    return SystolicArray(sys.rows, sys.cols, sys.dataflow, sys.ifmap_sram_kib, sys.filter_sram_kib,
                         sys.ofmap_sram_kib, dram_bytes_per_cycle=sys.dram_bytes_per_s / profile.clock_hz,
                         word_bytes=word_bytes(compute_class))


def node_gemms(graph, node) -> tuple[tuple[int, int, int, int], int]:
    """((M, N, K, ifmap words), how many times) for one Conv / Gemm / MatMul node."""
    out = graph.tensor(node.outputs[0]).shape
    x = graph.tensor(node.inputs[0]).shape
    if node.op == "Conv":
        kernel = node.attrs["kernel"]
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        groups = int(node.attrs.get("groups", 1))
        # The ifmap SRAM holds the raw feature map of one group; padding is generated, not fetched.
        return (out[0] * out[2] * out[3], out[1] // groups, kh * kw * x[1] // groups, numel(x) // groups), groups
    m, n, k = (numel(out) // out[-1], out[-1], x[-1]) if node.op == "Gemm" else (out[-2], out[-1], x[-1])
    return (m, n, k, m * k), (1 if node.op == "Gemm" else numel(out[:-2]))


def array_time(graph, node, profile: Profile, compute_class: str) -> ArrayTime | None:
    """Compute and stall time of a Conv/Gemm/MatMul on the profile's array; None where it has none.
    Narrower rates (int16 at a quarter of int8's MACs/cycle) stretch the folds by that ratio."""
    if profile.systolic is None or node.op not in ARRAY_OPS:
        return None
    (m, n, k, ifmap_words), count = node_gemms(graph, node)
    array = array_of(profile, compute_class)
    result = systolic_gemm(m, n, k, array=array, ifmap_words=ifmap_words)
    rate = profile.compute.macs_per_cycle[compute_class] / max(profile.compute.macs_per_cycle.values())
    stall = result.stall_cycles
    if rate != 1:  # slower folds consume the stream more slowly: fewer stalls
        stall = stall_cycles(math.ceil(result.compute_cycles / rate), result.traffic, array)[0]
    return ArrayTime(result.compute_cycles * count / rate / profile.clock_hz, stall * count / profile.clock_hz)
