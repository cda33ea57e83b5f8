"""Post-training quantization of a float Graph for a precision plan, calibrated on user data.

``quantize_graph(graph, plan, calib_feeds)`` returns a copy of the graph (same nodes, same tensor
names) in the representation the ONNX importer produces for an onnxruntime QDQ model, so that the
integer executor runs both alike:

* an activation tensor whose format is an integer or fp8 format gets a per-tensor ``TensorQuant``
  (``g.quant_params``) from the chosen observer over the float reference's trace of every
  calibration batch, and its ``TensorSpec.dtype`` becomes the element type (``uint8``, ``int8``,
  ``int4``, ``int16``, ``float8e4m3fn`` ...). A tensor takes the activation format of its producer
  when that node is quantized, else of a quantized consumer (onnxruntime puts Q/DQ on both sides of
  a quantized op); the outputs of data movement ops (Reshape, Transpose, Flatten, MaxPool, ...)
  share their input's parameters, as onnxruntime's QDQ quantizer does, so they stay exact copies;
  index inputs (an Embedding's token ids) are not activations;
* matrix weights (Conv/Gemm ``weight``, Attention ``wq wk wv wo``, Embedding ``weight``) hold the
  quantized values in ``g.constants`` (ml_dtypes int4 / float8 where numpy has no type), symmetric,
  per channel along the output axis 0 (``per_channel=True``) or per tensor;
* a Conv/Gemm bias becomes int32 with scale ``fp32(s_in * s_w)`` and zero point 0 when both the
  input and the weight are integers (onnxruntime's rule: ``rint(fp32(b / scale))``); otherwise
  (fp8, weight-only plans) it stays float;
* the constant operand of AddConst/MulConst/... is quantized like an activation (per tensor,
  asymmetric, as onnxruntime quantizes an initializer input of Add/Mul);

Which op does what is its registry entry's ``QuantRule`` (``qsim.ir.registry``): ``weights``,
``bias``, ``activation_weights``, ``shares_input_params``, and the op's ``index_inputs``.
* fp16/bf16 formats are not scaled: weights are stored in that type, and activation tensors get the
  dtype ``float16``/``bfloat16`` (``run_fake_quant`` rounds them to it); fp32/tf32 stay float32.
  LayerNorm/BatchNorm parameters and Attention biases always stay float.

Nodes the plan leaves in float stay float. MX formats are not supported here (a QsimError says so).

``run_fake_quant`` executes such a graph in float with quantize-dequantize at every quantized tensor
(weights dequantized, each activation rounded to its grid): onnxruntime's QDQ semantics without the
integer kernels. It returns tensors as the integer executor does (integers for integer tensors,
real values otherwise). ``dequantized_graph`` gives the float reference of an already quantized graph.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.ir.registry import get_op
from qsim.numerics.tensor_quant import TensorQuant
from qsim.numerics.formats import BF16, FP16, FP32, FloatFormat, Format, IntFormat, MXFormat, get_format
from qsim.numerics.minifloat import round_float
from qsim.numerics.quantize import dequantize, quantize
from qsim.precision import PrecisionPlan, check_simulable, parse_plan
from qsim.sim.executor import check_feeds, run_float
from qsim.sim.float_ops import run_float_kernel
from qsim.sim.observers import (Observer, element_name, make_tensor_quant, quantized_format, scale_zero_point,
                                storage_type)

HALF = {FP16: "float16", BF16: "bfloat16"}
_FLOAT_DTYPES = {"float32", "float64", "float16", "bfloat16"}


def quantizable(fmt: Format) -> bool:
    """Formats that carry a scale and zero point: integers and fp8."""
    f = get_format(fmt)
    if isinstance(f, MXFormat):
        raise QsimError(f"quantize_graph does not support MX formats ({f.name}); the cost model does")
    return isinstance(f, IntFormat) or isinstance(f, FloatFormat) and f.name in ("fp8_e4m3", "fp8_e5m2")


def index_inputs(node) -> list[str]:
    """The node's inputs that hold integer indices (token ids), not quantizable values."""
    return [node.inputs[i] for i in get_op(node.op).index_inputs]


