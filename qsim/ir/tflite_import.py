"""TFLite -> Graph: ``load_tflite(path)`` for int8 and int16x8 (and float) ``.tflite`` flatbuffers.

The file is read with the schema module LiteRT ships (``ai_edge_litert.schema_py_generated``).
TFLite is NHWC; the IR is NCHW: rank-4 activations are imported with NCHW shapes, weights are
stored in ``g.constants`` in the IR layout (conv OHWI -> OIHW, depthwise 1HWO -> O1HW) with
per-channel quantization axes moved to match, and the file's layout is recorded in the node's
``tflite_layout`` attribute. Fused activations become an ``activation`` attribute ("RELU",
"RELU6", ...). SAME padding becomes explicit pads (TensorFlow puts the odd pixel at the
bottom/right). Scales and zero points are the file's, unchanged (zero points as the int64 the
schema stores). Errors: a missing, truncated or non-TFLite file is a QsimError naming the file; an
unsupported op is a GraphError naming the op and the operator index and listing the supported ops.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from qsim.errors import GraphError, QsimError
from qsim.ir.graph import Graph
from qsim.ir.model_io import ModelIO, Port
from qsim.ir.tflite_context import NHWC_TO_NCHW, TfliteContext, _ints, _text, schema
from qsim.ir.tflite_ops import TFLITE_OPS

__all__ = ["load_tflite", "load_tflite_io", "TFLITE_OPS", "NHWC_TO_NCHW"]


def _read(path: str):
    if not os.path.isfile(path):
        raise QsimError(f"{path}: TFLite model file not found")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise QsimError(f"{path}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    try:
        model = schema().ModelT.InitFromPackedBuf(data, 0)
        if not model.subgraphs:
            raise ValueError("no subgraphs")
    except QsimError:
        raise
    except Exception as exc:  # offsets past the end of a truncated buffer, bad tables
        raise QsimError(f"{path}: truncated or corrupt TFLite file ({type(exc).__name__}: {exc})") from None
    return model, data


def load_tflite(path: str | os.PathLike) -> Graph:
    """Import subgraph 0 of a .tflite model into a validated Graph."""
    return load_tflite_io(path)[0]


def load_tflite_io(path: str | os.PathLike) -> tuple[Graph, ModelIO]:
    """``load_tflite`` and the file's own inputs and outputs (NHWC, the file's dtypes) mapped onto
    the graph (``ModelIO``): what LiteRT's interpreter takes and returns."""
    path = str(path)
    model, data = _read(path)
    raw_name = model.subgraphs[0].name
    name = (raw_name.decode(errors="replace") if isinstance(raw_name, bytes) else raw_name) or os.path.splitext(os.path.basename(path))[0]
    ctx = TfliteContext(model, data, path, Graph(name))
    for index, op in enumerate(ctx.sub.operators or []):
        op_name = ctx.op_name(op)
        handler: Callable | None = TFLITE_OPS.get(op_name)
        where = f"{path}: operator {index} ({op_name}, output {ctx.names[_ints(op.outputs)[0]]!r})"
        if handler is None:
            raise GraphError(f"{where}: unsupported op {op_name}; supported ops: {', '.join(sorted(TFLITE_OPS))}")
        try:
            handler(ctx, index, op)
        except QsimError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise GraphError(f"{where}: {exc}") from None
    for i in _ints(ctx.sub.outputs):
        if i not in ctx.alias:
            raise GraphError(f"{path}: graph output {ctx.names[i]!r} is not produced")
        if ctx.alias[i] not in ctx.g.outputs:
            ctx.g.mark_output(ctx.alias[i])
    ctx.g.model_io = _model_io(ctx)
    return ctx.g.validate(), ctx.g.model_io


def _model_io(ctx: TfliteContext) -> ModelIO:
    def port(i: int) -> Port:
        shape = ctx.shape(i)
        return Port(ctx.names[i], ctx.alias[i], np.dtype(ctx.dtype(i)).name, shape,
                    NHWC_TO_NCHW if len(shape) == 4 else None)

    inputs = tuple(port(i) for i in _ints(ctx.sub.inputs) if i in ctx.alias)
    return ModelIO(inputs, tuple(port(i) for i in _ints(ctx.sub.outputs)))
