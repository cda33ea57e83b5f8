"""ONNX files read without importing the onnx package.

``import onnx`` costs about a second (its ml_dtypes dependency registers hundreds of numpy ufunc
loops), more than the whole first simulation of a ResNet-18. The importer only needs ONNX's protobuf
messages, so this module declares them (field numbers from ``onnx/onnx.proto``, fixed by the ONNX
spec) in a private descriptor pool and lets protobuf's C parser read the file. The messages have
onnx's own names and fields (``model.graph.node[0].op_type``); fields not declared here survive as
unknown fields, so ``SerializeToString`` returns what was read.

The onnx package is still imported when a file needs it, and only then: ONNX shape inference
(``infer_shapes``), tensors stored outside the file or in types numpy lacks (bfloat16, float8, int4:
``to_array``), and element types numpy lacks (``np_dtype``).
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache

import numpy as np

# TensorProto.DataType values (onnx.proto)
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL = 1, 2, 3, 4, 5, 6, 7, 8, 9
FLOAT16, DOUBLE, UINT32, UINT64, BFLOAT16 = 10, 11, 12, 13, 16
FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ, UINT4, INT4 = 17, 18, 19, 20, 21, 22
EXTERNAL = 1  # TensorProto.DataLocation
# AttributeProto.AttributeType values
_A_UNDEFINED, _A_FLOAT, _A_INT, _A_STRING, _A_TENSOR, _A_GRAPH, _A_FLOATS, _A_INTS, _A_STRINGS = range(9)
_A_TENSORS, _A_GRAPHS, _A_SPARSE_TENSOR, _A_SPARSE_TENSORS, _A_TYPE_PROTO, _A_TYPE_PROTOS = range(9, 15)
_ATTR_ONE = {_A_FLOAT: "f", _A_INT: "i", _A_STRING: "s", _A_GRAPH: "g", _A_SPARSE_TENSOR: "sparse_tensor",
             _A_TYPE_PROTO: "tp"}  # the field holding each attribute type's value
_ATTR_LIST = {_A_FLOATS: "floats", _A_INTS: "ints", _A_STRINGS: "strings", _A_TENSORS: "tensors",
              _A_GRAPHS: "graphs", _A_SPARSE_TENSORS: "sparse_tensors", _A_TYPE_PROTOS: "type_protos"}

# element types numpy holds natively; the others go through the onnx package (ml_dtypes types)
NUMPY_TYPES = {FLOAT: np.float32, UINT8: np.uint8, INT8: np.int8, UINT16: np.uint16, INT16: np.int16,
               INT32: np.int32, INT64: np.int64, BOOL: np.bool_, FLOAT16: np.float16, DOUBLE: np.float64,
               UINT32: np.uint32, UINT64: np.uint64}
# where a tensor without raw_data keeps its values, and their storage type (onnx's ``tensor_dtype_to_field``
# and ``tensor_dtype_to_storage_tensor_dtype``)
_FIELD = {FLOAT: ("float_data", np.float32), DOUBLE: ("double_data", np.float64), INT64: ("int64_data", np.int64),
          UINT32: ("uint64_data", np.uint64), UINT64: ("uint64_data", np.uint64), INT32: ("int32_data", np.int32),
          INT8: ("int32_data", np.int32), UINT8: ("int32_data", np.int32)}
_BITS16 = {FLOAT16, INT16, UINT16}  # 16-bit values stored as int32_data bit patterns

# message -> fields (name, number, type, label); type is a scalar name or ".onnx.<Message>"
_O, _R = "optional", "repeated"
_SCHEMA: dict[str, list[tuple[str, int, str, str]]] = {
    "StringStringEntryProto": [("key", 1, "string", _O), ("value", 2, "string", _O)],
    "OperatorSetIdProto": [("domain", 1, "string", _O), ("version", 2, "int64", _O)],
    "ModelProto": [("ir_version", 1, "int64", _O), ("opset_import", 8, ".onnx.OperatorSetIdProto", _R),
                   ("producer_name", 2, "string", _O), ("producer_version", 3, "string", _O),
                   ("domain", 4, "string", _O), ("model_version", 5, "int64", _O), ("doc_string", 6, "string", _O),
                   ("graph", 7, ".onnx.GraphProto", _O), ("metadata_props", 14, ".onnx.StringStringEntryProto", _R)],
    "GraphProto": [("node", 1, ".onnx.NodeProto", _R), ("name", 2, "string", _O),
                   ("initializer", 5, ".onnx.TensorProto", _R),
                   ("sparse_initializer", 15, ".onnx.SparseTensorProto", _R), ("doc_string", 10, "string", _O),
                   ("input", 11, ".onnx.ValueInfoProto", _R), ("output", 12, ".onnx.ValueInfoProto", _R),
                   ("value_info", 13, ".onnx.ValueInfoProto", _R)],
    "NodeProto": [("input", 1, "string", _R), ("output", 2, "string", _R), ("name", 3, "string", _O),
                  ("op_type", 4, "string", _O), ("domain", 7, "string", _O), ("overload", 8, "string", _O),
                  ("attribute", 5, ".onnx.AttributeProto", _R), ("doc_string", 6, "string", _O)],
    "AttributeProto": [("name", 1, "string", _O), ("ref_attr_name", 21, "string", _O),
                       ("doc_string", 13, "string", _O), ("type", 20, "int32", _O), ("f", 2, "float", _O),
                       ("i", 3, "int64", _O), ("s", 4, "bytes", _O), ("t", 5, ".onnx.TensorProto", _O),
                       ("g", 6, ".onnx.GraphProto", _O), ("sparse_tensor", 22, ".onnx.SparseTensorProto", _O),
                       ("tp", 14, ".onnx.TypeProto", _O), ("floats", 7, "float", _R), ("ints", 8, "int64", _R),
                       ("strings", 9, "bytes", _R), ("tensors", 10, ".onnx.TensorProto", _R),
                       ("graphs", 11, ".onnx.GraphProto", _R),
                       ("sparse_tensors", 23, ".onnx.SparseTensorProto", _R),
                       ("type_protos", 15, ".onnx.TypeProto", _R)],
    "ValueInfoProto": [("name", 1, "string", _O), ("type", 2, ".onnx.TypeProto", _O),
                       ("doc_string", 3, "string", _O)],
    "TypeProto": [("tensor_type", 1, ".onnx.TypeProto.Tensor", _O), ("denotation", 6, "string", _O)],
    "TypeProto.Tensor": [("elem_type", 1, "int32", _O), ("shape", 2, ".onnx.TensorShapeProto", _O)],
    "TensorShapeProto": [("dim", 1, ".onnx.TensorShapeProto.Dimension", _R)],
    "TensorShapeProto.Dimension": [("dim_value", 1, "int64", _O), ("dim_param", 2, "string", _O),
                                   ("denotation", 3, "string", _O)],
    "TensorProto": [("dims", 1, "int64", _R), ("data_type", 2, "int32", _O),
                    ("segment", 3, ".onnx.TensorProto.Segment", _O), ("float_data", 4, "float", _R),
                    ("int32_data", 5, "int32", _R), ("string_data", 6, "bytes", _R), ("int64_data", 7, "int64", _R),
                    ("name", 8, "string", _O), ("doc_string", 12, "string", _O), ("raw_data", 9, "bytes", _O),
                    ("external_data", 13, ".onnx.StringStringEntryProto", _R), ("data_location", 14, "int32", _O),
                    ("double_data", 10, "double", _R), ("uint64_data", 11, "uint64", _R)],
    "TensorProto.Segment": [("begin", 1, "int64", _O), ("end", 2, "int64", _O)],
    "SparseTensorProto": [("values", 1, ".onnx.TensorProto", _O), ("indices", 2, ".onnx.TensorProto", _O),
                          ("dims", 3, "int64", _R)],
}
_ONEOF = {"TypeProto": ("value", {"tensor_type"}), "TensorShapeProto.Dimension": ("value", {"dim_value", "dim_param"})}


@lru_cache(maxsize=None)
def _classes() -> dict:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="qsim/onnx_subset.proto", package="onnx", syntax="proto2")
    F = descriptor_pb2.FieldDescriptorProto
    messages = {}
    for full in _SCHEMA:  # outer messages come before their nested ones in _SCHEMA
        outer, _, inner = full.partition(".")
        msg = messages[outer].nested_type.add(name=inner) if inner else fdp.message_type.add(name=outer)
        messages[full] = msg
        oneof = _ONEOF.get(full)
        if oneof:
            msg.oneof_decl.add(name=oneof[0])
        for name, number, kind, label in _SCHEMA[full]:
            f = msg.field.add(name=name, number=number, label=getattr(F, "LABEL_" + label.upper()))
            if kind.startswith("."):
                f.type, f.type_name = F.TYPE_MESSAGE, kind
            else:
                f.type = getattr(F, "TYPE_" + kind.upper())
                if label == _R and kind not in ("string", "bytes") and full == "TensorProto":
                    f.options.packed = True  # onnx.proto: [packed = true] on TensorProto's numeric data
            if oneof and name in oneof[1]:
                f.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName("onnx." + name)) for name in _SCHEMA}


def parse_model(data: bytes):
    """An ONNX ModelProto from its serialized bytes (google.protobuf's DecodeError if not one)."""
    return _classes()["ModelProto"].FromString(data)


def make_node(op_type: str, inputs, outputs, name: str = ""):
    """A NodeProto (as ``onnx.helper.make_node`` without attributes)."""
    return _classes()["NodeProto"](op_type=op_type, input=list(inputs), output=list(outputs), name=name)


def _onnx_copy(message, onnx_class_name: str):
    import onnx

    return getattr(onnx, onnx_class_name).FromString(message.SerializeToString())


def infer_shapes(model):
    """``onnx.shape_inference.infer_shapes`` on a model read here (imports onnx)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(_onnx_copy(model, "ModelProto"))
    return parse_model(inferred.SerializeToString())


def to_array(t, base_dir: str = "") -> np.ndarray:
    """A TensorProto's values, as ``onnx.numpy_helper.to_array`` returns them."""
    dtype = NUMPY_TYPES.get(t.data_type)
    if dtype is None or t.data_location == EXTERNAL or t.HasField("segment") or sys.byteorder == "big":
        from onnx import numpy_helper

        return numpy_helper.to_array(_onnx_copy(t, "TensorProto"), base_dir=base_dir)
    dims = tuple(t.dims)
    if t.HasField("raw_data"):
        return np.frombuffer(t.raw_data, dtype=dtype).reshape(dims)
    if t.data_type in _BITS16:
        return np.array(t.int32_data, dtype=np.int32).view(np.uint32).astype(np.uint16).reshape(dims).view(dtype)
    if t.data_type == BOOL:
        return np.array(t.int32_data, dtype=np.int32).view(np.uint32).astype(np.uint8).view(dtype).reshape(dims)
    field, storage = _FIELD[t.data_type]
    return np.asarray(getattr(t, field), dtype=storage).astype(dtype).reshape(dims)


def np_dtype(elem_type: int) -> np.dtype:
    """numpy dtype of an ONNX element type (``onnx.helper.tensor_dtype_to_np_dtype``); KeyError if none."""
    if elem_type in NUMPY_TYPES:
        return np.dtype(NUMPY_TYPES[elem_type])
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def attribute_value(a):
    """An AttributeProto's value (``onnx.helper.get_attribute_value``), tensors as numpy arrays."""
    if a.ref_attr_name:
        raise ValueError(f"Cannot get value of reference attribute: {a}")
    kind = a.type
    if kind == _A_TENSOR:
        return to_array(a.t)
    if kind in _ATTR_ONE:
        return getattr(a, _ATTR_ONE[kind])
    if kind in _ATTR_LIST:
        return list(getattr(a, _ATTR_LIST[kind]))
    if kind == _A_UNDEFINED:
        return None
    raise ValueError(f"Unsupported ONNX attribute: {a}")


def read_model(path: str | os.PathLike):
    """The ModelProto in an .onnx file (external tensor data stays in its files until ``to_array``)."""
    with open(path, "rb") as f:
        return parse_model(f.read())
