"""The op registry: one entry per op (``OpDef``) with everything qsim knows about the op, filled by
``@register`` in each op's module (``qsim.ir.ops`` imports the modules in an explicit list).

An entry answers, for every part of qsim:

* shapes: ``infer(inputs, attrs)`` -> output, parameter (weight) and persistent state shapes (a KV
  cache) from the input shapes and attributes; raises ``ValueError`` on a mismatch;
* counts: ``macs`` (multiply-accumulates, the work of matrix units), ``vector_ops`` (other arithmetic
  per element: adds, compares, exp), ``weights_read``, ``inputs_read`` and ``state_io`` (elements read
  when not all), ``bias_roles`` (weights stored at the accumulator width in integer layers);
* the simulator: ``float_kernel`` (``(inputs, weights, attrs) -> outputs``, numpy) and
  ``int_kernel`` (``(step) -> outputs``, the integer executor's), each a ``KernelRef`` imported on
  first use (the IR never imports the numba-backed simulator) or an explicit ``Support`` marker;
  ``index_inputs``: inputs that hold integer indices (token ids), never quantized; ``as_stored``:
  the integer kernel takes the arrays as stored (dynamic quantization, ``qsim.ir.ops.dynamic``);
* quantization: ``quant`` (``QuantRule``: which weights ``quantize_graph`` quantizes and how);
* the cost model: ``cost_class`` (``CostClass``; ``cost_class_for`` refines it per node, e.g. a
  depthwise Conv), ``matrix`` (the op as GEMMs, for tiles, waves and the systolic array), and
  fusibility: ``fusable`` (a unary activation a runtime runs in the producing matrix op's epilogue)
  and ``view`` (the output is the input's memory under another shape: no bytes move).

Shapes are tuples of ints. ``get_op(name)`` is the one lookup (``get_op("Relu").fusable``,
``get_op("Conv").cost_class``); an unknown op is an error that lists the known ones. Adding an op is
one ``register`` call in an op module (its kernels written in ``qsim.sim``); ``cost_class`` and both
kernels are required, so an engine that cannot run the op says so (``Support.UNSUPPORTED``), and
tests/unit/test_registry.py checks every entry.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from importlib import import_module
from math import prod
from typing import Any, Callable, Mapping

from qsim.errors import GraphError

Shape = tuple[int, ...]
Counter = Callable[[list[Shape], tuple[Shape, ...], Mapping[str, Any]], int]


@dataclass(frozen=True)
class Inferred:
    outputs: tuple[Shape, ...]
    weights: Mapping[str, Shape] = field(default_factory=dict)  # role -> shape, e.g. "weight", "bias"
    state: Mapping[str, Shape] = field(default_factory=dict)  # read every call, e.g. "k_cache"


class CostClass(Enum):
    """What kind of work an op is, for the cost model and for a software stack's fusion rules."""
    MATRIX = "matrix"  # MACs on matrix units; tiled with re-fetch when the working set exceeds the buffer
    DEPTHWISE = "depthwise"  # a Conv with one input channel per group (its own efficiency on some targets)
    ELEMENTWISE = "elementwise"  # per-element arithmetic: activations, binary ops, (re)quantization
    NORMALISATION = "normalisation"  # statistics over an axis, then a per-element affine (LayerNorm, LRN)
    SOFTMAX = "softmax"
    REDUCTION = "reduction"  # pooling and reductions: a window or axes reduced per output
    VIEW = "view"  # only the shape changes: no bytes move
    DATA_MOVEMENT = "data movement"  # copies and gathers without arithmetic (Concat, Transpose, Embedding)

    @property
    def matrix_like(self) -> bool:
        return self in (CostClass.MATRIX, CostClass.DEPTHWISE)


class Support(Enum):
    """An explicit "no kernel" for one engine, so that no op is half-added."""
    UNSUPPORTED = "unsupported"  # the engine refuses the op and lists the ops it runs
    # integer executor only: no integer pipeline in any runtime qsim models; the node runs as a float
    # island (dequantize, float kernel, quantize), as the runtimes do
    FLOAT_ISLAND = "float island"


@dataclass(frozen=True)
class KernelRef:
    """A simulator kernel named by module and function, imported on first ``load()``."""
    module: str
    function: str

    def load(self) -> Callable:
        return _load(self.module, self.function)


@cache
def _load(module: str, function: str) -> Callable:
    return getattr(import_module(module), function)


def sim_kernel(path: str) -> KernelRef:
    """``sim_kernel("float_ops.conv")``: the function ``conv`` of ``qsim.sim.float_ops``."""
    module, function = path.rsplit(".", 1)
    return KernelRef(f"qsim.sim.{module}", function)


@dataclass(frozen=True)
class QuantRule:
    """How ``quantize_graph`` treats an op's weights and outputs. By default weights stay float
    (LayerNorm's gamma) and outputs are calibrated like any activation."""
    weights: tuple[str, ...] = ()  # matrix weights: quantized at the weight format, symmetric, per channel
    bias: str | None = None  # added to the integer accumulator of weights[0]: int32 at s_in * s_w
    activation_weights: tuple[str, ...] = ()  # constants quantized like an activation (per tensor)
    shares_input_params: bool = False  # data movement: outputs keep the input's parameters (exact copies)


