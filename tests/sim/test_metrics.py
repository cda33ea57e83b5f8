"""Metrics on hand-computed cases, and compare_traces on a hand-built quantized graph."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qsim.errors import QsimError
from qsim.ir.graph import Graph
from qsim.numerics.tensor_quant import TensorQuant
from qsim.sim.metrics import (accuracy, compare_traces, cosine, max_abs_error, output_metrics, real_value,
                              row_cosine, sqnr_db, topk_agreement)


def test_sqnr_by_hand():
    # signal 3^2 + 4^2 = 25, noise 0.5^2 = 0.25: 10 log10(100) = 20 dB
    assert sqnr_db([3.0, 4.0], [3.0, 4.5]) == pytest.approx(20.0)
    assert sqnr_db([1.0, 2.0], [1.0, 2.0]) == math.inf
    assert sqnr_db([0.0], [1.0]) == -math.inf


def test_cosine_and_max_abs_error_by_hand():
    assert cosine([1.0, 0.0], [1.0, 1.0]) == pytest.approx(1 / math.sqrt(2))
    assert cosine([1.0, 2.0], [-1.0, -2.0]) == pytest.approx(-1.0)
    assert cosine([0.0], [0.0]) == 1.0 and cosine([0.0], [1.0]) == 0.0
    assert max_abs_error([1.0, -2.0, 3.0], [1.5, -2.0, 0.0]) == 3.0
    np.testing.assert_allclose(row_cosine([[1, 0], [0, 2]], [[1, 1], [0, 5]]), [1 / math.sqrt(2), 1.0])
    with pytest.raises(QsimError, match="shapes"):
        cosine([1.0], [1.0, 2.0])


def test_topk_and_accuracy_by_hand():
    ref = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    test = np.array([[0.2, 0.7, 0.1], [0.1, 0.8, 0.5], [0.6, 0.3, 0.1], [0.0, 0.1, 0.9]])
    # ref top-1: 1, 0, 2, 2; test top-1: 1, 1, 0, 2 -> 2 of 4 agree
    assert topk_agreement(ref, test, 1) == 0.5
    # test top-2: {1,2}, {1,2}, {0,1}, {2,1}: ref's class is inside for rows 0 and 3 -> 0.5
    assert topk_agreement(ref, test, 2) == 0.5
    assert topk_agreement(ref, test, 3) == 1.0
    assert accuracy(test, [1, 0, 0, 2]) == 0.75 and accuracy(test, [1, 2, 1, 1], k=2) == 1.0
    with pytest.raises(QsimError, match="labels"):
        accuracy(test, [1, 2])


def _graph() -> Graph:
    g = Graph("tiny")
    g.add_input("x", (1, 4), dtype="int8")
    g.add_node("Relu", "relu", ["x"], dtype="int8")
    g.mark_output("relu")
    q = TensorQuant(np.float32(0.5), np.int8(1), "int8")
    g.quant_params.update(x=q, relu=q)
    return g


def test_real_value_dequantizes_integers_only():
    g = _graph()
    np.testing.assert_array_equal(real_value(g, "x", np.array([3, -1], np.int8)), [1.0, -1.0])  # (q - 1) * 0.5
    np.testing.assert_array_equal(real_value(g, "x", np.array([3.0], np.float32)), [3.0])  # fp8 / float: real


def test_compare_traces_by_hand_with_stats():
    g = _graph()
    float_trace = {"x": np.array([[1.0, -1.0, 0.2, 2.0]]), "relu": np.array([[1.0, 0.0, 0.2, 2.0]])}
    quant_trace = {"x": np.array([[3, -1, 1, 5]], np.int8), "relu": np.array([[3, 1, 1, 5]], np.int8)}
    stats = pd.DataFrame([{"node": "relu", "op": "Relu", "mode": "integer", "overflow_events": 0,
                           "saturated_low": 1, "saturated_high": 0, "elements": 4}])
    table = compare_traces(float_trace, quant_trace, g, stats)
    row = table.iloc[0]
    assert (row["node"], row["op"], row["format"]) == ("relu", "Relu", "int8")
    # quantized relu = [1, 0, 0, 2]: error [0, 0, 0.2, 0] -> SQNR 10 log10(5.04 / 0.04)
    assert row["sqnr_db"] == pytest.approx(10 * math.log10(5.04 / 0.04))
    assert row["max_abs_error"] == pytest.approx(0.2) and row["saturated_low"] == 1
    assert list(table.columns[:7]) == ["node", "op", "tensor", "format", "sqnr_db", "cosine", "max_abs_error"]
    with pytest.raises(QsimError, match="missing"):
        compare_traces({"x": float_trace["x"]}, quant_trace, g)


def test_output_metrics_with_labels():
    g = Graph("clf")
    g.add_input("x", (3, 2))
    g.add_node("Relu", "out", ["x"])
    g.mark_output("out")
    ref = {"out": np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])}
    test = {"out": np.array([[0.9, 0.1], [0.6, 0.4], [0.8, 0.0]])}
    m = output_metrics(ref, test, g, labels=[0, 1, 1])["out"]
    assert m["top1_agreement"] == pytest.approx(2 / 3) and m["accuracy_float"] == pytest.approx(2 / 3)
    assert m["accuracy_quant"] == pytest.approx(1 / 3) and m["top5_agreement"] == 1.0