def activation_formats(graph: Graph, plan: PrecisionPlan) -> dict[str, Format]:
    """Format of every float activation tensor (fp32 when nothing quantizes it)."""
    out = {}
    for t, spec in graph.tensors.items():
        if spec.kind != "activation" or spec.dtype not in _FLOAT_DTYPES:
            continue  # ids, masks and weights are not calibrated activations
        users = [c for c in graph.consumers(t) if t not in index_inputs(c)]
        node = graph.producer(t)
        mine = plan.for_node(node).activation if node is not None else None
        theirs = [plan.for_node(c).activation for c in users]
        if mine is not None and quantizable(mine):
            out[t] = mine
        else:
            out[t] = next((f for f in theirs if quantizable(f)), mine or (theirs[0] if theirs else FP32))
    return out


def _calibrate(graph: Graph, feeds: Sequence[Mapping[str, np.ndarray]], tensors: dict[str, str],
               method: str, symmetric: bool, fp8_scale: str, percentile: float,
               ranges: Mapping[str, tuple] | None = None) -> dict[str, TensorQuant]:
    if not feeds:
        raise QsimError("quantize_graph needs at least one calibration batch (a dict of graph inputs)")
    ranges = ranges or {}
    observers = {t: Observer(method, None, percentile) for t in tensors if t not in ranges}
    for batch in feeds:
        trace = run_float(graph, batch, trace=True) if observers else {}
        for t, obs in observers.items():
            obs.update(trace[t])
    params = {t: observers[t].tensor_quant(f, symmetric, fp8_scale) for t, f in tensors.items() if t in observers}
    for t, f in tensors.items():
        if t in ranges:  # a recipe's own clipping range (entropy calibration, ...)
            scale, zero = scale_zero_point(np.atleast_1d(ranges[t][0]), np.atleast_1d(ranges[t][1]), f, symmetric,
                                           fp8_scale)
            params[t] = make_tensor_quant(scale[0], zero[0], f, None)
    return params


def quantize_weight(w: np.ndarray, fmt: Format, per_channel: bool, method: str = "minmax",
                    axis: int = 0, block: int = 0) -> tuple[np.ndarray, TensorQuant]:
    """Symmetric weight quantization (values in their storage type, parameters). ``block`` > 0:
    groups of ``block`` along the input axis 1 (ONNX blocked quantization; min/max per group)."""
    if block and w.ndim > 1:
        return _block_weight(w, fmt, block)
    obs = Observer(method, axis if per_channel and w.ndim > 1 else None).update(w)
    tq = obs.tensor_quant(fmt, symmetric=True, ndim=w.ndim)
    return _store(quantize(w, tq), tq), tq


def _block_weight(w: np.ndarray, fmt: Format, block: int, axis: int = 1) -> tuple[np.ndarray, TensorQuant]:
    x = np.moveaxis(np.asarray(w, np.float32), axis, -1)
    pad = (-x.shape[-1]) % block  # zeros do not change a block's amax
    x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), x.dtype)], axis=-1) if pad else x
    amax = np.abs(x.reshape(x.shape[:-1] + (-1, block))).max(axis=-1)
    scale, zero = scale_zero_point(-amax, amax, fmt, True)
    tq = TensorQuant(np.moveaxis(scale, -1, axis), np.moveaxis(zero, -1, axis).astype(storage_type(fmt)),
                     quantized_format(fmt), axis, block)
    return _store(quantize(w, tq), tq), tq


def _store(q: np.ndarray, tq: TensorQuant) -> np.ndarray:
    return np.asarray(q).astype(storage_type(tq.fmt))