@dataclass(frozen=True)
class MatrixView:
    """A matrix op as ``batches x groups`` independent GEMMs (rows x cols/groups, reduction k).
    The output matrix (batches, rows, cols) is what GPU tiles cover; the systolic array runs each GEMM."""
    batches: int
    rows: int
    cols: int
    k: int
    groups: int = 1
    # Input elements one GEMM reads when not rows x k: a Conv reads its raw feature map of one group
    # (im2col windows overlap; padding is generated, not fetched).
    input_elems: int | None = None

    def gemms(self) -> list[tuple[int, int, int]]:
        return [(self.rows, self.cols // self.groups, self.k)] * (self.batches * self.groups)

    def inputs_per_gemm(self) -> int:
        return self.rows * self.k if self.input_elems is None else self.input_elems


def _zero(inputs: list[Shape], outputs: tuple[Shape, ...], attrs: Mapping[str, Any]) -> int:
    return 0


@dataclass(frozen=True)
class OpDef:
    name: str
    infer: Callable[[list[Shape], Mapping[str, Any]], Inferred]
    cost_class: CostClass
    float_kernel: KernelRef | Support
    int_kernel: KernelRef | Support
    macs: Counter = _zero
    vector_ops: Counter = _zero
    fusable: bool = False
    # Weight elements actually read per call, when not all of them (an embedding reads rows).
    weights_read: Counter | None = None
    # Elements of the (single) activation input read per call, when not all of them (a Slice or a
    # Gather reads what it copies).
    inputs_read: Counter | None = None
    # (elements read, elements written) of the node's persistent state per call; None: read all.
    state_io: Callable[[list[Shape], Mapping[str, Any]], tuple[int, int]] | None = None
    # The attributes a user may write for this op (explicit layers in a workload are checked
    # against them); None: not declared. Importers may add more (e.g. a fused activation).
    attrs: tuple[str, ...] | None = None
    quant: QuantRule = QuantRule()
    # Weights added after the products (biases, BatchNorm's shift, LayerNorm's beta): stored at the
    # accumulator width when the layer's weights are integers, as TFLite and onnxruntime store them.
    bias_roles: tuple[str, ...] = ()
    index_inputs: tuple[int, ...] = ()
    matrix: Callable[[list[Shape], tuple[Shape, ...], Mapping[str, Any]], MatrixView] | None = None
    node_cost_class: Callable[[list[Shape], Mapping[str, Any]], CostClass] | None = None
    # The integer executor runs ``int_kernel`` on the arrays as stored (codes, run-time scales and
    # zero points, floats, masks) whatever the tensors' ``quant_params``: dynamic quantization.
    as_stored: bool = False

    @property
    def view(self) -> bool:
        return self.cost_class is CostClass.VIEW

    def cost_class_for(self, inputs: list[Shape], attrs: Mapping[str, Any]) -> CostClass:
        return self.node_cost_class(inputs, attrs) if self.node_cost_class else self.cost_class


OPS: dict[str, OpDef] = {}


Kernel = KernelRef | Support | str


def register(name: str, *, cost_class: CostClass, float_kernel: Kernel, int_kernel: Kernel, **fields):
    """Decorator for an op's ``infer`` function: ``@register("Relu", cost_class=CostClass.ELEMENTWISE,
    float_kernel="float_ops.relu", int_kernel="int_ops.relu", vector_ops=...)``. A kernel is a
    path under ``qsim.sim`` (see ``sim_kernel``) or a ``Support`` marker; the other keywords are
    ``OpDef`` fields."""

    def ref(kernel: Kernel) -> KernelRef | Support:
        return sim_kernel(kernel) if isinstance(kernel, str) else kernel

    def wrap(infer):
        if name in OPS:
            raise RuntimeError(f"op {name!r} registered twice")
        OPS[name] = OpDef(name, infer, cost_class, ref(float_kernel), ref(int_kernel), **fields)
        return infer

    return wrap


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise GraphError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}") from None


def ops_running_on(engine: str) -> list[str]:
    """Ops whose ``engine`` entry (``float_kernel`` or ``int_kernel``) is not ``UNSUPPORTED``."""
    return sorted(n for n, d in OPS.items() if getattr(d, engine) is not Support.UNSUPPORTED)


def numel(shape: Shape) -> int:
    return int(prod(shape))


def out_numel(inputs: list[Shape], outputs: tuple[Shape, ...], attrs: Mapping[str, Any]) -> int:
    """vector_ops for an op that does one operation per output element."""
    return sum(numel(s) for s in outputs)


def per_output(k: int):
    """vector_ops for an op that does ``k`` operations per output element."""

    def count(inputs, outputs, attrs) -> int:
        return k * sum(numel(s) for s in outputs)

    return count
