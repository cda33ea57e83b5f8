"""The cost model: graph x precision plan x profile -> one row per node, plus whole-model totals.

Per node: MACs, weight bytes at the node's weight format, activation bytes, compute time on the
unit of its precision (emulated where the profile lacks one), memory time per level, latency =
dispatch overhead + max(compute, slowest memory level) (a roofline), energy = MACs x energy per
MAC + vector ops x energy per op + bytes x energy per byte at each level + static power x latency.
Unary activations that follow a matrix op (Conv+ReLU) are fused, as every runtime does: they add
vector work but no memory traffic and no dispatch. Views (Reshape, Flatten) move no bytes. What an
op is (its cost class, whether it fuses, whether it is a view) comes from its registry entry.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from qsim.cost.compute import choose_unit, compute_seconds, is_depthwise, wave_factor
from qsim.cost.footprint import (activation_bits, packed_bytes, peak_activation_bytes, state_footprint,
                                 weight_bits, weight_footprint)
from qsim.cost import stack as sw
from qsim.cost.dynamic import dynamic_pass
from qsim.cost.recipes import cost_plan
from qsim.cost.stack_kernels import stack_kernels
from qsim.cost.stack_work import StackWork, stack_work
from qsim.cost.systolic_node import array_time
from qsim.cost.traffic import Operands, memory_energy_j, memory_seconds, node_traffic
from qsim.hw.profile import Profile
from qsim.ir.counts import node_counts
from qsim.ir.registry import get_op
from qsim.precision import PrecisionPlan


@dataclass(frozen=True)
class Estimate:
    layers: pd.DataFrame
    totals: dict[str, Any]


def _operands(graph, node, plan: PrecisionPlan, fused: bool, view: sw.StackView | None = None,
              resident: tuple[int, int] = (0, 0)) -> Operands:
    opdef = get_op(node.op)
    if fused or opdef.view:  # computed in registers / only the shape changes: no bytes move
        extra = (view.extra_read.get(node.name, []) if view else [])  # a fused residual Add's other operand
        return Operands(0, sum(packed_bytes(graph.tensor(t).numel, activation_bits(graph, t, plan)) for t in extra), 0)
    prec = plan.for_node(node)
    in_shapes = [graph.tensor(t).shape for t in node.inputs]
    out_shapes = tuple(graph.tensor(t).shape for t in node.outputs)
    if opdef.weights_read is not None:  # e.g. an embedding reads only the looked-up rows
        weight = packed_bytes(opdef.weights_read(in_shapes, out_shapes, node.attrs), prec.weight.storage_bits)
    else:
        weight = sum(packed_bytes(graph.tensor(t).numel, weight_bits(node.op, role, prec))
                     for role, t in node.weights.items())
    if opdef.inputs_read is not None:  # e.g. a Slice reads only the part it keeps
        inputs = packed_bytes(opdef.inputs_read(in_shapes, out_shapes, node.attrs),
                              activation_bits(graph, node.inputs[0], plan))
    else:
        inputs = sum(packed_bytes(graph.tensor(t).numel, activation_bits(graph, t, plan)) for t in node.inputs)
    outputs = sum(packed_bytes(graph.tensor(t).numel, prec.activation.storage_bits) for t in node.outputs)
    state_r = state_w = 0
    if node.state:
        bits = prec.activation.storage_bits
        read, written = opdef.state_io(in_shapes, node.attrs) if opdef.state_io else (
            sum(graph.tensor(t).numel for t in node.state.values()), 0)
        state_r, state_w = packed_bytes(read, bits), packed_bytes(written, bits)
    return Operands(weight, inputs, outputs, state_r, state_w, *resident)


def _node_row(graph, node, plan: PrecisionPlan, profile: Profile, view: sw.StackView,
              resident: dict[str, tuple[int, int]], work: StackWork | None = None) -> dict[str, Any]:
    prec = plan.for_node(node)
    counts = node_counts(graph, node)
    fused = node.name in view.fused_into
    compute_class = prec.compute if counts.macs else prec.activation.compute_class
    choice = choose_unit(compute_class, profile, node.name)
    ops = _operands(graph, node, plan, fused, view, resident.get(node.name, (0, 0)))
    dyn_ops, dyn_read = dynamic_pass(graph, node, plan, counts.macs)  # run-time min/max of the input
    if dyn_ops:
        counts = replace(counts, vector_ops=counts.vector_ops + dyn_ops)
        ops = replace(ops, input_bytes=ops.input_bytes + dyn_read)
    kind = sw.kernel_class(graph, node)
    traffic = node_traffic(ops, profile, get_op(node.op).cost_class.matrix_like)
    waves = wave_factor(graph, node, profile) if counts.macs else 1.0
    array = array_time(graph, node, profile, choice.unit) if counts.macs else None
    if array is not None:  # the dataflow model replaces peak x efficiency for matrix ops
        vector_s = compute_seconds(0, counts.vector_ops, choice.unit, profile)
        compute_s = max(array.compute_s, vector_s) if profile.compute.vector_overlaps_matrix else \
            array.compute_s + vector_s
    else:
        per_element = profile.op_s_per_element.get(node.op)  # a measured kernel replaces vector-op counting
        compute_s = compute_seconds(counts.macs, 0 if per_element else counts.vector_ops, choice.unit, profile,
                                    waves, is_depthwise(graph, node),
                                    sw.class_efficiency(profile.stack, graph, node, choice.unit,
                                                        max(t[1] for t in profile.compute.tiles))
                                    or sw.array_efficiency(profile, graph, node, choice.unit, counts.macs))
        compute_s += counts.output_elems * per_element if per_element else 0.0
    if work is not None:  # the stack's own kernels for this node (qsim.cost.stack_work)
        compute_s = (compute_s if work.compute_s is None else work.compute_s) + work.added_s
    memory_s, level = memory_seconds(traffic, profile)
    if array is not None and array.stall_s and compute_s + array.stall_s > memory_s:
        memory_s, level = compute_s + array.stall_s, profile.systolic.dram  # the array's SRAMs wait on DRAM
    memory_s /= sw.bandwidth_fraction(profile.stack, kind, choice.unit)
    # the stack's kernels beyond the node's own (qsim.cost.stack_kernels): serial, memory-bound
    kernels = stack_kernels(graph, node, profile.stack, prec.activation.storage_bits, not prec.activation.is_float)
    launches, extra_bytes = len(kernels), sum(k.bytes_moved for k in kernels)
    plain_ops = sum(not k.module_call for k in kernels)  # issued by the host at the per-op cost
    bandwidth = profile.memories[profile.activations_in].bandwidth_bytes_per_s
    stack_kernels_s = extra_bytes / (bandwidth * sw.bandwidth_fraction(profile.stack, "elementwise", choice.unit))
    if work is not None:
        launches = launches + work.launches
        memory_s += work.timed_bytes / bandwidth
    launches = 0 if fused else 1 + launches
    launch_s = profile.dispatch_s if profile.stack is None or profile.stack.kernel_launch_s is None \
        else profile.stack.kernel_launch_s
    # the kernel minimum was measured on lone kernels, launch included
    floor = sw.kernel_floor(profile, kind, choice.unit) - launch_s if counts.macs else 0.0
    # an in-order core (a microcontroller) stalls on its loads: memory time adds to compute time
    overlap = profile.stack is None or profile.stack.memory_overlaps_compute
    latency = launches * launch_s + max(compute_s if overlap else compute_s + memory_s, memory_s, floor) + \
        stack_kernels_s
    if fused and profile.compute.vector_overlaps_matrix:
        latency = 0.0  # applied in the host's output stage, which runs beside its MAC array
    e_compute = (counts.macs * profile.mac_pj[choice.unit] + counts.vector_ops * profile.vector_op_pj) * 1e-12
    e_memory = memory_energy_j(traffic, profile)
    e_static = profile.static_w * latency
    row = {
        "name": node.name, "op": node.op, "weight_format": prec.weight.name, "activation_format": prec.activation.name,
        "compute_unit": choice.unit, "emulated": choice.emulated, "fused": fused,
        "fused_into": view.fused_into.get(node.name, ""), "kernel_class": kind, "launches": launches,
        "stack_op_launches": 0 if fused else plain_ops,
        "stack_kernels": " ".join(k.name for k in kernels),  # what the stack launches beside the node's own kernel
        "macs": counts.macs, "vector_ops": counts.vector_ops, "params": counts.params,
        "weight_bytes": ops.weight_bytes, "input_bytes": ops.input_bytes, "output_bytes": ops.output_bytes,
        "state_bytes": ops.state_read_bytes + ops.state_write_bytes,
        "compute_s": compute_s, "memory_s": memory_s, "stack_kernels_s": stack_kernels_s,
        "bound": "memory" if memory_s > compute_s else "compute", "bound_level": level if memory_s > compute_s else "",
        "latency_s": latency, "energy_j": e_compute + e_memory + e_static,
        "energy_compute_j": e_compute, "energy_memory_j": e_memory, "energy_static_j": e_static,
    }
    for name, (r, w) in traffic.items():
        row[f"{name}_bytes"] = r + w
    return row


def _resident(graph, plan: PrecisionPlan, profile: Profile, view: sw.StackView) -> dict[str, tuple[int, int]]:
    """Per kernel, (input bytes, output bytes) that stay in the on-chip buffer."""
    stack = profile.stack
    if stack is None or not (stack.l2_residency or stack.cascading):
        return {}
    in_bytes = lambda node, t: packed_bytes(graph.tensor(t).numel, activation_bits(graph, t, plan))  # noqa: E731
    out_bytes = lambda node: _operands(graph, node, plan, False).output_bytes  # noqa: E731
    capacity = profile.memories[profile.buffer].capacity_bytes
    if stack.cascading:
        return sw.cascaded_bytes(graph, view, in_bytes, out_bytes, capacity)
    return {k: (v, 0) for k, v in sw.resident_input_bytes(graph, view, in_bytes, out_bytes, capacity).items()}


def estimate_graph(graph, plan: PrecisionPlan, profile: Profile) -> Estimate:
    graph = sw.executed_graph(graph, profile.stack)  # as the runtime runs it (BatchNorm unfolded or not)
    plan = cost_plan(graph, plan)  # a plan's keep / dynamic recipes change formats and passes
    view = sw.fusion_map(graph, profile.stack)
    resident = _resident(graph, plan, profile, view)
    work = stack_work(graph, lambda n: plan.for_node(n).activation.storage_bits, profile)
    rows = [_node_row(graph, n, plan, profile, view, resident, work.get(n.name)) for n in graph.nodes()]
    layers = pd.DataFrame(rows)
    weights = weight_footprint(graph, plan)
    peak, peak_at = peak_activation_bytes(graph, plan)
    state = state_footprint(graph, plan)
    need = {name: 0 for name in profile.memories}
    need[profile.weights_in] += weights
    need[profile.activations_in] += peak + state
    totals = {
        "macs": int(layers["macs"].sum()), "params": int(graph.summary()["params"]), "weight_bytes": weights,
        "peak_activation_bytes": peak, "peak_activation_at": peak_at, "state_bytes": state,
        # once per inference (host -> accelerator hand-off): latency, and static power meanwhile
        # the device waits for a host that issues kernels more slowly than they run (eager launch)
        "latency_s": max(float(layers["latency_s"].sum()), sw.host_seconds(profile.stack, layers)) + profile.invoke_s,
        "kernels": int(layers["launches"].sum()),
        "energy_j": float(layers["energy_j"].sum()) + profile.static_w * profile.invoke_s,
        "emulated_nodes": int(layers["emulated"].sum()),
        "compute_units": sorted(set(layers["compute_unit"])),  # the compute classes the estimate ran at
        "fits": {name: need[name] <= mem.capacity_bytes for name, mem in profile.memories.items()},
        "memory_need_bytes": need,
    }
    layers.attrs["totals"] = totals
    return Estimate(layers, totals)