def _quantize_bias(b: np.ndarray, xq: TensorQuant, wq: TensorQuant) -> tuple[np.ndarray, TensorQuant]:
    scale = (xq.scale * wq.scale).astype(np.float32)  # fp32 product, as the runtimes compute it
    tq = TensorQuant(scale, np.zeros(scale.shape, np.int32), "int32", 0 if scale.size > 1 else None)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint(np.asarray(b, np.float32) / np.broadcast_to(scale, b.shape))
    # clip in float64: float32 has no 2^31 - 1 (it rounds up to 2^31, which int32 cannot hold); 0 / 0 is 0
    q = np.nan_to_num(q.astype(np.float64), nan=0.0)
    return np.clip(q, -2**31, 2**31 - 1).astype(np.int32), tq


def _half(w: np.ndarray, fmt: Format) -> np.ndarray:
    if fmt == FP16:
        return np.asarray(w).astype(np.float16)
    import ml_dtypes

    return np.asarray(w, np.float32).astype(ml_dtypes.bfloat16)


def quantize_graph(graph: Graph, plan, calib_feeds: Sequence[Mapping[str, np.ndarray]],
                   observer: str = "minmax", per_channel: bool = True, symmetric_activations: bool = False,
                   percentile: float = 99.99, fp8_scale: str = "amax", weight_observer: str = "minmax",
                   weight_block: int = 0, activation_ranges: Mapping[str, tuple] | None = None) -> Graph:
    """A quantized copy of a float graph for ``plan`` (a PrecisionPlan or anything ``parse_plan``
    takes), calibrated by running the float reference on every batch of ``calib_feeds``.

    ``observer`` (minmax | percentile | mse) sets the activation ranges (per tensor, asymmetric
    unless ``symmetric_activations``); weights use ``weight_observer`` (minmax by default, as
    onnxruntime), symmetric, per channel when ``per_channel``, or in groups of ``weight_block``
    along the input axis (the bias of a grouped weight stays float: it has no single scale).
    ``activation_ranges``: tensor -> (lo, hi) clipping ranges chosen by a recipe (qsim.recipes),
    used instead of the observer's for those tensors."""
    plan = check_simulable(parse_plan(plan))
    if plan.recipes:  # a plan's recipes rewrite the graph around this call: qsim.recipes.apply runs them
        raise QsimError(f"quantize_graph does not run recipes ({', '.join(r.name for r in plan.recipes)}); "
                        "use qsim.recipes.apply(graph, plan, calib)")
    if graph.quant_params:
        raise QsimError(f"graph {graph.name!r} is already quantized ({len(graph.quant_params)} tensors "
                        "carry quantization parameters); quantize_graph takes a float graph")
    for batch in calib_feeds:
        check_feeds(graph, batch)
    formats = activation_formats(graph, plan)
    quant = {t: f for t, f in formats.items() if quantizable(f)}
    shared = _shared(graph, quant)
    params = _calibrate(graph, calib_feeds, {t: f for t, f in quant.items() if t not in shared},
                        observer, symmetric_activations, fp8_scale, percentile, activation_ranges)
    _pin_softmax_outputs(graph, params)
    for t, src in shared.items():  # in topological order: a chain of shares resolves front to back
        params[t] = params[src]
    dtypes = {t: element_name(f) if t in quant else HALF.get(f, graph.tensor(t).dtype) for t, f in formats.items()}
    consts, wparams, wdtypes = _weights(graph, plan, params, per_channel, weight_observer, weight_block)
    q = _rebuild(graph, dtypes, wdtypes)
    q.constants.update(consts)
    q.quant_params.update(params)
    q.quant_params.update(wparams)
    return q


def _pin_softmax_outputs(graph: Graph, params: dict[str, TensorQuant]) -> None:
    """8-bit Softmax outputs get scale 1/256 (zero point -128 for int8, 0 for uint8), as
    onnxruntime's quantizer sets them (quantization/operators/softmax.py): a probability fits
    [0, 1) exactly."""
    for node in graph.nodes():
        t = node.outputs[0] if node.op == "Softmax" else None
        q = params.get(t)
        if q is None or q.int_fmt is None or q.int_fmt.bits != 8:
            continue
        zp = -128 if q.int_fmt.signed else 0
        params[t] = TensorQuant(np.array(1 / 256, np.float32), np.array(zp, q.zero_point.dtype), q.fmt)


