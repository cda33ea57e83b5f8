"""State of one TFLite import: tensors by index, their IR names, constants and quantization.

TFLite is NHWC; the IR is NCHW. ``NHWC_TO_NCHW`` maps IR axes to file axes for rank-4 activations;
weights are transposed into the IR layout with the per-channel quantization axis moved to match.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from qsim.errors import GraphError, QsimError
from qsim.ir.graph import Graph
from qsim.numerics.tensor_quant import TensorQuant

# TensorType -> (element format name, numpy dtype); sub-byte INT4 is not unpacked (not supported).
_TYPES = {0: ("float32", np.float32), 1: ("float16", np.float16), 2: ("int32", np.int32),
          3: ("uint8", np.uint8), 4: ("int64", np.int64), 6: ("bool", np.bool_), 7: ("int16", np.int16),
          9: ("int8", np.int8), 10: ("float64", np.float64)}
NHWC_TO_NCHW = (0, 3, 1, 2)  # IR axis i holds TFLite axis NHWC_TO_NCHW[i]


def schema():
    """The flatbuffer schema module LiteRT ships (its object API reads a whole model at once)."""
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise QsimError("reading .tflite files needs ai-edge-litert (pip install ai-edge-litert)") from None
    return schema_py_generated


class TfliteContext:
    """Subgraph 0 of a model: tensors by index, their IR names, constants and quantization."""

    def __init__(self, model, data: bytes, path: str, graph: Graph):
        self.model, self.path, self.g = model, path, graph
        self.sub = model.subgraphs[0]
        self.alias: dict[int, str] = {}  # tensor index -> IR activation tensor
        self.node_names: set[str] = set()
        check_indices(model, path)
        names = [_name(t.name, i, path) or f"t{i}" for i, t in enumerate(self.sub.tensors or [])]
        self.names = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
        self.consumers: dict[int, list] = {}
        for op in self.sub.operators or []:
            for i in _ints(op.inputs):
                self.consumers.setdefault(i, []).append(op)
        self.values = {i: self._buffer(i, data) for i in range(len(self.sub.tensors or []))}
        self._check_zero_points()

    def tensor(self, i: int):
        return self.sub.tensors[i]

    def _check_zero_points(self) -> None:
        """Every integer tensor's zero points lie in its type's range, before anything is built.
        Converters never write others, and LiteRT gives no one answer for them: its default XNNPACK
        delegate refuses the model ("unsupported zero-point value"), and its builtin kernels overflow
        their int32 lanes, the optimized and reference kernels differently (an int8 ADD with zero points
        5000 / 100 and scales 0.05, 0.1 -> 0.12: every one of the 65536 input pairs differs;
        tests/golden/test_tflite_zero_point_range.py)."""
        for i, t in enumerate(self.sub.tensors or []):
            q, kind = t.quantization, _TYPES.get(t.type)
            if q is None or q.zeroPoint is None or kind is None or np.dtype(kind[1]).kind not in "iu":
                continue
            zero, info = np.asarray(q.zeroPoint, np.int64).ravel(), np.iinfo(kind[1])
            bad = zero[(zero < info.min) | (zero > info.max)]
            if bad.size:
                raise GraphError(f"{self.path}: {self._user(i)}tensor {self.names[i]!r} ({kind[0]}): zero point "
                                 f"{int(bad[0])} is outside the {kind[0]} range [{info.min}, {info.max}]; LiteRT "
                                 "refuses it (XNNPACK) or overflows on it (builtin kernels): no runtime answer "
                                 "to simulate")

    def _user(self, i: int) -> str:
        """ "operator K (OP) output " for the op writing tensor ``i``, else "... input " for the first reading it."""
        ops = list(enumerate(self.sub.operators or []))
        for role, found in (("output", [k for k, op in ops if i in _ints(op.outputs)]),
                            ("input", [k for k, op in ops if i in _ints(op.inputs)])):
            if found:
                return f"operator {found[0]} ({self.op_name(ops[found[0]][1])}) {role} "
        return ""

    def dtype(self, i: int) -> str:
        t = self.tensor(i).type
        if t not in _TYPES:
            raise GraphError(f"{self.path}: tensor {self.names[i]!r} has unsupported element type {t}")
        return _TYPES[t][0]

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in _ints(self.tensor(i).shape))

    def _buffer(self, i: int, data: bytes) -> np.ndarray | None:
        t = self.tensor(i)
        buf = self.model.buffers[t.buffer] if self.model.buffers and t.buffer < len(self.model.buffers) else None
        raw = None
        if buf is not None and buf.data is not None and len(buf.data):
            raw = np.asarray(buf.data, np.uint8).tobytes()
        elif buf is not None and buf.offset and buf.size:  # large models keep buffers after the flatbuffer
            raw = data[buf.offset:buf.offset + buf.size]
        if raw is None:
            return None
        if t.type not in _TYPES:
            raise GraphError(f"{self.path}: constant {self.names[i]!r} has unsupported element type {t.type}")
        dtype = _TYPES[t.type][1]
        shape = self.shape(i)
        if len(raw) != int(np.prod(shape)) * np.dtype(dtype).itemsize:
            raise QsimError(f"{self.path}: constant {self.names[i]!r} holds {len(raw)} bytes, "
                            f"expected {int(np.prod(shape))} x {np.dtype(dtype).itemsize} (truncated or corrupt)")
        return np.frombuffer(raw, dtype).reshape(shape).copy()

    def quant(self, i: int, axis_map: tuple[int, ...] | None = None) -> TensorQuant | None:
        """The file's scales and zero points; ``axis_map`` moves a per-channel axis to the IR layout."""
        q = self.tensor(i).quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            return None
        scale = np.asarray(q.scale, np.float32)
        zero = np.asarray(q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) else np.zeros(scale.shape),
                          np.int64)
        where = f"{self.path}: tensor {self.names[i]!r}"
        if not (np.isfinite(scale).all() and (scale > 0).all()):
            raise GraphError(f"{where}: quantization scales must be finite and > 0, got {scale[:8].tolist()}")
        if zero.shape != scale.shape:
            raise GraphError(f"{where}: {scale.size} scales but {zero.size} zero points")
        axis = None
        if scale.size > 1:
            axis, shape = int(q.quantizedDimension), self.shape(i)
            if not 0 <= axis < len(shape) or shape[axis] != scale.size:
                raise GraphError(f"{where}: {scale.size} per-channel scales along axis {axis} of shape {list(shape)}")
            axis = axis_map.index(axis) if axis_map else axis
        return TensorQuant(scale, zero, self.dtype(i), axis)

    # -- building --------------------------------------------------------------------------------
    def act(self, i: int) -> str:
        """The IR tensor for an activation; graph inputs are added on first use, in NCHW."""
        if i in self.alias:
            return self.alias[i]
        if self.values[i] is not None:  # IR inputs are activations; weights belong to a node
            raise ValueError(f"constant {self.names[i]!r} as an activation input is not supported here")
        if i not in _ints(self.sub.inputs):
            raise GraphError(f"{self.path}: tensor {self.names[i]!r} is used before it is produced")
        name = self.names[i]
        fmt = self._quantize_target(i) or self.dtype(i)
        self.g.add_input(name, ir_shape(self.shape(i)), fmt)
        self.alias[i] = name
        self._set_quant(name, i)
        return name

    def _quantize_target(self, i: int) -> str | None:
        """A float input read by QUANTIZE is stored quantized: it takes that format."""
        for op in self.consumers.get(i, []):
            if self.op_name(op) == "QUANTIZE" and self.dtype(i).startswith("float"):
                return self.dtype(_ints(op.outputs)[0])
        return None

    def _set_quant(self, name: str, i: int) -> None:
        rank = len(self.shape(i))
        q = self.quant(i, NHWC_TO_NCHW if rank == 4 else None)
        if q is not None:
            self.g.quant_params[name] = q

    def weight(self, i: int, perm: tuple[int, ...] | None = None) -> str:
        """A constant as an IR weight: values transposed by ``perm`` (IR axis k = file axis perm[k])."""
        name = self.names[i]
        if name not in self.g.tensors:
            value = self.values[i]
            if value is None:
                raise GraphError(f"{self.path}: weight {name!r} has no data")
            value = np.ascontiguousarray(value.transpose(perm)) if perm else value
            self.g.add_weight(name, value.shape, self.dtype(i))
            self.g.constants[name] = value
            q = self.quant(i, perm)
            if q is not None:
                self.g.quant_params[name] = q
        return name

    def const_input(self, i: int, like: str | None) -> str:
        """A constant operand of an elementwise op: NHWC broadcasting (pad to rank 4), stored NCHW."""
        rank = len(self.g.tensor(like).shape) if like else 0
        value = self.values[i]
        if rank == 4 and value is not None and value.ndim <= 4 and self.names[i] not in self.g.tensors:
            self.values[i] = value.reshape((1,) * (4 - value.ndim) + value.shape)
            return self.weight(i, NHWC_TO_NCHW)
        return self.weight(i)

    def op_name(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        number = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        return _op_names().get(number, f"builtin#{number}")

    def emit(self, op: str, index: int, inputs: list[str], attrs: Mapping[str, Any],
             weights: Mapping[str, str] | None = None, out: int | None = None, tflite_op=None) -> str:
        i = out if out is not None else _ints(tflite_op.outputs)[0]
        name = self.names[i]
        node = name if name not in self.node_names else f"{name}#op{index}"
        self.node_names.add(node)
        self.g.add_node(op, node, inputs, attrs, outputs=[name], weights=weights, dtype=self.dtype(i))
        self.alias[i] = name
        self._set_quant(name, i)
        return name


def check_indices(model, path: str) -> None:
    """Every index of subgraph 0 points at something and every tensor has a usable shape, so the
    import never indexes past a list: opcode indices, operator inputs (-1: an optional input left
    out) and outputs, the subgraph's inputs and outputs, buffer indices; dimensions >= 1."""
    sub = model.subgraphs[0]
    tensors, codes = sub.tensors or [], model.operatorCodes or []
    buffers = len(model.buffers or [])

    def bad(message: str):
        raise GraphError(f"{path}: {message} (corrupt TFLite file)")

    for k, op in enumerate(sub.operators or []):
        if not 0 <= int(op.opcodeIndex) < len(codes):
            bad(f"operator {k}: opcode index {op.opcodeIndex} out of range (the file has {len(codes)} opcodes)")
        for role, indices, optional in (("input", op.inputs, True), ("output", op.outputs, False)):
            for i in _ints(indices):
                if not (0 <= i < len(tensors) or (optional and i == -1)):
                    bad(f"operator {k}: {role} tensor index {i} out of range (the subgraph has {len(tensors)} tensors)")
        if not _ints(op.outputs):
            bad(f"operator {k}: no outputs")
    for role, indices in (("input", sub.inputs), ("output", sub.outputs)):
        for i in _ints(indices):
            if not 0 <= i < len(tensors):
                bad(f"subgraph {role} tensor index {i} out of range (the subgraph has {len(tensors)} tensors)")
    for i, t in enumerate(tensors):
        if not 0 <= int(t.buffer) < max(buffers, 1):
            bad(f"tensor {i}: buffer index {t.buffer} out of range (the file has {buffers} buffers)")
        dims = _ints(t.shape)
        if any(d < 1 for d in dims):
            bad(f"tensor {i} ({_name(t.name, i, path)!r}): shape {dims} has a dimension below 1")


def _name(v, i: int, path: str) -> str:
    try:
        return _text(v)
    except UnicodeDecodeError:
        raise GraphError(f"{path}: tensor {i}: name {v[:40]!r} is not UTF-8 (corrupt TFLite file)") from None


def ir_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape[a] for a in NHWC_TO_NCHW) if len(shape) == 4 else tuple(shape)


def _ints(v) -> list[int]:
    return [] if v is None else [int(x) for x in v]


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


_OP_NAMES: dict[int, str] = {}  # BuiltinOperator number -> name, filled on first use


def _op_names() -> dict[int, str]:
    if not _OP_NAMES:
        ops = schema().BuiltinOperator
        _OP_NAMES.update({v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)})
    return _OP_NAMES
