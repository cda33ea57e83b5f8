"""A small ONNX model writer over onnx.helper for the differential cases: constants, fed inputs
(with their values), nodes and outputs, saved as a file that both onnxruntime and qsim read."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 21  # int4/uint4/int16 QuantizeLinear need 21; QLinear* ops are unchanged since 10
ELEM = {"uint8": TensorProto.UINT8, "int8": TensorProto.INT8, "int16": TensorProto.INT16,
        "uint16": TensorProto.UINT16, "int32": TensorProto.INT32, "float32": TensorProto.FLOAT,
        "int4": TensorProto.INT4, "uint4": TensorProto.UINT4,
        "float8e4m3fn": TensorProto.FLOAT8E4M3FN, "float8e5m2": TensorProto.FLOAT8E5M2}


class OnnxModel:
    """Collects one model: ``const``/``feed``/``node``/``output``, then ``save``."""

    def __init__(self, name: str):
        self.name = name
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.feeds: dict[str, np.ndarray] = {}
        self._n = 0

    def const(self, name: str, value, elem: str | None = None) -> str:
        if elem in ("int4", "uint4", "float8e4m3fn", "float8e5m2"):
            flat = np.asarray(value).reshape(-1)
            vals = flat.astype(np.float32).tolist() if elem.startswith("float8") else flat.astype(np.int64).tolist()
            self.inits.append(helper.make_tensor(name, ELEM[elem], list(np.shape(value)), vals))
        else:
            self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def feed(self, name: str, value: np.ndarray) -> str:
        value = np.asarray(value)
        elem = {np.dtype(np.float32): "float32"}.get(value.dtype, str(value.dtype))
        self.inputs.append(helper.make_tensor_value_info(name, ELEM[elem], list(value.shape)))
        self.feeds[name] = value
        return name

    def node(self, op: str, inputs, outputs=None, domain: str = "", **attrs) -> list[str]:
        self._n += 1
        outputs = outputs or [f"{op.lower()}{self._n}"]
        self.nodes.append(helper.make_node(op, list(inputs), list(outputs), name=f"{op}_{self._n}",
                                           domain=domain or None, **attrs))
        return outputs

    def output(self, name: str, elem: str) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, ELEM[elem], None))

    def proto(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.inits)
        opsets = [helper.make_opsetid("", OPSET)]
        if any(n.domain == "com.microsoft" for n in self.nodes):
            opsets.append(helper.make_opsetid("com.microsoft", 1))
        model = helper.make_model(graph, opset_imports=opsets)
        model.ir_version = 10
        return model

    def save(self, path) -> Path:
        onnx.save(self.proto(), str(path))
        return Path(path)
