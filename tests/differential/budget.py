"""What the CI run covers and what it tolerates, in one place.

``CI_SEEDS``: seeds 0..N-1 of every (family, op) unit, each run on every runtime of the family
(onnx/qdq: onnxruntime at ORT_ENABLE_ALL and ORT_DISABLE_ALL; tflite: LiteRT's reference,
optimized and XNNPACK kernel sets). The same seeds give the same models on every machine.

``QSIM_REFUSES``: units qsim does not simulate; each of their cases must be refused with a
QsimError (never a crash, never a different answer). ``KNOWN``: open mismatch classes (ids of
the findings list), expected to fail until fixed; a unit listed here is reported as xfail.
"""
from __future__ import annotations

CI_SEEDS = {"onnx": 60, "qdq": 40, "tflite": 40}

QSIM_REFUSES: dict[tuple[str, str], str] = {
    ("tflite", "MEAN"): "MEAN has no integer pipeline in qsim",
    ("tflite", "PAD"): "PAD has no integer pipeline in qsim",
}

# classes that hold for every unit of a family on one runtime: (family, runtime) -> finding
KNOWN_RUNTIME: dict[tuple[str, str], str] = {
    ("qdq", "ort-none"): "Q4 ORT_DISABLE_ALL runs QDQ units in float",
}

# (family, op) -> finding
KNOWN: dict[tuple[str, str], str] = {
    ("onnx", "QGemm"): "F2 float-output QGemm 1 ulp",
    ("onnx", "QLinearSoftmax"): "F3 softmax saturation / y_scale",
    ("onnx", "QLinearAveragePool"): "F5 ceil_mode ignored",
    ("onnx", "QLinearLeakyRelu"): "F6 LeakyRelu refused at run time",
    ("onnx", "MaxPool"): "F7 MaxPool padding crash",
    ("tflite", "SUB"): "T1 SUB float island",
    ("tflite", "CONV_2D"): "T2 int16x8 refused (int64 bias)",
    ("tflite", "DEPTHWISE_CONV_2D"): "T2 int16x8 refused (int64 bias)",
    ("tflite", "FULLY_CONNECTED"): "T2 int16x8 refused (int64 bias)",
    ("tflite", "LOGISTIC"): "T4 int16 LUT",
    ("tflite", "TANH"): "T4 int16 LUT",
    ("tflite", "SOFTMAX"): "T4 int16 softmax",
    ("tflite", "ADD"): "T5 int16 under XNNPACK",
    ("tflite", "MUL"): "T5 int16 under XNNPACK",
    ("tflite", "QUANTIZE"): "T6 QUANTIZE optimized / XNNPACK",
    ("tflite", "DEQUANTIZE"): "T7 DEQUANTIZE optimized",
    ("qdq", "AveragePool"): "Q2 s8 AveragePool ties / Q4",
    ("qdq", "Softmax"): "Q3 = F3",
    ("qdq", "LeakyRelu"): "F6 LeakyRelu refused at run time",
}

MAX_RUNTIME_REFUSED = 0.5  # a unit whose cases the runtime mostly rejects tests nothing: fail it