def _shared(graph: Graph, quant: dict[str, str]) -> dict[str, str]:
    """Outputs of data movement ops that take their input's parameters: output -> source tensor."""
    shared = {}
    for node in graph.nodes():
        src = node.inputs[0] if node.inputs else None
        if get_op(node.op).quant.shares_input_params and src in quant:
            for t in node.outputs:
                if quant.get(t) == quant[src]:
                    shared[t] = shared.get(src, src)
    return shared


def _weights(graph: Graph, plan: PrecisionPlan, act: dict[str, TensorQuant], per_channel: bool, method: str,
             block: int = 0):
    consts: dict[str, np.ndarray] = {}
    params: dict[str, TensorQuant] = {}
    dtypes: dict[str, str] = {}

    def put(t, value, dtype, tq=None):
        if t in dtypes and dtypes[t] != dtype:
            raise QsimError(f"weight {t!r} is shared by nodes the plan gives different formats")
        consts[t], dtypes[t] = value, dtype
        if tq is not None:
            params[t] = tq

    for node in graph.nodes():
        prec = plan.for_node(node)
        rule = get_op(node.op).quant
        xq = act.get(node.inputs[0]) if node.inputs else None
        for role, t in node.weights.items():
            if t not in graph.constants:
                raise QsimError(f"node {node.name!r}: weight {t!r} has no values; calibration needs a model "
                                "with weights")
            w = graph.constants[t]
            if role in rule.weights and quantizable(prec.weight):
                value, tq = quantize_weight(w, prec.weight, per_channel, method, block=block)
                put(t, value, tq.fmt.element_type, tq)
            elif role in rule.weights and prec.weight in HALF:
                put(t, _half(w, prec.weight), HALF[prec.weight])
            elif role in rule.activation_weights and node.inputs[0] in act and quantizable(prec.activation):
                tq = Observer().update(w).tensor_quant(prec.activation)
                put(t, _store(quantize(w, tq), tq), tq.fmt.element_type, tq)
            elif t not in dtypes:
                put(t, w, graph.tensor(t).dtype)
        if rule.bias in node.weights:  # int32 at s_in * s_w; grouped weights have no single scale: float
            bias, wq = node.weights[rule.bias], params.get(node.weights.get(rule.weights[0]))
            integer = wq is not None and xq is not None and all(isinstance(q.fmt, IntFormat) for q in (wq, xq))
            if integer and not wq.block_size:
                value, tq = _quantize_bias(graph.constants[bias], xq, wq)
                consts[bias], dtypes[bias], params[bias] = value, "int32", tq
    return consts, params, dtypes


def _rebuild(graph: Graph, dtypes: Mapping[str, str], wdtypes: Mapping[str, str]) -> Graph:
    """The same nodes and tensor names, with new element types."""
    q = Graph(graph.name)
    for t in graph.inputs:
        q.add_input(t, graph.tensor(t).shape, dtypes.get(t, graph.tensor(t).dtype))
    for node in graph.nodes():
        for t in node.weights.values():
            if t not in q.tensors:
                q.add_weight(t, graph.tensor(t).shape, wdtypes.get(t, graph.tensor(t).dtype))
        out = node.outputs[0]
        q.add_node(node.op, node.name, node.inputs, dict(node.attrs), outputs=node.outputs,
                   weights=dict(node.weights), dtype=dtypes.get(out, graph.tensor(out).dtype))
    for t in graph.outputs:
        q.mark_output(t)
    return q


def dequantized_graph(qgraph: Graph) -> Graph:
    """The float reference of a quantized graph: weights dequantized, no activation quantization."""
    dtypes = {t: "float32" for t, spec in qgraph.tensors.items()
              if spec.kind == "activation" and (t in qgraph.quant_params or spec.dtype in HALF.values())}
    weights = [t for n in qgraph.nodes() for t in n.weights.values()]
    g = _rebuild(qgraph, dtypes, {t: "float32" for t in weights})
    for t in weights:
        if t in qgraph.constants:
            g.constants[t] = real_weight(qgraph, t)
    return g


