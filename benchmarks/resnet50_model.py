"""int8 ResNet-50 for the simulator benchmarks: the light model the onnx package ships
(``light_resnet50.onnx``: the graph with every weight replaced by a ConstantOfShape) with seeded
random weights (He initialisation, sane BatchNorm statistics), its residual ``Sum`` nodes as ``Add``
(which quantize_static quantizes), made a QOperator model by onnxruntime's ``quantize_static``
(uint8 activations, per-channel int8 weights) after ``quant_pre_process`` (which folds BatchNorm
into the convolutions), calibrated on two random images."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter


def float_resnet50(path: Path, seed: int = 0) -> Path:
    src = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
    model = onnx.load(str(src))
    g = model.graph
    rng = np.random.default_rng(seed)
    shapes = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inits = [t for t in g.initializer if not t.name.endswith("__SHAPE")]  # real values the file keeps
    wanted = [(n.output[0], tuple(int(d) for d in shapes[n.input[0]]))
              for n in g.node if n.op_type == "ConstantOfShape"]
    keep = [n for n in g.node if n.op_type != "ConstantOfShape"]
    data = g.input[0].name
    for name, shape in wanted:
        if name.endswith("_riv_0"):  # running variance
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("_bn_s_0"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) > 1:  # conv / fc weights
            value = rng.standard_normal(shape) * np.sqrt((2.0 if len(shape) == 4 else 1.0) / np.prod(shape[1:]))
        else:  # BN shift, running mean, biases
            value = 0.1 * rng.standard_normal(shape)
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
    for node in keep:  # residual Sum of two inputs -> Add (quantize_static quantizes Add, not Sum)
        if node.op_type == "Sum" and len(node.input) == 2:
            node.op_type = "Add"
    inputs = [i for i in g.input if i.name == data]
    graph = helper.make_graph(keep, "resnet50", inputs, list(g.output), inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    m = version_converter.convert_version(m, 13)
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def quantized_resnet50(workdir: Path) -> Path:
    out = workdir / "resnet50_int8_qoperator.onnx"
    if out.exists():
        return out
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from onnxruntime.quantization.shape_inference import quant_pre_process

    fpath = float_resnet50(workdir / "resnet50_float.onnx")
    quant_pre_process(str(fpath), str(workdir / "resnet50_pre.onnx"))  # folds BatchNorm into Conv
    fpath = workdir / "resnet50_pre.onnx"
    name = onnx.load(str(fpath)).graph.input[0].name
    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{name: rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(str(fpath), str(out), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out
