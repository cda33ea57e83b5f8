"""Work a software stack adds to a node beyond its own kernel, decided over the whole graph.

- ``softmax_lowering``: an 8-bit Softmax that the compiler rewrites into a chain of NPU operations
  (Vela on Arm Ethos-U, qsim.cost.npu_softmax): 30 more operations, their int32 intermediates and the
  exp lookup table, and their output-stage time in place of the Softmax's vector-op count.
- ``channels_last_int8``: onnxruntime's NHWC transformer runs 8-bit convolutions, concatenations and
  average pools (QLinearConv, QLinearConcat, QLinear(Global)AveragePool) channels-last. Elementwise ops
  (Add, Relu, Quantize) take either layout; every other op (max-pools left in float, Reshape /
  Flatten, Gemm, Softmax, LRN) and the graph's inputs and outputs are NCHW. Each uint8 tensor that
  crosses between the two gets one Transpose kernel (reading and writing it once, one byte per
  element), charged to the node on the far side; a tensor is transposed once however many consumers
  share the converted copy.
  ``layout_transpose_ns_per_element`` (measured by ``qsim calibrate``) times it; without it, the
  bytes are timed at the activations' bandwidth.
- ``float_islands``: 8-bit ops the runtime runs in float. onnxruntime's quantizer leaves MaxPool of
  models below opset 12 in float, between a DequantizeLinear and a QuantizeLinear, and its NCHWc
  transformer wraps the float pool in a ReorderInput and a ReorderOutput: five kernels where the
  graph shows one. With N input and M output elements they read N (u8) + 4N + 4N + 4M + 4M bytes and
  write 4N + 4N + 4M + 4M + M: 16N + 16M bytes beyond the op's own N + M. Their time is the measured
  nanoseconds per input element of that chain (``qsim calibrate``: DequantizeLinear -> MaxPool 3x3/2
  -> QuantizeLinear), in place of the op's own compute time; that rate covers the float traffic, which
  is counted but not timed again at a bandwidth. An old-opset residual Sum (an Add with a float output
  in the graph) is a float Add; each input an integer kernel wrote comes through a DequantizeLinear of
  its own (an input from a float op, e.g. the float Relu after the previous Sum, does not). With
  dequantized inputs of sum N_d elements, all inputs sum N and M outputs, the kernels move N_d + 4N_d
  (dequantize) + 4N + 4M (the float Add) bytes where qsim's row counts N + M: 5N_d + 3N + 3M more, one
  more kernel per dequantized input, and M x (float Add ns) + N_d x (dequantize ns), both measured,
  in place of the Add's time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from qsim.cost.npu_softmax import lowered_softmax
from qsim.ir.registry import CostClass, get_op

# onnxruntime's NHWC kernels at 8 bits: QLinearConv, QLinearConcat, QLinearGlobalAveragePool, QLinearAveragePool
CHANNELS_LAST_OPS = ("Conv", "Concat", "GlobalAvgPool", "AvgPool")
FLOAT_ISLAND_KERNELS = 5  # DequantizeLinear, ReorderInput, the float op, ReorderOutput, QuantizeLinear


@dataclass(frozen=True)
class StackWork:
    launches: int = 0  # kernels beyond the node's own
    bytes: int = 0  # bytes those kernels move beyond the node's own operands
    timed_bytes: int = 0  # of those, the bytes timed at the memory's bandwidth (not covered by a measured rate)
    compute_s: float | None = None  # replaces the node's compute time (a lowered Softmax, a float island)
    added_s: float = 0.0  # the measured time of added serial kernels (layout transposes)
    transposed: tuple[str, ...] = ()  # tensors whose layout transpose is charged to this node


def stack_work(graph, bits: Callable, profile) -> dict[str, StackWork]:
    """Per node name, what the profile's stack adds; ``bits(node)`` is the node's activation width."""
    stack = profile.stack
    if stack is None:
        return {}
    work: dict[str, StackWork] = {}
    if stack.channels_last_int8:
        for name, tensors in layout_transposes(graph, bits).items():
            elements = sum(graph.tensor(t).numel for t in tensors)
            ns = stack.layout_transpose_ns_per_element
            work[name] = StackWork(len(tensors), 2 * elements, 0 if ns else 2 * elements, None,
                                   elements * (ns or 0.0) * 1e-9, tuple(tensors))
    for node in graph.nodes():
        own = _own_work(graph, node, bits(node), profile)
        if own is not None:
            extra = work.get(node.name, StackWork())
            work[node.name] = StackWork(extra.launches + own.launches, extra.bytes + own.bytes,
                                        extra.timed_bytes + own.timed_bytes, own.compute_s, extra.added_s,
                                        extra.transposed)
    return work


def _own_work(graph, node, activation_bits: int, profile) -> StackWork | None:
    """A lowered Softmax or a float island: the node's own kernel replaced by several."""
    stack = profile.stack
    if activation_bits != 8:
        return None  # Vela's int16 Softmax is another lowering; islands are the 8-bit graphs' float ops
    n_in, n_out = graph.tensor(node.inputs[0]).numel, graph.tensor(node.outputs[0]).numel
    if node.op == "Softmax" and stack.softmax_lowering is not None:
        shape = graph.tensor(node.inputs[0]).shape
        low = lowered_softmax(n_in, n_in // shape[int(node.attrs.get("axis", -1)) % len(shape)])
        moved = low.bytes_read + low.bytes_written + low.lut_bytes - n_in - n_out
        return StackWork(low.operations - 1, moved, moved, low.cycles / profile.clock_hz)
    if node.op == "MaxPool" and "MaxPool" in stack.float_islands:  # the measured rate covers the float traffic
        return StackWork(FLOAT_ISLAND_KERNELS - 1, 16 * (n_in + n_out), 0, n_in * stack.float_islands["MaxPool"] * 1e-9)
    if node.op == "Add" and "Add" in stack.float_islands and graph.tensor(node.outputs[0]).dtype.startswith("float"):
        n_all = sum(graph.tensor(t).numel for t in node.inputs)
        n_dq = sum(graph.tensor(t).numel for t in node.inputs if _integer_kernel_output(graph, t))
        if n_dq:
            k_dq = sum(1 for t in node.inputs if _integer_kernel_output(graph, t))
            seconds = (n_out * stack.float_islands["Add"] + n_dq * stack.dequantize_ns_per_element) * 1e-9
            return StackWork(k_dq, 5 * n_dq + 3 * n_all + 3 * n_out, 0, seconds)
    return None


def _integer_kernel_output(graph, tensor: str) -> bool:
    """An 8-bit tensor an integer kernel wrote: a float op reading it needs a DequantizeLinear first. The
    output of an op that itself reads float (a float Relu after the Sum, which the importer types as the
    8-bit tensor it is quantized to) is still float in the runtime."""
    producer = graph.producer(tensor)
    if producer is None or graph.tensor(tensor).dtype not in ("uint8", "int8"):
        return False
    return not any(graph.tensor(t).dtype.startswith("float") for t in producer.inputs)


def layout_transposes(graph, bits: Callable) -> dict[str, list[str]]:
    """Per node, the tensors whose NCHW <-> NHWC transpose is charged to it (see the module docstring)."""
    nhwc: dict[str, bool] = {t: False for t in graph.inputs}  # tensor -> held channels-last
    done: set[str] = set()
    charged: dict[str, list[str]] = {}

    def convert(node_name: str, tensors) -> None:
        for t in tensors:
            if t not in done:
                done.add(t)
                charged.setdefault(node_name, []).append(t)

    for node in graph.nodes():
        ins = [t for t in node.inputs if t in nhwc]
        if node.op in CHANNELS_LAST_OPS and bits(node) == 8:
            convert(node.name, [t for t in ins if not nhwc[t]])
            layout = True
        elif get_op(node.op).cost_class is CostClass.ELEMENTWISE:
            layout = any(nhwc[t] for t in ins)  # takes its inputs' layout; a mixed input is transposed
            convert(node.name, [t for t in ins if nhwc[t] != layout])
        else:
            convert(node.name, [t for t in ins if nhwc[t]])
            layout = False
        for t in node.outputs:
            nhwc[t] = layout
    for t in graph.outputs:
        if nhwc.get(t):
            convert(graph.producer(t).name, [t])
    return charged

