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


def _int16_add(path, s_a, s_b, s_y, b_shape):
    """An int16 ADD of a (2, 2) input and a constant of shape ``b_shape`` (LiteRT is not run here:
    on the power-of-two scales it aborts the process)."""
    from .tflite_units import TfliteModel

    g, m = Gen(1), TfliteModel()
    a = m.feed(g, "a", (2, 2), np.int16, (np.float32(s_a), 0))
    b = m.w.tensor("b", b_shape, np.int16, (np.float32(s_b), 0), g.codes("int16", b_shape, 0))
    y = m.out("y", (2, 2), np.int16, (np.float32(s_y), 0))
    m.w.op("ADD", [b, a], [y], m.w.options("AddOptionsT", fusedActivationFunction=0), "AddOptions")
    return m.save(path), m.feeds


def test_int16_add_litert_aborts_on_is_neither_generated_nor_simulated(tmp_path):
    """Long-run seed 800508: int16 ADD of a rank-0 constant with scales 2^-5, 2^-3, 2^-3 (each within
    0.07% in log2, which LiteRT's CheckedLog2 calls a power of two) aborts LiteRT under every kernel
    set. The generator moves the output scale off a power of two; qsim refuses such a model by name."""
    import pytest

    import qsim
    from qsim.errors import GraphError
    from qsim.sim.int_elementwise import litert_pot_scale
    from ai_edge_litert.interpreter import Interpreter

    path, _ = write_case("tflite", "ADD", 800508, tmp_path)
    scales = {d["name"]: d["quantization"][0] for d in Interpreter(model_path=str(path)).get_tensor_details()}
    assert litert_pot_scale(scales["a"]) and litert_pot_scale(scales["b"]) and not litert_pot_scale(scales["y"])
    assert litert_pot_scale(0.0312347412109375) and not litert_pot_scale(0.031275)
    for b_shape, refused in (((), True), ((2,), True), ((2, 2), False)):
        model, feeds = _int16_add(tmp_path / f"add_{len(b_shape)}.tflite", 0.0312347412109375,
                                  0.12493896484375, 0.12493896484375, b_shape)
        if refused:
            with pytest.raises(GraphError, match=r"node 'y' \(AddConst.*power-of-two scales and a broadcast"):
                qsim.simulate(str(model), feeds, policy="tflite-reference")
        else:
            assert qsim.simulate(str(model), feeds, policy="tflite-reference")["y"].shape == (2, 2)
