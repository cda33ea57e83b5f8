"""Recipe ``ort_static``: onnxruntime's ``quantize_static`` (QDQ format) reproduced by qsim.

    quantize_static_like(model, calib_feeds, calibrate_method="MinMax", per_channel=False, ...) -> Graph
    quantize_static_model(...)  -> onnx.ModelProto   (the QDQ model, as quantize_static writes it)

``model``: a float ONNX model (path or ModelProto), or a float qsim Graph (written as ONNX first by
``ort_export.graph_to_onnx``, tensor names kept). The other arguments are those of
``onnxruntime.quantization.quantize_static`` (QuantType / CalibrationMethod enums or their names):
``calibrate_method`` MinMax / Entropy / Percentile / Distribution, ``per_channel``,
``reduce_range``, ``activation_type`` and ``weight_type`` (QInt8 / QUInt8), ``op_types_to_quantize``,
``nodes_to_quantize``, ``nodes_to_exclude`` and these ``extra_options``: ActivationSymmetric,
WeightSymmetric, CalibTensorRangeSymmetric, CalibMovingAverage, CalibMovingAverageConstant,
CalibStridedMinMax, CalibPercentile, MinimumRealRange, QuantizeBias, QDQKeepRemovableActivations,
QDQDisableWeightAdjustForInt32Bias, OpTypesToExcludeOutputQuantization, ForceQuantizeNoInputCheck.
Any other option (QOperator format, TensorQuantOverrides, DedicatedQDQPair, SmoothQuant, 16-bit or
fp8 types, ...) is refused by name rather than ignored.

How: the float model is traced on every calibration batch (``ort_calibrate``: onnxruntime's float
kernels by default, the ones its calibrator runs), ranges are computed as onnxruntime's calibrator
computes them, Q/DQ are placed and parameters computed as its QDQ quantizer does (``ort_qdq_writer``,
``ort_qparams``), and the QDQ model is imported by ``qsim.ir.onnx_import`` like any QDQ file, so that
qsim's integer executor runs it exactly as it runs the file ``quantize_static`` writes. The tests
(tests/recipes/test_ort_static.py) demand the same nodes and bit-equal initializers as
``quantize_static``'s file, and 0 mismatching output elements against onnxruntime running that file.

Reference: onnxruntime 1.32 ``onnxruntime/quantization`` (calibrate.py, quant_utils.py,
qdq_quantizer.py, operators/); "8-bit Inference with TensorRT" (Migacz, GTC 2017) for the Entropy search.
"""
from __future__ import annotations

import copy
from pathlib import Path

import onnx

from qsim.errors import QsimError
from qsim.recipes import ort_calibrate, ort_qparams
from qsim.recipes.ort_qdq_writer import DEFAULT_OP_TYPES, QDQWriter

# The cost model's view of the recipe: per-tensor activation parameters (4-byte scale + 1-byte
# zero point), weight scales per output channel when per_channel, int32 biases; Q/DQ fuse into the
# integer kernels, so inference has no extra pass; calibration runs the float model once per batch.
METADATA = {"name": "ort_static", "activation_granularity": "per_tensor", "scale_bytes_per_tensor": 5,
            "weight_scale_bytes_per_channel": 4, "bias_bits": 32, "extra_scale_bytes": 0, "extra_inference_passes": 0,
            "calibration_passes": 1, "reference": "onnxruntime 1.32 quantize_static (QDQ)"}

SUPPORTED_EXTRA = {"ActivationSymmetric", "WeightSymmetric", "CalibTensorRangeSymmetric", "CalibMovingAverage",
                   "CalibMovingAverageConstant", "CalibStridedMinMax", "CalibPercentile", "MinimumRealRange",
                   "QuantizeBias", "QDQKeepRemovableActivations", "QDQDisableWeightAdjustForInt32Bias",
                   "OpTypesToExcludeOutputQuantization", "ForceQuantizeNoInputCheck"}
_8BIT = ("uint8", "int8")


def _name(v) -> str:
    return getattr(v, "name", v)


