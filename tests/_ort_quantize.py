"""onnxruntime's ``quantize_static`` on random calibration data: the quantized models the import
and simulator tests compare against (shared by tests/unit and tests/sim; tests/ is on sys.path
because its conftest.py lives there)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx


def quantize(float_path, out_path, fmt: str, per_channel: bool, seed: int = 2, samples: int = 4,
             op_types=None, activations: str = "uint8") -> Path:
    """Quantize with onnxruntime's ``quantize_static`` (uint8 or int8 activations, int8 weights),
    calibrated on random data; ``fmt`` is "qdq" or "qoperator"."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    model = onnx.load(str(float_path))
    inp = model.graph.input[0]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    rng = np.random.default_rng(seed)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{inp.name: rng.standard_normal(shape).astype(np.float32)} for _ in range(samples)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(str(float_path), str(out_path), Reader(),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    per_channel=per_channel, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                    op_types_to_quantize=op_types)
    return Path(out_path)
