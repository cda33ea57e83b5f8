"""Runner for the TensorFlow Lite for Microcontrollers Python interpreter (PyPI ``tflite-micro``).

The x86-64 wheel links TFLM's portable reference kernels (``tensorflow/lite/micro/kernels/*.cc``,
no ``cmsis_nn/`` or other optimized kernel directory, no ``arm_*`` symbol) built without
``TFLITE_SINGLE_ROUNDING``: its ``tflite::micro::MultiplyByQuantizedMultiplier(int, int, int)``
disassembles to the gemmlowp pair (left shift, INT32_MIN * INT32_MIN saturation, nudge
2^30 / 1 - 2^30 with a truncating divide by 2^31, then RoundingDivideByPOT with the
``mask >> 1 + (x < 0)`` threshold): double rounding.
"""
from __future__ import annotations

import numpy as np


def run(model: bytes, inputs) -> np.ndarray:
    """Run a single-subgraph model; returns output 0."""
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_bytes(model)
    for i, v in enumerate(inputs):
        it.set_input(np.ascontiguousarray(v), i)
    it.invoke()
    return it.get_output(0)
