"""Bytes each node moves at each memory level.

Weights are read from the profile's weight memory, activations and state (KV cache) from and to
the activation memory. Data held off chip passes through the on-chip ``buffer`` (written into it,
read out of it). When a matrix op's working set (weights + inputs + outputs) does not fit the
buffer, it is tiled: either the weights are split into buffer-sized chunks and the inputs are
re-read once per chunk, or the other way round — whichever moves fewer bytes (the re-fetch a
blocked GEMM pays). Re-fetch applies only to operands whose home is off chip.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from qsim.hw.profile import Profile


@dataclass(frozen=True)
class Operands:
    weight_bytes: int  # weight bytes the node reads per call
    input_bytes: int
    output_bytes: int
    state_read_bytes: int = 0
    state_write_bytes: int = 0
    resident_input_bytes: int = 0  # inputs still in the on-chip buffer: not read from their home again
    resident_output_bytes: int = 0  # outputs kept in the on-chip buffer (a cascade): not written to their home


def refetch_factors(ops: Operands, buffer_bytes: int, weights_off_chip: bool, acts_off_chip: bool) -> tuple[int, int]:
    """(times weights are read, times inputs are read) for a tiled matrix op."""
    working_set = ops.weight_bytes + ops.input_bytes + ops.output_bytes
    if working_set <= buffer_bytes or not (weights_off_chip or acts_off_chip) or ops.weight_bytes == 0:
        return 1, 1
    half = max(buffer_bytes // 2, 1)
    input_passes = ceil(ops.weight_bytes / half)  # weights resident in chunks, inputs streamed per chunk
    weight_passes = ceil(ops.input_bytes / half)  # inputs resident in chunks, weights streamed per chunk
    cost_a = ops.weight_bytes + ops.input_bytes * input_passes if acts_off_chip else ops.weight_bytes
    cost_b = ops.weight_bytes * weight_passes + ops.input_bytes if weights_off_chip else ops.input_bytes
    return (1, input_passes) if cost_a <= cost_b else (weight_passes, 1)


def node_traffic(ops: Operands, profile: Profile, matrix_op: bool) -> dict[str, list[int]]:
    """{memory name: [bytes read, bytes written]} for one call of a node."""
    mems = profile.memories
    w_home, a_home, buf = profile.weights_in, profile.activations_in, profile.buffer
    w_off, a_off = not mems[w_home].on_chip, not mems[a_home].on_chip
    w_passes, in_passes = refetch_factors(ops, mems[buf].capacity_bytes, w_off, a_off) if matrix_op else (1, 1)
    traffic: dict[str, list[int]] = {name: [0, 0] for name in mems}
    weights = ops.weight_bytes * w_passes
    reads = ops.input_bytes * in_passes + ops.state_read_bytes
    writes = ops.output_bytes + ops.state_write_bytes
    traffic[w_home][0] += weights
    traffic[a_home][0] += reads - min(ops.resident_input_bytes, ops.input_bytes) * (buf != a_home)
    traffic[a_home][1] += writes - min(ops.resident_output_bytes, ops.output_bytes) * (buf != a_home)
    if buf != w_home:  # staged through the buffer: written in, read out by the compute units
        traffic[buf][0] += weights
        traffic[buf][1] += weights
    if buf != a_home:
        traffic[buf][0] += reads + writes
        traffic[buf][1] += reads + writes
    return traffic


def memory_seconds(traffic: dict[str, list[int]], profile: Profile) -> tuple[float, str]:
    """Time of the slowest memory level (levels transfer concurrently) and its name."""
    best, level = 0.0, ""
    for name, (r, w) in traffic.items():
        t = (r + w) / profile.memories[name].bandwidth_bytes_per_s
        if t > best:
            best, level = t, name
    return best, level


def memory_energy_j(traffic: dict[str, list[int]], profile: Profile) -> float:
    pj = sum(r * profile.memories[n].read_pj_per_byte + w * profile.memories[n].write_pj_per_byte
             for n, (r, w) in traffic.items())
    return pj * 1e-12
