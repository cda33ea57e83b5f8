"""The generator reaches the corners it promises: exact ties, extreme zero points, odd channel
counts, the whole scale range; and a seed names one case exactly."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .cases import write_case
from .gen import Gen


def _inits(path) -> dict:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_ties_are_planted(tmp_path):
    """QLinearMatMul tie cases: acc * M lands exactly on .5 (M as onnxruntime computes it)."""
    ties = cases = 0
    for seed in range(60):
        if not Gen(seed).tie:
            continue
        path, feeds = write_case("onnx", "QLinearMatMul", seed, tmp_path)
        p = _inits(path)
        if "b" not in p or np.size(p["b_scale"]) != 1:
            continue
        acc = (feeds["a"].astype(np.int64) - p["a_zero"].astype(np.int64)) @ (p["b"].astype(np.int64) - p["b_zero"].astype(np.int64))
        m = np.float32(np.float32(p["a_scale"] * p["b_scale"].reshape(())) / p["y_scale"])
        y = acc.astype(np.float32) * m
        ties += int(np.count_nonzero(y - np.floor(y) == 0.5))
        cases += 1
    assert cases >= 5 and ties >= 20, (cases, ties)


def test_corners_are_reached():
    g_zero, scales, channels = set(), [], set()
    for seed in range(400):
        g = Gen(seed)
        g_zero |= {g.zero_point("uint8"), g.zero_point("int8")}
        scales.append(float(g.scale()))
        channels.add(g.channels())
    assert {0, 255, -128, 127} <= g_zero
    assert min(scales) < 1e-5 and max(scales) > 10
    assert {1, 3, 7, 17, 33} <= channels


def test_a_seed_names_one_case(tmp_path):
    a = write_case("tflite", "CONV_2D", 7, tmp_path / "a" if (tmp_path / "a").mkdir() is None else None)
    b = write_case("tflite", "CONV_2D", 7, tmp_path / "b" if (tmp_path / "b").mkdir() is None else None)
    assert a[0].read_bytes() == b[0].read_bytes()
    assert all(np.array_equal(a[1][k], b[1][k]) for k in a[1])
