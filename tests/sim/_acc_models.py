"""Small models for the accuracy tests, made at test time (no files committed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_pool_fc(path: Path, batch: int = 2, seed: int = 0) -> Path:
    """x (batch,2,4,4) -> Conv 3x3 pad 1 (4) -> MaxPool 2 -> Flatten -> Gemm (5), float ONNX."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((4, 2, 3, 3)) * 0.5).astype(np.float32)
    b = (rng.standard_normal(4) * 0.1).astype(np.float32)
    fw = (rng.standard_normal((5, 16)) * 0.3).astype(np.float32)
    fb = (rng.standard_normal(5) * 0.1).astype(np.float32)
    n = helper.make_node
    graph = helper.make_graph(
        [n("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
         n("MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
         n("Flatten", ["p"], ["f"], name="flat"),
         n("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1)],
        "conv_pool_fc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
        [numpy_helper.from_array(v, k) for k, v in {"w": w, "b": b, "fw": fw, "fb": fb}.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)


def ort_quantize(src: Path, dst: Path, batches: list[dict], per_channel: bool = True) -> Path:
    """onnxruntime QDQ static quantization (uint8 activations, int8 weights, MinMax) on ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return Path(dst)


def random_batches(shape, n: int, seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(n)]
