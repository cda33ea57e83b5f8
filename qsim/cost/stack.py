"""The software stack as a graph pass: which kernels a runtime launches for a graph.

``executed_graph`` returns the graph as the runtime runs it: a stack that does not fold BatchNorm
runs it after every convolution that carries a folded one (builders mark such convs with the
attribute ``folded_batchnorm``), as a kernel of its own. ``fusion_map`` says, per node, which
kernel it was fused into: an activation into the matrix op before it, a BatchNorm folded into its
conv, a residual Add (and what follows it) into the conv epilogue that produces one of its inputs.
A fused node runs in the producer's registers: no launch, no bytes beside a residual Add's second
operand. Unfused nodes are kernels of their own: launched, and memory-bound at the stack's
measured fraction of bandwidth for their op class (``kernel_class``). A node may cost more kernels
than its own: attention's, cast kernels, a transformer block as its framework's modules launch it
(``qsim.cost.stack_kernels``).

Without a ``stack:`` section a profile keeps the default the cost model always had: activations
fused into the preceding matrix op, everything else a kernel of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from qsim.cost.npu_array import utilisation
from qsim.cost.stack_kernels import stack_kernels
from qsim.hw.stack_profile import CONV_CLASSES, Stack
from qsim.ir.graph import Graph
from qsim.ir.registry import CostClass, get_op

# The efficiency table that applies to each registry cost class (matrix ops are refined below).
_CLASS_TABLE = {CostClass.DEPTHWISE: "depthwise", CostClass.NORMALISATION: "normalization",
                CostClass.REDUCTION: "pool", CostClass.SOFTMAX: "softmax", CostClass.VIEW: "view",
                CostClass.ELEMENTWISE: "elementwise", CostClass.DATA_MOVEMENT: "elementwise"}


@dataclass(frozen=True)
class StackView:
    """What the stack does to one graph: the fusions and where each fused node went."""
    fused_into: dict[str, str]  # node -> the kernel (node name) it runs inside; absent: a kernel of its own
    extra_read: dict[str, list[str]]  # fused node -> tensors its host kernel reads for it (residual operand)


def kernel_class(graph, node) -> str:
    """The efficiency table that applies to a node: its registry cost class, with matrix ops
    refined by shape (a conv's stem / 1x1 / 3x3 / other class; attention; GEMM)."""
    # per node: a Conv with one input channel per group is DEPTHWISE (qsim.ir.ops.conv)
    cost_class = get_op(node.op).cost_class_for([graph.tensor(t).shape for t in node.inputs], node.attrs)
    if cost_class is not CostClass.MATRIX:
        return _CLASS_TABLE[cost_class]
    if "kernel" in node.attrs:  # a convolution (a depthwise one has the registry's DEPTHWISE class above)
        # A grouped conv with several channels per group runs as one dense conv per group: MLAS's
        # MlasConv loops over the groups with im2col + MlasGemm of K = channels per group x kernel
        # (onnxruntime/core/mlas/lib/convolve.cpp), cuDNN's grouped convolution
        # (cudnnSetConvolutionGroupCount) uses its dense implicit-GEMM kernels per group. So its class
        # is one group's: a short reduction (few channels per group) is a stem, else by kernel shape.
        cin = graph.tensor(node.inputs[0]).shape[1] // int(node.attrs.get("groups", 1))
        kernel = node.attrs["kernel"]
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        if cin <= 4:
            return "conv_stem"
        if (kh, kw) == (1, 1):
            return "conv1x1"
        return "conv3x3" if (kh, kw) == (3, 3) else "conv_other"
    return "attention" if node.op == "Attention" else "gemm"


def executed_graph(graph: Graph, stack: Stack | None) -> Graph:
    """The graph as the stack runs it: BatchNorm unfolded from convs when the stack keeps it apart."""
    if stack is None or stack.fold_batchnorm or not any(
            n.op == "Conv" and n.attrs.get("folded_batchnorm") for n in graph.nodes()):
        return graph
    g = Graph(graph.name)
    for t in graph.inputs:
        spec = graph.tensor(t)
        g.add_input(t, spec.shape, spec.dtype)
    rename: dict[str, str] = {}
    for node in graph.nodes():
        for t in node.weights.values():
            if t not in g.tensors:
                spec = graph.tensor(t)
                g.add_weight(t, spec.shape, spec.dtype)
        g.add_node(node.op, node.name, [rename.get(t, t) for t in node.inputs], dict(node.attrs),
                   outputs=node.outputs, weights=dict(node.weights), dtype=graph.tensor(node.outputs[0]).dtype)
        if node.op == "Conv" and node.attrs.get("folded_batchnorm"):
            out = node.outputs[0]
            rename[out] = g.add_node("BatchNorm", f"{node.name}_bn", [out], outputs=[f"{out}_bn"]).outputs[0]
    for t in graph.outputs:
        g.mark_output(rename.get(t, t))
    return g


def _matrix(op: str) -> bool:
    """A matrix kernel (Conv, Gemm, MatMul, Attention): the op registry's cost class says so."""
    return get_op(op).cost_class.matrix_like


def _sole_consumer(graph, tensor: str) -> bool:
    return len(graph.consumers(tensor)) == 1


def _add_host(graph, producer, tensor: str, fused_into: dict[str, str]) -> str | None:
    """The Add kernel an activation runs inside (TFLite's ADD with a fused activation), if any."""
    if producer is None or producer.op != "Add" or not _sole_consumer(graph, tensor):
        return None
    return fused_into.get(producer.name, producer.name)


def fusion_map(graph, stack: Stack | None) -> StackView:
    """Per node, the kernel it is fused into (walking the topological order, so chains such as
    Conv -> BatchNorm -> Add -> Relu all land in the Conv)."""
    fold_bn = stack is None or stack.fold_batchnorm
    fuse_act = stack is None or stack.fuse_activation
    fuse_add = stack is not None and stack.fuse_residual_add
    host: dict[str, str] = {}  # node -> the matrix kernel computing its output in registers
    fused_into: dict[str, str] = {}
    extra: dict[str, list[str]] = {}
    for node in graph.nodes():
        if _matrix(node.op):
            host[node.name] = node.name
            continue
        producers = [graph.producer(t) for t in node.inputs]
        hosts = [host.get(p.name) if p is not None and _sole_consumer(graph, t) else None
                 for p, t in zip(producers, node.inputs)]
        target = None
        if len(node.inputs) == 1 and hosts[0]:
            if node.op == "BatchNorm" and fold_bn:
                target = hosts[0]
            elif get_op(node.op).fusable and fuse_act:
                # the default (no stack) fused only directly behind a matrix op, never behind a fused Add
                target = hosts[0] if stack is not None or _matrix(producers[0].op) else None
        elif node.op == "Add" and len(node.inputs) == 2 and fuse_add and any(hosts):
            i = 0 if hosts[0] else 1
            target = hosts[i]
            extra[node.name] = [node.inputs[1 - i]]
        elif len(node.inputs) == 1 and get_op(node.op).fusable and stack is not None and stack.fuse_activation \
                and stack.activation_into_add:
            add = _add_host(graph, producers[0], node.inputs[0], fused_into)
            if add:  # runs in the Add kernel; not a matrix host for what follows
                fused_into[node.name] = add
        if target:
            fused_into[node.name] = target
            host[node.name] = target
    return StackView(fused_into, extra)


def class_efficiency(stack: Stack | None, graph, node, unit: str, widest_tile: int) -> float | None:
    """The stack's measured efficiency for a convolution class at a compute class, if it has one.
    The table is read on convs whose output channels half-fill a GEMM tile (64); a conv as wide as
    the widest tile keeps the tile full and runs at the GEMM efficiency (None), except the stem,
    whose few input channels make a short reduction at any width."""
    cls = kernel_class(graph, node)
    if stack is not None and cls == "gemm" and unit in stack.matrix_vector_efficiency \
            and _matrix_vector(graph, node):
        return stack.matrix_vector_efficiency[unit]
    if stack is None or cls not in stack.conv_efficiency:
        return None
    # a group's GEMM has its share of the output channels as columns (MLAS's FilterCount per group)
    if cls != "conv_stem" and graph.tensor(node.outputs[0]).shape[1] // int(node.attrs.get("groups", 1)) \
            >= widest_tile:
        return None
    return stack.conv_efficiency[cls].get(unit)


def _matrix_vector(graph, node) -> bool:
    """A GEMM with a single row (a fully-connected layer at batch 1): every weight is used once."""
    rows = graph.tensor(node.outputs[0]).shape[:-1]
    return all(d == 1 for d in rows)


def array_efficiency(profile, graph, node, unit: str, macs: int) -> float | None:
    """The fitted efficiency times the share of an NPU's MAC array the layer keeps busy, when the
    stack describes the array (``mac_array``); None otherwise."""
    stack = profile.stack
    if stack is None or stack.mac_array is None:
        return None
    share = utilisation(graph, node, macs, profile.compute.macs_per_cycle[unit], stack.mac_array)
    if share is None:
        return None
    c = profile.compute
    base = c.depthwise_efficiency.get(unit, c.efficiency[unit]) if kernel_class(graph, node) == "depthwise" \
        else c.efficiency[unit]
    return base * share


def kernel_floor(profile, cls: str, unit: str) -> float:
    """The shortest a lone matrix op takes, launch included: the profile's per-precision GEMM
    minimum for GEMM-like classes; a convolution takes the stack's ``conv_min_latency_us`` when it
    has one, else (a depthwise conv is no GEMM) the fastest lone kernel measured at any
    precision, or (dense) its precision's GEMM minimum. The minimum is flat from 256^3 to 1024^3
    in the microbench (a 64x range of work): the time a lone op takes to be issued from the host,
    not device time. A captured graph replays its kernels without it (0): on ResNet-18 ms_graph
    that cut the held-out error from 9.5 to 4.5 % (median) and the fitted rows' from 15.4 to 3.5 %."""
    floors = profile.compute.min_latency
    stack = profile.stack
    if stack is not None and stack.launch == "graph":
        return 0.0
    if stack is not None and stack.conv_min_latency_s is not None and cls in CONV_CLASSES + ("depthwise",):
        return stack.conv_min_latency_s  # cuDNN's own lone-op minimum, not a cuBLAS precision path's
    if cls == "depthwise" and floors:
        return min(floors.values())
    return floors.get(unit, 0.0)


def bandwidth_fraction(stack: Stack | None, cls: str, unit: str) -> float:
    """The fraction of the memory bandwidth a memory-bound kernel of this class reaches (1: full)."""
    if stack is None:
        return 1.0
    return stack.bandwidth_fraction.get(cls, {}).get(unit, 1.0)


def extra_kernels(graph, node, stack: Stack | None, activation_bits: int, integer: bool = False) -> tuple[int, int]:
    """(launches, bytes) a node costs beyond its own kernel (qsim.cost.stack_kernels lists them)."""
    kernels = stack_kernels(graph, node, stack, activation_bits, integer)
    return len(kernels), sum(k.bytes_moved for k in kernels)


def resident_input_bytes(graph, view: StackView, input_bytes, output_bytes, capacity: int) -> dict[str, int]:
    """Per kernel, the input bytes still in the on-chip buffer when it runs (LRU by stack distance):
    a tensor is resident while the bytes written since it was produced, itself included, fit the
    buffer. ``input_bytes(node, tensor)`` and ``output_bytes(node)`` give the sizes."""
    written_at: dict[str, int] = {}  # tensor -> running total of bytes written when it was produced
    total, resident = 0, {}
    for node in graph.nodes():
        if node.name in view.fused_into:
            host = view.fused_into[node.name]
            for t in node.outputs:  # produced inside its host kernel: written when the host writes
                written_at[t] = written_at.get(graph.node(host).outputs[0], total)
            continue
        resident[node.name] = sum(input_bytes(node, t) for t in node.inputs
                                  if t in written_at and total - written_at[t] + output_bytes(node) <= capacity)
        total += output_bytes(node)
        for t in node.outputs:
            written_at[t] = total - output_bytes(node)
    return resident


def cascaded_bytes(graph, view: StackView, input_bytes, output_bytes, capacity: int) -> dict[str, tuple[int, int]]:
    """Per kernel, (input bytes, output bytes) a cascading compiler keeps in the on-chip buffer (Vela's
    cascades: consecutive operators run in stripes, so a tensor with one consumer lives only as a
    rolling band in SRAM). A tensor read by several kernels (a residual skip) stays on chip only when
    it fits half the buffer; the graph's inputs and outputs live in their home memory."""
    end: dict[str, str] = {}  # kernel -> the tensor its fused chain finally writes
    for node in graph.nodes():
        end[view.fused_into.get(node.name, node.name)] = node.outputs[0]

    def kept(t: str) -> bool:
        if t in graph.inputs or t in graph.outputs or graph.producer(t) is None:
            return False
        return len(graph.consumers(t)) == 1 or input_bytes(None, t) <= capacity // 2

    kept_bytes = {}
    for node in graph.nodes():
        if node.name in view.fused_into:
            continue
        ins = sum(input_bytes(node, t) for t in node.inputs if kept(t))
        kept_bytes[node.name] = (ins, output_bytes(node) if kept(end[node.name]) else 0)
    return kept_bytes


def host_seconds(stack: Stack | None, layers) -> float:
    """Time the host needs to issue the kernels one by one (0 for a captured graph): a module's
    kernel at the per-kernel cost, a plain tensor op inside a module's forward (a stack kernel that
    is no module call, ``stack_op_launches``) at the per-op cost."""
    if stack is None or stack.launch == "graph":
        return 0.0
    ops = float(layers["stack_op_launches"].sum())
    per_op = stack.host_s_per_kernel if stack.host_s_per_op is None else stack.host_s_per_op
    return (float(layers["launches"].sum()) - ops) * stack.host_s_per_kernel + ops * per_op