def real_weight(qgraph: Graph, t: str) -> np.ndarray:
    value = qgraph.constants[t]
    tq = qgraph.quant_params.get(t)
    if tq is None:
        value = np.asarray(value)
        return value.astype(np.float32) if value.dtype.name in ("float16", "bfloat16") else value
    return dequantize(_numeric(value), tq)


def _numeric(q: np.ndarray) -> np.ndarray:
    """ml_dtypes int4/float8 values as plain numpy (int64 / float32) for qsim.numerics."""
    q = np.asarray(q)
    if q.dtype.name in ("int4", "uint4", "int2", "uint2"):
        return q.astype(np.int64)
    if q.dtype.name.startswith("float8") or q.dtype.name == "bfloat16":
        return q.astype(np.float32)
    return q


def _to_grid(qgraph: Graph, t: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stored value, real value) of a tensor: quantize-dequantize where it carries parameters."""
    tq = qgraph.quant_params.get(t)
    dtype = qgraph.tensor(t).dtype
    if tq is not None and isinstance(tq.fmt, FloatFormat):  # fp8: real values on its grid
        real = dequantize(quantize(x, tq), tq) if np.asarray(x).dtype.kind == "f" else _numeric(x)
        return real, real
    if tq is not None:
        x = np.asarray(x)
        stored = _numeric(x) if x.dtype.kind in "iu" or x.dtype.name in ("int4", "uint4") else quantize(x, tq)
        return stored, dequantize(stored, tq)
    if dtype in ("float16", "bfloat16"):
        real = round_float(x, get_format(dtype), saturate=False).astype(np.float32)
        return real, real
    return x, x


def run_fake_quant(qgraph: Graph, feeds: Mapping[str, np.ndarray], trace: bool = False,
                   hooks: Sequence = ()) -> dict[str, np.ndarray]:
    """Execute a quantized graph in float with quantize-dequantize at every quantized tensor.

    Feeds may be real values (quantized on entry) or already quantized integers. Returns the outputs
    (every tensor when ``trace``) as the integer executor does: the stored integers for integer
    tensors (``qsim.sim.metrics.real_value`` dequantizes them), real values for fp8 tensors (on the
    fp8 grid, times the scale) and for float tensors. ``hooks`` (``qsim.recipes.Hook``: value
    emulation of run-time quantization) transform a node's input or a tensor's real values; a
    hooked tensor is returned as its real values."""
    check_feeds(qgraph, feeds)
    on_input = {(h.target, h.index): h.fn for h in hooks if h.kind == "input"}
    on_output = {h.target: h.fn for h in hooks if h.kind == "output"}
    real: dict[str, np.ndarray] = {}
    stored: dict[str, np.ndarray] = {}
    for t in qgraph.inputs:
        stored[t], real[t] = _to_grid(qgraph, t, feeds[t])
    weights: dict[str, np.ndarray] = {}
    for node in qgraph.nodes():
        w = {}
        for role, t in node.weights.items():
            if t not in weights:
                weights[t] = real_weight(qgraph, t).astype(np.float32, copy=False)
            w[role] = weights[t]
        args = [on_input[(node.name, i)](real[t]) if (node.name, i) in on_input else real[t]
                for i, t in enumerate(node.inputs)]
        outs = run_float_kernel(node.op, args, w, node.attrs)
        for t, value in zip(node.outputs, outs):
            stored[t], real[t] = _to_grid(qgraph, t, np.asarray(value, np.float32)
                                          if np.asarray(value).dtype.kind == "f" else value)
            if t in on_output:
                stored[t] = real[t] = on_output[t](real[t])
    return stored if trace else {t: stored[t] for t in qgraph.outputs}
