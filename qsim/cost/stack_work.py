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
- ``composed_transpose_ns_per_element``: a channel shuffle (Reshape -> Transpose -> Reshape) on an 8-bit
  tensor held channels-last. onnxruntime's transpose optimizer pushes the NHWC -> NCHW layout change
  through the Reshape and folds it into the shuffle's Transpose: ShuffleNet's ``[1, g, C/g, H, W]``,
  perm ``(0, 2, 1, 3, 4)`` (whole H x W planes move: block copies) becomes ``[1, H, W, g, C/g]``, perm
  ``(0, 4, 3, 1, 2)``, which moves the innermost axis and runs element by element, about 100 times
  slower per element. The Reshape is then charged no layout transpose of its own; the Transpose's
  time is its elements at the measured rate (``qsim calibrate``: that 5-D uint8 Transpose alone).
- ``im2col_gemm``: onnxruntime's x86 QLinearConv runs its direct convolution kernel (indirect
  buffer, requantization fused) only for one group with input and output channels in multiples of
  ``channel_multiple`` (4 with AVX-512 and AVX-VNNI, 8 with AVX2) and at least ``min_output_channels``
  (16) output channels; depthwise convs have kernels of their own. Every other 8-bit conv (a stem with
  3 input channels, a grouped conv) runs an im2col into a buffer, the u8 x s8 GEMM (MlasGemm, per
  group) into an int32 buffer, and a requantize pass. With P output pixels, G groups, kh x kw kernel
  positions, K = C/G x kh x kw and O output elements its time is ``P x K x C_out / gemm rate + P x G
  x kh x kw x position_ns + O x output_ns``. The im2col copies C/G contiguous bytes per pixel and
  kernel position (3 in a stem, so the copy's fixed cost is what counts), and every output goes
  through an int32 buffer and a requantize pass: these dominate a stem, whose MACs per output are few
  (27 for 3x3), which is why its rate grows with the kernel. The GEMM rate is MatMulInteger's; the
  two per-element costs are fitted by ``qsim calibrate`` on lone stem convolutions.
- ``conv_output_ns_per_element``: onnxruntime's direct 8-bit conv (MLAS ConvSym) requantizes every
  output from its int32 accumulators to uint8 after the MACs: beyond the MACs at the profile's int8
  rate, each output element of a conv that runs the direct kernel (not depthwise, not im2col GEMM)
  costs this (fitted by ``qsim calibrate`` with the rate on lone 3x3 and 1x1 convs: a 1x1 conv with 64
  input channels has 64 MACs per output, a 3x3 with 256 has 2,304, and they run at 650 and 850 GOPS).
- ``conv_kernel_us``: every 8-bit conv kernel (direct, im2col GEMM or depthwise) pays a fixed cost
  beyond its work, measured as a tiny QLinearConv's kernel time (5-9 us here, where the per-node
  dispatch of a 1-element Relu chain is 0.2-0.4 us); the conv rates above are fitted net of it.
