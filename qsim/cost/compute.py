"""Compute time of one node on a profile's units.

Matrix work (MACs) runs on the unit of the node's compute class at ``peak x efficiency``; where the
profile has no unit for that class, the next wider class emulates it and the row is flagged
(never silently costed as native). On profiles with several parallel units (GPU SMs), output
tiles are spread in waves: a GEMM with 4 tiles on 132 SMs uses 4 of them, so the time is
``ceil(tiles / units)`` waves of one tile each; like cuBLAS's heuristics, the tile shape that
finishes first is chosen from the profile's list (small tiles fill the machine on small GEMMs).
A lone matrix op also never finishes faster than the profile's per-class minimum latency (measured
on the smallest GEMMs, flat over a 64x range of work: the time to issue the op from the host), except
inside a captured graph (qsim.cost.stack.kernel_floor). A matrix-vector product (one output row: a
batch-1 decode step) runs as a GEMV with no output-row tile to pad: it streams its weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from qsim.errors import QsimError
from qsim.hw.profile import Profile
from qsim.ir.counts import node_matrix
from qsim.ir.registry import CostClass, get_op
from qsim.precision import EMULATION_ORDER


@dataclass(frozen=True)
class ComputeChoice:
    unit: str  # compute class that executes the node on this profile
    emulated: bool


def choose_unit(compute_class: str, profile: Profile, node_name: str = "") -> ComputeChoice:
    peaks = profile.compute.macs_per_cycle
    if compute_class in peaks:
        return ComputeChoice(compute_class, False)
    for wider in EMULATION_ORDER.get(compute_class, []):
        if wider in peaks:
            return ComputeChoice(wider, True)
    raise QsimError(f"profile {profile.name!r} has no unit for {compute_class} and none that can emulate it "
                    f"(it has {', '.join(peaks)}){f'; node {node_name!r}' if node_name else ''}")


def wave_factor(graph, node, profile: Profile) -> float:
    """Paid work / useful work (>= 1) with the best tile: whole waves of tiles over the units."""
    c = profile.compute
    view = node_matrix(graph, node) if c.units > 1 else None
    if view is None:
        return 1.0
    batches, rows, cols = view.batches, view.rows, view.cols
    if rows == 1:  # a matrix-vector product (batch-1 decode) runs a GEMV kernel: no output-row tile to pad
        return 1.0
    best = float("inf")
    for tm, tn in c.tiles:
        tiles = batches * ceil(rows / tm) * ceil(cols / tn)
        # every unit runs ceil(tiles/units) tiles of tm x tn; useful work is rows x cols
        paid = ceil(tiles / c.units) * c.units * tm * tn
        best = min(best, paid / (batches * rows * cols))
    return best


def is_depthwise(graph, node) -> bool:
    ins = [graph.tensor(t).shape for t in node.inputs]
    return get_op(node.op).cost_class_for(ins, node.attrs) is CostClass.DEPTHWISE


def compute_seconds(macs: int, vector_ops: int, unit: str, profile: Profile, waves: float = 1.0,
                    depthwise: bool = False, efficiency: float | None = None) -> float:
    c = profile.compute
    eff = c.depthwise_efficiency.get(unit, c.efficiency[unit]) if depthwise else c.efficiency[unit]
    eff = efficiency or eff  # the software stack's measured efficiency for this op class, when it has one
    matrix = macs / (c.macs_per_cycle[unit] * eff * profile.clock_hz) * waves if macs else 0.0
    vector = vector_ops / (c.vector_ops_per_cycle * profile.clock_hz)
    return max(matrix, vector) if c.vector_overlaps_matrix else matrix + vector
