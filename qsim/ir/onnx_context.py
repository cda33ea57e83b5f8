"""State of one ONNX import: what is known about every ONNX tensor while the nodes are walked.

An ONNX tensor is one of three things here:

* a **constant** (``Const``): an initializer, a ``Constant``, anything folded from constants, a
  weight given as a graph input with a shape only (weightless export: ``value`` is None), or a
  quantized weight behind a ``DequantizeLinear`` (integer values plus their ``TensorQuant``);
* an **activation**: an IR tensor; ``alias`` maps the ONNX name to it (Identity, Dropout, Cast,
  QuantizeLinear and DequantizeLinear add names for a tensor without adding a node);
* not known yet (its producer has not been walked).

Handlers read inputs through ``act``/``const`` and add IR nodes through ``emit``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

from qsim.errors import GraphError, QsimError
from qsim.ir import onnx_proto as P
from qsim.ir.graph import Graph
from qsim.numerics.tensor_quant import TensorQuant

if TYPE_CHECKING:
    from onnx import NodeProto, TensorProto

# ONNX element types -> qsim element format names (``TensorQuant.dtype``, ``TensorSpec.dtype``).
ELEM_NAMES = {
    P.FLOAT: "float32", P.FLOAT16: "float16", P.BFLOAT16: "bfloat16", P.DOUBLE: "float64",
    P.INT8: "int8", P.UINT8: "uint8", P.INT16: "int16", P.UINT16: "uint16", P.INT32: "int32", P.INT64: "int64", P.UINT32: "uint32", P.UINT64: "uint64",
    P.INT4: "int4", P.UINT4: "uint4", P.BOOL: "bool", P.FLOAT8E4M3FN: "float8e4m3fn", P.FLOAT8E5M2: "float8e5m2",
    P.FLOAT8E4M3FNUZ: "float8e4m3fnuz", P.FLOAT8E5M2FNUZ: "float8e5m2fnuz",
}
# Ops through which a graph input keeps being data (used to tell data inputs from weight inputs).
_TRANSPARENT = {"Identity", "Dropout", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten",
                "Transpose", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Sum", "Pow", "QLinearAdd", "QLinearMul"}
# Input positions that hold parameters; a graph input reaching one is a weight, not data.
_PARAM_POSITIONS = {"Conv": {1, 2}, "ConvTranspose": {1, 2}, "Gemm": {1, 2}, "MatMul": {1},
                    "BatchNormalization": {1, 2, 3, 4}, "LayerNormalization": {1, 2}, "PRelu": {1},
                    "InstanceNormalization": {1, 2}, "Gather": {0}}


@dataclass(frozen=True)
class Const:
    shape: tuple[int, ...]
    dtype: str  # element format name
    value: np.ndarray | None  # None: shape only (weightless export)
    quant: TensorQuant | None = None  # set when value holds quantized integers


def const_from_array(array: np.ndarray, dtype: str | None = None, known: bool = True) -> Const:
    array = np.asarray(array)
    name = dtype or _np_name(array.dtype)
    return Const(tuple(int(d) for d in array.shape), name, array if known else None)


def _np_name(dt: np.dtype) -> str:
    name = np.dtype(dt).name
    return {"float8_e4m3fn": "float8e4m3fn", "float8_e5m2": "float8e5m2"}.get(name, name)


_QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd",
                  "QLinearMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear"}


def is_quantized(model) -> bool:
    """Whether the file holds quantized ops (its weights, scales and zero points are then in the file)."""
    return any(n.op_type in _QUANTIZED_OPS for n in model.graph.node)


def classify_inputs(model) -> set[str]:
    """Graph inputs that carry data; the others are weights given by shape (weightless export).

    A graph input is data when it reaches, through shape-only ops and full-size elementwise
    operands, a graph output or an input that is neither a parameter position nor a broadcast
    operand. A weight reaches only Conv/Gemm/BatchNormalization parameters, MatMul's B, or the
    small operand of a broadcasting Mul/Add (a per-channel scale). A quantized model carries its
    weights (their scales must be known), so there every graph input that is not an initializer is
    data: two broadcast operands are two inputs, not a weight."""
    gp = model.graph
    initializers = {t.name for t in gp.initializer}
    if is_quantized(model):
        return {i.name for i in gp.input if i.name not in initializers}
    outputs = {o.name for o in gp.output}
    consumers: dict[str, list[NodeProto]] = {}
    for n in gp.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    info = {v.name: v for v in list(gp.value_info) + list(gp.input) + list(gp.output)}

    def shape(name):
        vi = info.get(name)
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            return None
        dims = vi.type.tensor_type.shape.dim
        return tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims)

    def full_size(operand, out):  # unknown shapes: assume data flows through
        return shape(operand) is None or shape(out) is None or shape(operand) == shape(out)

    data = set()
    for inp in gp.input:
        if inp.name in initializers:
            continue
        frontier, seen = [inp.name], set()
        while frontier and inp.name not in data:
            t = frontier.pop()
            seen.add(t)
            if t in outputs:  # reaches an output unchanged in size: data
                data.add(inp.name)
                break
            for node in consumers.get(t, []):
                pos = {i for i, x in enumerate(node.input) if x == t}
                if node.op_type in _TRANSPARENT and 0 in pos or (
                        node.op_type in _ELEMENTWISE and full_size(t, node.output[0])):
                    frontier.extend(o for o in node.output[:1] if o not in seen)
                elif node.op_type not in _ELEMENTWISE and node.op_type not in _TRANSPARENT and (
                        pos - _PARAM_POSITIONS.get(node.op_type, set())):
                    data.add(inp.name)
                    break
    return data


class Context:
    """``inferred``: whether ``model`` went through ONNX shape inference; if not, the shapes and
    element types it lacks are inferred on first use (``onnx_shape``, ``onnx_dtype``)."""

    def __init__(self, model, path: str, graph: Graph, data_inputs: set[str],
                 batch_from: int | None = None, batch_to: int | None = None, inferred: bool = True):
        self.model, self.path, self.g, self.inferred = model, path, graph, inferred
        self.batch_from, self.batch_to = batch_from, batch_to  # for Reshape targets baked by exporters
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        gp = model.graph
        self.producer: dict[str, NodeProto] = {o: n for n in gp.node for o in n.output if o}
        self.consumers: dict[str, list[NodeProto]] = {}
        for n in gp.node:
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)
        self.value_info = {v.name: v for v in list(gp.value_info) + list(gp.input) + list(gp.output)}
        self.graph_inputs = {i.name for i in gp.input}
        self.graph_outputs = {o.name for o in gp.output}
        self.consts: dict[str, Const] = {t.name: self._initializer(t) for t in gp.initializer}
        self.alias: dict[str, str] = {}
        self.node_names: set[str] = set()
        self.out_types: dict[str, str] = {}  # element types QOperator handlers read from zero points
        self.half_nodes: list[str] = []  # nodes computing on float16 / bfloat16 (``onnx_import.half_refusal``)
        self.done: set[int] = set()  # ids of ONNX nodes already handled (folded or absorbed)
        self.folders: Mapping[str, Callable] = {}
        self.data_inputs = data_inputs
        for inp in gp.input:
            if inp.name not in self.consts and inp.name not in self.data_inputs:
                shape = self.onnx_shape(inp.name)
                if shape is None or any(d is None for d in shape):
                    raise GraphError(f"{path}: weight input {inp.name!r} has no static shape")
                self.consts[inp.name] = Const(shape, self.onnx_dtype(inp.name), None)

    # -- reading the ONNX side -----------------------------------------------------------------
    def _initializer(self, t: TensorProto) -> Const:
        try:
            array = P.to_array(t, base_dir=self.base_dir)
        except Exception as exc:  # missing external data, bad raw_data length
            raise GraphError(f"{self.path}: initializer {t.name!r} cannot be read: {exc}") from None
        return const_from_array(array, ELEM_NAMES.get(t.data_type))

    @property
    def base_dir(self) -> str:
        """The folder external tensor data is read from (the model file's)."""
        return os.path.dirname(os.path.abspath(self.path))

    def _infer(self) -> None:
        try:
            gp = P.infer_shapes(self.model).graph
        except Exception as exc:  # inconsistent shapes or types in the file
            raise QsimError(f"{self.path}: ONNX shape inference failed: {exc}") from None
        self.value_info = {v.name: v for v in list(gp.value_info) + list(gp.input) + list(gp.output)}
        self.inferred = True

    def onnx_shape(self, name: str) -> tuple[int | None, ...] | None:
        vi = self.value_info.get(name)
        if not self.inferred and name not in self.graph_inputs:  # inference refines partial shapes
            self._infer()
            vi = self.value_info.get(name)
        if vi is None or not vi.type.tensor_type.HasField("shape"):
            return None
        return tuple(d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)

    def onnx_dtype(self, name: str, default: str = "float32") -> str:
        vi = self.value_info.get(name)
        if (vi is None or not vi.type.tensor_type.elem_type) and not self.inferred:
            self._infer()
            vi = self.value_info.get(name)
        if vi is None or not vi.type.tensor_type.elem_type:
            return default
        return ELEM_NAMES.get(vi.type.tensor_type.elem_type, default)

    # -- constants ------------------------------------------------------------------------------
    def const(self, name: str) -> Const | None:
        """The constant behind an ONNX tensor, folding its producers on demand; None if not one."""
        if not name:
            return None
        if name in self.consts:
            return self.consts[name]
        node = self.producer.get(name)
        fold = self.folders.get(node.op_type) if node is not None else None
        if fold is None or id(node) in self.done or name in self.alias:
            return None
        inputs = [self.const(i) if i else None for i in node.input]
        if any(c is None for i, c in zip(node.input, inputs) if i) and node.op_type != "Shape":
            return None
        results = fold(self, node, inputs)
        if results is None:
            return None
        for out, c in zip(node.output, results):
            self.consts[out] = c
        self.done.add(id(node))
        return self.consts.get(name)

    def value(self, name: str, what: str) -> np.ndarray:
        """A constant's values, for inputs that must be known (shapes, axes, scales)."""
        c = self.const(name)
        if c is None or c.value is None:
            raise ValueError(f"{what} ({name!r}) must be a constant with known values")
        return c.value

    # -- activations ----------------------------------------------------------------------------
    def act(self, name: str) -> str:
        """The IR tensor for an ONNX activation (graph inputs are added on first use)."""
        if name in self.alias:
            return self.alias[name]
        if name in self.data_inputs:
            shape = self.onnx_shape(name)
            self.g.add_input(name, shape, self.quant_dtype(name) or self.onnx_dtype(name))
            self.alias[name] = name
            return name
        c = self.const(name)
        if c is not None:  # IR inputs are activations, weights belong to a node: a Constant node holds it
            if c.value is None:
                raise ValueError(f"constant {name!r} as an activation input has no values (a weightless export)")
            weight = self.weight(self.fresh(f"{name}.value"), c)
            self.emit("Constant", P.make_node("Constant", [], [name]), [], {"shape": c.shape}, {"value": weight},
                      dtype=c.quant.fmt.element_type if c.quant else c.dtype)
            if c.quant is not None:
                self.g.quant_params[name] = c.quant
            return name
        raise GraphError(f"{self.path}: tensor {name!r} is used before it is produced")

    def weight(self, ir_name: str, c: Const) -> str:
        """Declare a weight tensor (once per name) with its values and quantization. A quantized
        weight takes the name of the integers the file stores, not of its DequantizeLinear."""
        node = self.producer.get(ir_name)
        while node is not None and node.op_type in ("DequantizeLinear", "Identity") and node.input[0] in self.consts:
            ir_name, node = node.input[0], self.producer.get(node.input[0])
        if ir_name not in self.g.tensors:
            self.g.add_weight(ir_name, c.shape, c.quant.fmt.element_type if c.quant else c.dtype)
            if c.value is not None:
                self.g.constants[ir_name] = c.value
            if c.quant is not None:
                self.g.quant_params[ir_name] = c.quant
        return ir_name

    def fresh(self, name: str) -> str:
        """A tensor name not yet used, for weights whose values differ from the file's (folded)."""
        candidate, k = name, 1
        while candidate in self.g.tensors or candidate in self.producer or candidate in self.consts:
            candidate, k = f"{name}:{k}", k + 1
        return candidate

    def quant_dtype(self, name: str) -> str | None:
        """Element type of a QuantizeLinear that reads this tensor (QDQ: the stored format)."""
        for node in self.consumers.get(name, []):
            if node.op_type == "QuantizeLinear" and node.input[0] == name:
                return q_elem_type(self, node)
        return None

    def sole_consumer(self, name: str) -> NodeProto | None:
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.graph_outputs:
            return None
        return users[0]

    def emit(self, op: str, node: NodeProto, inputs: Iterable[str], attrs: Mapping[str, Any],
             weights: Mapping[str, str] | None = None, outputs: Iterable[str] | None = None,
             dtype: str | None = None, passthrough: bool = False) -> None:
        """Add one IR node for an ONNX node; its outputs keep their ONNX names."""
        inputs = list(inputs)
        outs = list(outputs) if outputs is not None else [o for o in node.output[:1]]
        src = inputs[0] if inputs else None
        q = self.out_types.get(outs[0]) or self.quant_dtype(outs[0])
        if q is None and passthrough and src is not None:
            q = self.g.tensor(src).dtype  # data movement on a quantized tensor keeps its format
        name = base = node.name or outs[0]
        for k in range(1, len(self.node_names) + 2):  # ONNX node names may be empty or repeated
            if name not in self.node_names:
                break
            name = f"{base}:{k}"
        self.node_names.add(name)
        self.g.add_node(op, name, inputs, attrs, outputs=outs, weights=weights,
                        dtype=dtype or q or self.onnx_dtype(outs[0]))
        for o in outs:
            self.alias[o] = o
            if passthrough and src in self.g.quant_params and dtype is None and self.quant_dtype(o) is None:
                self.g.quant_params[o] = self.g.quant_params[src]


def q_elem_type(ctx: Context, node: NodeProto) -> str:
    """The element type a QuantizeLinear produces: its zero point's, ``output_dtype``, or uint8."""
    if len(node.input) > 2 and node.input[2]:
        c = ctx.const(node.input[2])
        if c is not None:
            return c.dtype
    for a in node.attribute:
        if a.name == "output_dtype" and a.i:
            return ELEM_NAMES[a.i]
    return "uint8"
