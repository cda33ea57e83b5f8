"""The ``metric:`` of an evaluation block: one number per run, higher is better, and its drop
against the fp32 model on the same data.

| metric | accuracy (higher is better) | accuracy_drop |
|---|---|---|
| ``top1``, ``topk`` (``k:``) | fraction of samples whose label is among the top-k classes (the output's last axis; needs labels) | fp32 accuracy - accuracy |
| ``cosine`` | mean per-sample cosine similarity with the fp32 output | fp32 value (1) - cosine |
| ``sqnr`` | SQNR of the output against fp32, in dB | noise / signal power, ``10^(-sqnr/10)`` (0 at fp32; 0.01 = 20 dB) |
| ``mse`` | minus the mean squared error against the fp32 output | the MSE itself |
| ``pkg.mod:fn`` | ``fn(reference_outputs, outputs, labels)`` (arrays of the first output; labels or None) | ``fn(ref, ref, labels) - fn(ref, outputs, labels)`` |

The fp32 reference is the model's first output computed in float on the same samples. Both arrays
are that output as the runtime returns it (``qsim.evaluation.measure``): samples on axis 0, in the
model file's own layout (NHWC for a .tflite model, as LiteRT returns it) and dtype (float32 real
values for a float output, quantized codes dequantized). An SQNR drop is a ratio (a drop of dB
against infinity would always be infinite); an MSE is negated so that every metric ranks plans
the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsim.errors import QsimError
from qsim.evaluation.entry import is_entry, resolve_entry
from qsim.sim.metrics import accuracy, row_cosine, sqnr_db

METRICS = ("top1", "topk", "cosine", "sqnr", "mse")
NEEDS_LABELS = ("top1", "topk")


@dataclass(frozen=True)
class Metric:
    name: str               # one of METRICS, or the entry point's text
    k: int = 1
    base_dir: str | None = None  # where an entry point's module may live (the spec's folder)

    @property
    def label(self) -> str:
        return f"top{self.k}" if self.name == "topk" else self.name

    @property
    def needs_labels(self) -> bool:
        return self.name in NEEDS_LABELS

    def value(self, ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None) -> float:
        if self.name in NEEDS_LABELS:
            return accuracy(out, labels, self.k if self.name == "topk" else 1)
        if self.name == "cosine":
            return float(np.mean(row_cosine(ref, out)))
        if self.name == "sqnr":
            return sqnr_db(ref, out)
        if self.name == "mse":
            return -float(np.mean((np.asarray(ref, np.float64) - np.asarray(out, np.float64)) ** 2))
        fn = resolve_entry(self.name, Path(self.base_dir) if self.base_dir else None)
        try:
            result = fn(ref, out, labels)
            return float(result)
        except Exception as exc:  # noqa: BLE001 - a user metric that fails is reported with its name
            raise QsimError(f"metric {self.name} failed: {type(exc).__name__}: {exc}") from None

    def drop(self, reference_value: float, value: float) -> float:
        """How much worse ``value`` is than the fp32 model's ``reference_value`` (table above)."""
        if self.name == "sqnr":
            return 0.0 if value == math.inf else 10.0 ** (-value / 10.0)
        return reference_value - value


def metric_problem(name, k) -> str | None:
    """Why ``metric:`` / ``k:`` are not usable, or None (checked before any data is read)."""
    if not isinstance(name, str) or not name:
        return f"expected a metric name ({', '.join(METRICS)}) or package.module:function, got {name!r}"
    if name not in METRICS and not is_entry(name):
        return f"unknown metric {name!r}; known: {', '.join(METRICS)}, or a package.module:function"
    if k is not None and name != "topk":
        return "k is only for metric: topk"
    if name == "topk" and k is None:
        return "metric topk needs k: N (the number of top classes that may hold the label)"
    return None
