"""Compute time of one node on a profile's units.

Matrix work (MACs) runs on the unit of the node's compute class at ``peak x efficiency``; where the
profile has no unit for that class, the next wider class emulates it and the row is flagged
(never silently costed as native). On profiles with several parallel units (GPU SMs), output
tiles are spread in waves: a GEMM with 4 tiles on 132 SMs uses 4 of them, so the time is
``ceil(tiles / units)`` waves of one tile each; like cuBLAS's heuristics, the tile shape that
finishes first is chosen from the profile's list (small tiles fill the machine on small GEMMs).
A matrix kernel also never finishes faster than the profile's per-class minimum latency (launch
plus pipeline fill and drain, measured on the smallest GEMMs).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from qsim.errors import QsimError
from qsim.hw.profile import Profile
from qsim.ir.registry import numel
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


def gemm_view(graph, node) -> tuple[int, int] | None:
    """(rows, cols) of the output matrix a matrix op produces, for tile/wave accounting."""
    out = graph.tensor(node.outputs[0]).shape
    if node.op == "Conv":  # NCHW: columns are output channels
        return numel(out) // out[1], out[1]
    if node.op in ("Gemm", "MatMul"):
        return numel(out) // out[-1], out[-1]
    return None


def wave_factor(graph, node, profile: Profile) -> float:
    """Paid work / useful work (>= 1) with the best tile: whole waves of tiles over the units."""
    c = profile.compute
    view = gemm_view(graph, node) if c.units > 1 else None
    if view is None:
        return 1.0
    rows, cols = view
    batches = 1
    if node.op == "MatMul":
        out = graph.tensor(node.outputs[0]).shape
        batches, rows = numel(out[:-2]), out[-2]
    best = float("inf")
    for tm, tn in c.tiles:
        tiles = batches * ceil(rows / tm) * ceil(cols / tn)
        # every unit runs ceil(tiles/units) tiles of tm x tn; useful work is rows x cols
        paid = ceil(tiles / c.units) * c.units * tm * tn
        best = min(best, paid / (batches * rows * cols))
    return best


def is_depthwise(graph, node) -> bool:
    if node.op != "Conv":
        return False
    groups = int(node.attrs.get("groups", 1))
    return groups > 1 and groups == graph.tensor(node.inputs[0]).shape[1]


def compute_seconds(macs: int, vector_ops: int, unit: str, profile: Profile, waves: float = 1.0,
                    depthwise: bool = False) -> float:
    c = profile.compute
    eff = c.depthwise_efficiency.get(unit, c.efficiency[unit]) if depthwise else c.efficiency[unit]
    matrix = macs / (c.macs_per_cycle[unit] * eff * profile.clock_hz) * waves if macs else 0.0
    vector = vector_ops / (c.vector_ops_per_cycle * profile.clock_hz)
    return max(matrix, vector) if c.vector_overlaps_matrix else matrix + vector