- ``float_islands: BatchNorm``: a BatchNormalization the quantizer could not fold into a conv (DenseNet's
  pre-activation BatchNorm after a Concat) stays in float between a DequantizeLinear and a
  QuantizeLinear: three kernels moving N + 4N, 4N + 4N and 4N + N bytes (16N beyond the row's 2N), timed
  by the measured nanoseconds per element of that chain.
- ``broadcast_ns_per_element``, ``broadcast_ns_per_channel``: an 8-bit multiply or add by a per-channel
  constant (QLinearMul / QLinearAdd broadcasting a ``[C, 1, 1]`` tensor: a BatchNorm written as Mul and
  Add) runs onnxruntime's broadcasting loop: one call of the vector kernel per N x C plane of H x W
  elements with the channel's constant as a scalar, so its time is output elements x the per-element
  rate + planes x the per-channel rate (both fitted by ``qsim calibrate`` on lone kernels from 64 x
  56 x 56 to 1024 x 7 x 7: at 7 x 7 the per-plane cost is most of the time).
- ``concat_ns_per_element``: an 8-bit Concat (QLinearConcat) whose inputs have their own scales (as
  after ``quantize_static``) maps every input byte through a 256-entry requantization table; held
  channels-last it writes each input's channels pixel by pixel. Timed per output element at the rate
  measured on a QLinearConcat of two QLinearConv outputs (channels-last, as in a model).
- ``average_pool_ns_per_tap``: onnxruntime's 8-bit windowed average pool (QLinearAveragePool, NHWC)
  is a scalar loop over each output's window: its time is output elements x window elements at the
  measured rate (``qsim calibrate``: a lone 3x3 / 2 pool), in place of vector-op counting.
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
    composed: set[str] = set()
    if stack.channels_last_int8:
        charged, composed = layout_walk(graph, bits)
        for name, tensors in charged.items():
            elements = sum(graph.tensor(t).numel for t in tensors)
            ns = stack.layout_transpose_ns_per_element
            work[name] = StackWork(len(tensors), 2 * elements, 0 if ns else 2 * elements, None,
                                   elements * (ns or 0.0) * 1e-9, tuple(tensors))
    for node in graph.nodes():
        own = _own_work(graph, node, bits(node), profile, node.name in composed)
        if own is not None:
            extra = work.get(node.name, StackWork())
            work[node.name] = StackWork(extra.launches + own.launches, extra.bytes + own.bytes,
                                        extra.timed_bytes + own.timed_bytes, own.compute_s,
                                        extra.added_s + own.added_s, extra.transposed)
    return work


def _own_work(graph, node, activation_bits: int, profile, composed: bool = False) -> StackWork | None:
    """A lowered Softmax, a float island, a composed transpose or an im2col GEMM conv: the node's own
    kernel replaced by several, or timed by a measured rate."""
    stack = profile.stack
    if activation_bits != 8:
        return None  # Vela's int16 Softmax is another lowering; islands are the 8-bit graphs' float ops
    if not node.inputs:
        return None  # a Constant: its bytes are a weight's, no kernel of its own
    n_in, n_out = graph.tensor(node.inputs[0]).numel, graph.tensor(node.outputs[0]).numel
    if composed and stack.composed_transpose_ns_per_element:
        return StackWork(compute_s=n_in * stack.composed_transpose_ns_per_element * 1e-9)
    if node.op == "BatchNorm" and "BatchNorm" in stack.float_islands and not _behind_matrix(graph, node):
        return StackWork(2, 16 * n_in, 0, n_in * stack.float_islands["BatchNorm"] * 1e-9)
    if node.op in stack.broadcast_ns_per_element:
        shape = graph.tensor(node.outputs[0]).shape
        spans = n_out // max(int(shape[-1]) * int(shape[-2]), 1) if len(shape) >= 3 else 1  # N x C planes
        return StackWork(compute_s=(n_out * stack.broadcast_ns_per_element[node.op]
                                    + spans * stack.broadcast_ns_per_channel.get(node.op, 0.0)) * 1e-9)
    if node.op == "Concat" and stack.concat_ns_per_element:
        return StackWork(compute_s=n_out * stack.concat_ns_per_element * 1e-9)
    if node.op == "AvgPool" and stack.average_pool_ns_per_tap:
        kernel = node.attrs["kernel"]
        taps = kernel * kernel if isinstance(kernel, int) else kernel[0] * kernel[1]
        return StackWork(compute_s=n_out * taps * stack.average_pool_ns_per_tap * 1e-9)
    if node.op == "Conv" and (stack.im2col_gemm is not None or stack.conv_output_ns_per_element or stack.conv_kernel_s):
        gemm = im2col_gemm_work(graph, node, stack.im2col_gemm) if stack.im2col_gemm is not None else None
        if gemm is None and not _depthwise(graph, node):  # the direct kernel
            gemm = StackWork(added_s=n_out * stack.conv_output_ns_per_element * 1e-9)
        if gemm is None and not stack.conv_kernel_s:
            return None
        gemm = gemm or StackWork()
        return StackWork(gemm.launches, gemm.bytes, gemm.timed_bytes, gemm.compute_s,
                         gemm.added_s + stack.conv_kernel_s, gemm.transposed)
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


def _behind_matrix(graph, node) -> bool:
    """A BatchNorm right behind a conv or GEMM: folded into it (quant_pre_process, the runtime), no island."""
    producer = graph.producer(node.inputs[0])
    return producer is not None and get_op(producer.op).cost_class.matrix_like


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
    return layout_walk(graph, bits)[0]


def layout_walk(graph, bits: Callable) -> tuple[dict[str, list[str]], set[str]]:
    """The layout of every tensor in topological order: per node, the tensors whose layout transpose
    is charged to it, and the 8-bit Transposes that absorb the layout change (composed transposes)."""
    nhwc: dict[str, bool] = {t: False for t in graph.inputs}  # tensor -> held channels-last
    done: set[str] = set()
    charged: dict[str, list[str]] = {}
    composed: set[str] = set()

    def convert(node_name: str, tensors) -> None:
        for t in tensors:
            if t not in done:
                done.add(t)
                charged.setdefault(node_name, []).append(t)

    for node in graph.nodes():
        ins = [t for t in node.inputs if t in nhwc]
        cost_class = get_op(node.op).cost_class
        if node.op in CHANNELS_LAST_OPS and bits(node) == 8:
            convert(node.name, [t for t in ins if not nhwc[t]])
            layout = True
        elif cost_class is CostClass.ELEMENTWISE:
            layout = any(nhwc[t] for t in ins)  # takes its inputs' layout; a mixed input is transposed
            convert(node.name, [t for t in ins if nhwc[t] != layout])
        elif cost_class is CostClass.VIEW and len(ins) == 1 and nhwc[ins[0]] and _feeds_transposes(graph, node, bits):
            layout = True  # reshaped as it is held; the Transpose after it absorbs the layout change
        elif node.op == "Transpose" and bits(node) == 8 and len(ins) == 1 and nhwc[ins[0]] and _viewed(graph, ins[0]):
            composed.add(node.name)
            layout = False
        else:
            convert(node.name, [t for t in ins if nhwc[t]])
            layout = False
        for t in node.outputs:
            nhwc[t] = layout
    for t in graph.outputs:
        if nhwc.get(t):
            convert(graph.producer(t).name, [t])
    return charged, composed


def _viewed(graph, tensor: str) -> bool:
    """A tensor written by a view op (the Reshape before a channel shuffle's Transpose)."""
    producer = graph.producer(tensor)
    return producer is not None and get_op(producer.op).cost_class is CostClass.VIEW


def _feeds_transposes(graph, node, bits: Callable) -> bool:
    """A view op whose every consumer is an 8-bit Transpose (the first Reshape of a channel shuffle)."""
    consumers = graph.consumers(node.outputs[0])
    return bool(consumers) and all(c.op == "Transpose" and bits(c) == 8 for c in consumers) \
        and node.outputs[0] not in graph.outputs


def _depthwise(graph, node) -> bool:
    groups = int(node.attrs.get("groups", 1))
    return groups > 1 and groups == graph.tensor(node.inputs[0]).shape[1] == graph.tensor(node.outputs[0]).shape[1]


def im2col_gemm_work(graph, node, m) -> StackWork | None:
    """An 8-bit conv outside onnxruntime's direct kernel (see the module docstring); None inside it."""
    cin = graph.tensor(node.inputs[0]).shape[1]
    out = graph.tensor(node.outputs[0])
    cout, groups = out.shape[1], int(node.attrs.get("groups", 1))
    if _depthwise(graph, node):
        return None  # depthwise: a kernel of its own
    if groups == 1 and cin % m.channel_multiple == 0 and cout % m.channel_multiple == 0 \
            and cout >= m.min_output_channels:
        return None  # the direct kernel, at the profile's int8 efficiency
    kernel = node.attrs["kernel"]
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    pixels, k = out.numel // cout, cin // groups * kh * kw
    positions = pixels * groups * kh * kw  # im2col copies of C/G bytes each
    seconds = pixels * k * cout / m.gemm_macs_per_s + positions * m.position_s + out.numel * m.output_s_per_element
    im2col = 2 * pixels * groups * k if (kh, kw) != (1, 1) else 0  # written, then read by the GEMM's packing
    return StackWork(0, im2col + 8 * out.numel, 0, seconds)  # the int32 buffer: written, read back
