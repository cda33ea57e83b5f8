"""Accuracy metrics of a quantized execution against the float reference.

Elementwise: SQNR in dB (``10 log10(sum ref^2 / sum (ref - test)^2)``, inf when equal), cosine
similarity of the flattened tensors, max abs error. Per sample: top-1 / top-k agreement with the
float model's prediction, task accuracy against labels, mean per-row cosine (embeddings).
``compare_traces`` gives all elementwise metrics per node, on real values (integer tensors are
dequantized with their TensorQuant), joined with the integer executor's overflow and saturation
counts when its stats are given.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.numerics.quantize import dequantize

STAT_COLUMNS = ("mode", "overflow_events", "saturated_low", "saturated_high")


def _pair(ref, test) -> tuple[np.ndarray, np.ndarray]:
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    if ref.shape != test.shape:
        raise QsimError(f"cannot compare tensors of shapes {ref.shape} and {test.shape}")
    return ref, test


def sqnr_db(ref, test) -> float:
    """Signal-to-quantization-noise ratio in dB; inf when identical, -inf for a zero reference."""
    ref, test = _pair(ref, test)
    noise = float(np.sum((ref - test) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return 10.0 * np.log10(signal / noise)


def cosine(ref, test) -> float:
    """Cosine similarity of the flattened tensors (1 for two zero tensors, 0 if only one is zero)."""
    ref, test = _pair(ref, test)
    a, b = ref.ravel(), test.ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def row_cosine(ref, test) -> np.ndarray:
    """Cosine similarity of each row (sample) of two (N, D) arrays."""
    ref, test = _pair(ref, test)
    ref, test = ref.reshape(len(ref), -1), test.reshape(len(test), -1)
    num = np.sum(ref * test, axis=1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(test, axis=1)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)


def max_abs_error(ref, test) -> float:
    ref, test = _pair(ref, test)
    return float(np.max(np.abs(ref - test))) if ref.size else 0.0


def topk_agreement(ref_logits, test_logits, k: int = 1) -> float:
    """Fraction of samples whose float (reference) top-1 class is among the quantized top-k classes
    (k = 1: the two predictions agree). Logits are (N, classes)."""
    ref, test = _pair(ref_logits, test_logits)
    ref, test = ref.reshape(len(ref), -1), test.reshape(len(test), -1)
    if not 1 <= k <= test.shape[1]:
        raise QsimError(f"k must be in 1..{test.shape[1]}, got {k}")
    top = np.argsort(-test, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == ref.argmax(axis=1)[:, None], axis=1)))


def accuracy(logits, labels, k: int = 1) -> float:
    """Top-k accuracy of (N, classes) logits against integer labels (N,)."""
    logits = np.asarray(logits, np.float64).reshape(len(logits), -1)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(logits):
        raise QsimError(f"{len(labels)} labels for {len(logits)} samples")
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def real_value(graph: Graph, tensor: str, value) -> np.ndarray:
    """Real values of a tensor as an executor returned it: integers are dequantized with the
    tensor's TensorQuant; float values (float tensors, fp8 emulation) are real already."""
    value = np.asarray(value)
    q = graph.quant_params.get(tensor)
    if q is not None and (np.issubdtype(value.dtype, np.integer) or value.dtype.name in ("int4", "uint4")):
        return dequantize(value.astype(np.int64), q)
    return value.astype(np.float32) if value.dtype.kind == "f" else value


def tensor_metrics(ref, test) -> dict:
    return {"sqnr_db": sqnr_db(ref, test), "cosine": cosine(ref, test), "max_abs_error": max_abs_error(ref, test)}


def compare_traces(float_trace: Mapping[str, np.ndarray], quant_trace: Mapping[str, np.ndarray], graph: Graph,
                   stats: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per node (its first output), in topological order: format, SQNR, cosine, max abs
    error against the float trace; plus the executor's per-node stats columns when ``stats`` is
    given (its ``node`` column names the node). ``graph`` is the quantized graph (its TensorQuant
    dequantize the integer trace)."""
    rows = []
    for node in graph.nodes():
        t = node.outputs[0]
        if t not in float_trace or t not in quant_trace:
            raise QsimError(f"tensor {t!r} (node {node.name!r}) is missing from a trace; run with trace=True")
        ref = np.asarray(float_trace[t], np.float64)
        test = real_value(graph, t, quant_trace[t])
        rows.append({"node": node.name, "op": node.op, "tensor": t, "format": graph.tensor(t).dtype,
                     **tensor_metrics(ref, test)})
    table = pd.DataFrame(rows, columns=["node", "op", "tensor", "format", "sqnr_db", "cosine", "max_abs_error"])
    if stats is not None:
        if "node" not in stats.columns:
            raise QsimError(f"executor stats need a 'node' column; got {list(stats.columns)}")
        extra = [c for c in stats.columns if c not in table.columns or c == "node"]
        table = table.merge(stats[extra], on="node", how="left")
    return table


def output_metrics(ref_outputs: Mapping[str, np.ndarray], test_outputs: Mapping[str, np.ndarray], graph: Graph,
                   labels=None) -> dict:
    """Metrics of each graph output; for 2-D outputs also top-1 / top-5 agreement and, with labels,
    the accuracy of the reference and of the quantized outputs."""
    out = {}
    for t in graph.outputs:
        ref = np.asarray(ref_outputs[t], np.float64)
        test = real_value(graph, t, test_outputs[t])
        m = tensor_metrics(ref, test)
        if ref.ndim == 2 and ref.shape[1] > 1:
            m["top1_agreement"] = topk_agreement(ref, test, 1)
            m["top5_agreement"] = topk_agreement(ref, test, min(5, ref.shape[1]))
            if labels is not None:
                m["accuracy_float"], m["accuracy_quant"] = accuracy(ref, labels), accuracy(test, labels)
        out[t] = m
    return out