def _options(per_channel, reduce_range, activation_type, weight_type, op_types_to_quantize, nodes_to_quantize,
             nodes_to_exclude, extra: dict) -> dict:
    unknown = sorted(set(extra) - SUPPORTED_EXTRA)
    if unknown:
        raise QsimError(f"ort_static: extra_options {unknown} are not reproduced; supported: {sorted(SUPPORTED_EXTRA)}")
    act, wt = ort_qparams.qtype(activation_type), ort_qparams.qtype(weight_type)
    if act not in _8BIT or wt not in _8BIT:
        raise QsimError(f"ort_static: activation_type {_name(activation_type)} / weight_type {_name(weight_type)}: "
                        "only QInt8 and QUInt8 are reproduced")
    return {"per_channel": bool(per_channel), "reduce_range": bool(reduce_range), "activation": act, "weight": wt,
            "op_types": set(op_types_to_quantize or DEFAULT_OP_TYPES),
            "nodes_to_quantize": set(nodes_to_quantize or ()),
            "nodes_to_exclude": set(nodes_to_exclude or ()),
            "activation_symmetric": bool(extra.get("ActivationSymmetric", False)),
            "weight_symmetric": extra.get("WeightSymmetric"), "min_real_range": extra.get("MinimumRealRange"),
            "quantize_bias": bool(extra.get("QuantizeBias", True)),
            "keep_removable": bool(extra.get("QDQKeepRemovableActivations", False)),
            "disable_bias_adjust": bool(extra.get("QDQDisableWeightAdjustForInt32Bias", False)),
            "exclude_output_ops": set(extra.get("OpTypesToExcludeOutputQuantization", ())),
            "force": bool(extra.get("ForceQuantizeNoInputCheck", False))}


def _load(model) -> onnx.ModelProto:
    from qsim.ir.graph import Graph

    if isinstance(model, Graph):
        from qsim.recipes.ort_export import graph_to_onnx

        return onnx.shape_inference.infer_shapes(graph_to_onnx(model))
    if isinstance(model, onnx.ModelProto):
        m = copy.deepcopy(model)
    elif isinstance(model, (str, Path)):
        m = onnx.load(str(model))
    else:
        raise QsimError(f"ort_static takes a float ONNX model (path or ModelProto) or a float qsim Graph, got "
                        f"{type(model).__name__}")
    return onnx.shape_inference.infer_shapes(m)


def calibration_tensors(model: onnx.ModelProto, op_types) -> list[str]:
    """select_tensors_to_calibrate: float, non-initializer inputs and outputs of nodes of those op types."""
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.output) + list(g.input)}
    inits = {i.name for i in g.initializer}
    out = []
    for node in g.node:
        if node.op_type in op_types:
            for t in list(node.input) + list(node.output):
                if t and t not in inits and types.get(t) in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16) \
                        and t not in out:
                    out.append(t)
    return out


def quantize_static_model(model, calib_feeds, quant_format="QDQ", op_types_to_quantize=None, per_channel=False,
                          reduce_range=False, activation_type="QInt8", weight_type="QInt8", nodes_to_quantize=None,
                          nodes_to_exclude=None, calibrate_method="MinMax", extra_options=None,
                          tracer: str = "onnxruntime") -> onnx.ModelProto:
    """The QDQ model ``quantize_static`` writes for these arguments (see the module doc)."""
    if _name(quant_format) != "QDQ":
        raise QsimError(f"ort_static: quant_format {_name(quant_format)!r} is not reproduced; use QDQ")
    feeds = list(calib_feeds)
    if not feeds:
        raise QsimError("ort_static needs at least one calibration batch (a dict of model inputs)")
    extra = dict(extra_options or {})
    o = _options(per_channel, reduce_range, activation_type, weight_type, op_types_to_quantize, nodes_to_quantize,
                 nodes_to_exclude, extra)
    m = _load(model)
    tensors = calibration_tensors(m, o["op_types"])
    values = ort_calibrate.trace_batches(m, feeds, tensors, tracer)
    ranges = ort_calibrate.calibrate(values, _name(calibrate_method), extra)
    writer = QDQWriter(m, ranges, o)
    writer.place()
    return writer.write()


def quantize_static_like(model, calib_feeds, **options):
    """The quantized qsim Graph of ``quantize_static_model(model, calib_feeds, **options)``: the QDQ
    model imported by qsim's ONNX importer (run it with ``qsim.simulate`` or the integer executor).
    With int8 activations onnxruntime turns some int8 Q/DQ pairs into uint8 ones before fusing
    (``qsim.ir.onnx_s8_units``): save ``quantize_static_model``'s model and run the file with
    ``qsim.simulate``, which applies that view, to get onnxruntime's bits on such a graph."""
    import tempfile

    from qsim.ir.onnx_import import load_onnx

    qdq = quantize_static_model(model, calib_feeds, **options)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ort_static.onnx"
        onnx.save(qdq, str(path))
        return load_onnx(path)


def apply(model, calib, **params):
    """Recipe entry point (``recipe: {name: ort_static, calibrate_method: Entropy, per_channel: true}``)."""
    return quantize_static_like(model, calib, **params)


__all__ = ["quantize_static_like", "quantize_static_model", "apply", "METADATA", "calibration_tensors"]
