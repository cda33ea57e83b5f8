"""Top-level simulation API:

    simulate(model, inputs, policy=None, plan=None, trace=False, ort_cpu=None)
    compile_model(model, inputs=None, policy=None, plan=None, calib=None, threads=None, ort_cpu=None) -> CompiledModel

``model`` is a path (.onnx, .tflite, workload .yaml), a Graph or a Workload. What runs
(``qsim.sim.pipeline``):

* an already-quantized model (its tensors carry quantization parameters): the integer executor
  with the file's parameters unchanged, under ``policy``; the default policy follows the file type
  (ONNX: ``onnxruntime``; TFLite: ``tflite-reference``);
* a float model without a plan: the float reference executor;
* a float model with a plan (or a Workload whose plan is not fp32): the graph is quantized by
  ``qsim.sim.quantize_graph.quantize_graph`` calibrated on ``inputs``, then run by the integer
  executor (default policy ``onnxruntime``: quantize_graph produces onnxruntime's QDQ
  representation). fp8 / MX tensors are value-emulated (see ``qsim.sim.int_float``).

**The contract for a model file** (.onnx, .tflite): ``inputs`` is a dict keyed by the model's own
input names (or one array for a single-input model), each array in the model's own dtype and
layout (NHWC for a .tflite file); a missing or unknown name, a wrong dtype or shape is a QsimError
naming the input. The result is a dict keyed by the model's own output names, each array with
exactly the dtype, shape and layout that onnxruntime (.onnx) or LiteRT (.tflite) returns for the
same file and inputs: a model ending in DequantizeLinear / DEQUANTIZE returns float32 values, one
ending in a quantized tensor its integer codes. A float input of a quantized graph is quantized
with the runtime's own formula, as the file's QuantizeLinear / QUANTIZE does. The trace
(``trace=True``: ``(outputs, trace)``) keeps the IR's tensor names and layout (NCHW);
``load_model(path)[1].output_names`` maps the model's output names to them.

``simulate`` is ``compile_model(model, inputs, ...).run(inputs)`` (``qsim.sim.compiled``; exported as
``qsim.compile``): compile once and call ``run`` to simulate many batches without paying the
import, the quantization and the weight packing again. ``threads`` (default: ``QSIM_THREADS``, else
the physical cores, onnxruntime's default intra-op count) is the number of kernel threads.

``ort_level`` names the onnxruntime session an .onnx answer must equal: its graph optimization level,
``enable_all`` (onnxruntime's default), ``enable_extended``, ``enable_basic`` or ``disable_all``. At
``enable_extended`` and ``enable_all`` onnxruntime fuses each DequantizeLinear -> op -> QuantizeLinear
unit into its integer kernel, which qsim reproduces. Below them it runs such units in float (Conv,
MatMul, Gemm, pools, Softmax, Add, ...: float summation orders qsim does not reproduce), so a QDQ
model with such a unit is refused with a QsimError naming the nodes; QOperator models and units
whose float run equals the integer unit (MaxPool, Relu, Reshape, Concat, ...) are the same at every level.

``ort_cpu`` names the CPU whose onnxruntime the answer must equal, where its integer results depend on
the CPU: ``"avx2"`` (x86 without VNNI: MLAS sums uint8 x int8 products in int16 pairs that saturate;
float softmax sums in 8 lanes), ``"vnni"`` (AVX-512 VNNI / AVX-VNNI: exact sums; 16 lanes),
``"arm64"`` (exact sums), or ``"host"`` (this machine). None: the ``QSIM_ORT_CPU`` environment
variable, else ``"host"``; any other value is a QsimError.

For a Graph or a Workload, inputs and outputs are the IR's: keyed by IR tensor names, in the IR
layout, outputs as the executor stores them (integer codes for quantized tensors).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.ir.model_io import ModelIO
from qsim.sim.compiled import CompiledModel, compile_model
from qsim.sim.pipeline import DEFAULT_POLICY

__all__ = ["simulate", "compile_model", "CompiledModel", "load_model", "DEFAULT_POLICY"]


def load_model(path: str | os.PathLike, batch: int | None = None) -> tuple[Graph, ModelIO]:
    """An .onnx or .tflite file as (graph, its inputs and outputs mapped onto the graph)."""
    path = Path(path)
    if path.suffix == ".onnx":
        from qsim.ir.onnx_import import load_onnx_io
        return load_onnx_io(path, batch=batch)
    if path.suffix == ".tflite":
        from qsim.ir.tflite_import import load_tflite_io
        return load_tflite_io(path)
    raise QsimError(f"{path}: expected an .onnx or .tflite model file")


def load_source(model, inputs) -> tuple[Graph, Any, str, ModelIO | None]:
    """(graph, plan or None, file suffix or '', the file's I/O mapping or None)."""
    if isinstance(model, Graph):
        tflite = any("tflite_layout" in n.attrs for n in model.nodes())
        return model, None, ".tflite" if tflite else "", None
    path = Path(model) if isinstance(model, (str, os.PathLike)) else None
    if path is not None and path.suffix in (".onnx", ".tflite"):
        graph, io = load_model(path)
        batch = io.feed_batch(inputs)
        if batch is not None and batch != graph.tensor(io.inputs[0].tensor).shape[0]:
            graph, io = load_model(path, batch)  # a symbolic batch axis takes the feeds' batch
        return graph, None, path.suffix, io
    from qsim.workload import Workload, load_workload  # after the model files: they do not need it (cold start)

    if isinstance(model, Workload):
        return model.graph, model.plan, Path(model.source).suffix if model.source else "", None
    if path is not None:
        if path.suffix in (".yaml", ".yml"):
            w = load_workload(path)
            return w.graph, w.plan, Path(w.source).suffix, None
        raise QsimError(f"{path}: simulate takes an .onnx, .tflite or workload .yaml file")
    raise QsimError(f"simulate: model must be a Graph, a Workload or a file path, got {type(model).__name__}")


def graph_feeds(graph: Graph, inputs) -> dict[str, np.ndarray]:
    if isinstance(inputs, Mapping):
        return dict(inputs)
    if len(graph.inputs) != 1:
        raise QsimError(f"graph {graph.name!r} has inputs {graph.inputs}; give a dict name -> array")
    return {graph.inputs[0]: np.asarray(inputs)}


def simulate(model, inputs, policy: str | None = None, plan=None, trace: bool = False,
             acc_bits: int | None = None, overflow: str = "wrap", impl: str = "numba", threads: int | None = None,
             ort_level: str = "enable_all", ort_cpu: str | None = None):
    """Run ``model`` on ``inputs`` (see the module doc for the contract). ``acc_bits``,
    ``overflow`` and ``impl`` are passed to the integer executor; ``threads``: kernel threads;
    ``ort_level``: the onnxruntime session's graph optimization level the answer must equal;
    ``ort_cpu``: the CPU kind whose onnxruntime the answer must equal (module doc)."""
    compiled = compile_model(model, inputs, policy=policy, plan=plan, acc_bits=acc_bits, overflow=overflow,
                             impl=impl, threads=threads, ort_level=ort_level, ort_cpu=ort_cpu)
    return compiled.run(inputs, trace=trace)
