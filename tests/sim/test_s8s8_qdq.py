"""int8-activation (S8S8) QDQ models: onnxruntime (x86-64, ORT_ENABLE_EXTENDED and ALL) fuses a unit
only after turning its int8 Q -> DQ pairs into uint8, which it does only where the QuantizeLinear
feeds one consumer (qsim/ir/onnx_s8_units.py). A chain CNN (convolutions, an AveragePool,
an Add of a per-channel constant) is fused throughout (as uint8: the units round as onnxruntime's
uint8 kernels do) and simulated bit-exactly; a ResNet-style block (a tensor read by two nodes) leaves units in
float, as predicted from the graph and confirmed on onnxruntime's optimized graph, which qsim runs as onnxruntime
does (Conv in MlasConv's order: qsim.sim.float_mlas_conv)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ort = pytest.importorskip("onnxruntime.quantization")

import _int_onnx as M  # noqa: E402
from _ort_quantize import quantize  # noqa: E402

from qsim import simulate  # noqa: E402
from qsim.ir.onnx_s8_units import unfused_int8_units  # noqa: E402


def _chain(path):
    rng = np.random.default_rng(0)
    n = helper.make_node
    nodes = [n("Conv", ["x", "w0", "b0"], ["c0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv0"),
             n("Relu", ["c0"], ["r0"], name="relu0"),
             n("Conv", ["r0", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], name="conv1"),
             n("Relu", ["c1"], ["r1"], name="relu1"),
             n("AveragePool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1], name="pool1"),
             n("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[1, 1], name="conv2"),
             n("Add", ["c2", "shift"], ["a2"], name="add_shift"),
             n("Flatten", ["a2"], ["f"], name="flat"),
             n("Gemm", ["f", "wf", "bf"], ["y"], transB=1, name="fc")]
    inits = [M._w(rng, "w0", (8, 3, 3, 3)), M._w(rng, "b0", (8,), 0.1), M._w(rng, "w1", (16, 8, 3, 3)),
             M._w(rng, "b1", (16,), 0.1), M._w(rng, "w2", (4, 16, 1, 1)), M._w(rng, "b2", (4,), 0.1),
             M._w(rng, "shift", (1, 4, 1, 1), 0.7),
             M._w(rng, "wf", (10, 4 * 8 * 8)), M._w(rng, "bf", (10,), 0.1)]
    vi = helper.make_tensor_value_info
    return M._save(nodes, inits, [vi("x", TensorProto.FLOAT, [2, 3, 16, 16])], [vi("y", TensorProto.FLOAT, [2, 10])],
                   path, "chain")


def _ort(path, x, level):
    import onnxruntime

    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = level
    return onnxruntime.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("per_channel", [False, True])
def test_chain_cnn_is_fused_and_exact(tmp_path, per_channel):
    import onnxruntime

    q = quantize(_chain(tmp_path / "f.onnx"), tmp_path / "q.onnx", "qdq", per_channel, activations="int8")
    assert unfused_int8_units(onnx.load(str(q))) == []
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    got = simulate(q, {"x": x})["y"]
    for level in (onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL, onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED):
        assert np.array_equal(got, _ort(q, x, level))


@pytest.mark.parametrize("per_channel", [False, True])
def test_resnet_block_unfused_units_run_in_float_as_onnxruntime(tmp_path, per_channel, monkeypatch):
    """The units onnxruntime leaves in float (predicted from the graph, confirmed on its optimized graph):
    Conv (3x3, strided depthwise, strided 1x1 projection: MlasConv's order), Add and AveragePool, run as
    onnxruntime runs them: every output equal at enable_extended and enable_all (one intra-op thread)."""
    import onnxruntime

    import qsim.sim.compiled as compiled

    monkeypatch.setattr(compiled, "physical_cores", lambda: 1)
    q = quantize(M.resnet_cnn(tmp_path / "f.onnx"), tmp_path / "q.onnx", "qdq", per_channel, activations="int8")
    predicted = set(unfused_int8_units(onnx.load(str(q))))
    so = onnxruntime.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    onnxruntime.InferenceSession(str(q), so, providers=["CPUExecutionProvider"])
    in_float = {n.name for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node
                if n.op_type in ("Conv", "Add", "AveragePool", "Gemm", "MatMul", "GlobalAveragePool")}
    assert predicted == in_float == {"b1_conv1", "b1_add", "b2_dw", "b2_proj", "b2_add", "avgpool"}
    x = (np.random.default_rng(5).standard_normal((2, 3, 32, 32)) * 2).astype(np.float32)
    for level in ("enable_all", "enable_extended"):
        got = simulate(q, {"x": x}, ort_level=level)
        so = onnxruntime.SessionOptions()
        so.intra_op_num_threads = 1
        so.graph_optimization_level = getattr(onnxruntime.GraphOptimizationLevel, "ORT_" + level.upper())
        sess = onnxruntime.InferenceSession(str(q), so, providers=["CPUExecutionProvider"])
        for o, want in zip(sess.get_outputs(), sess.run(None, {"x": x})):
            assert np.array_equal(got[o.name], want), (level, o.name, int((got[o.name] != want).sum()))


def _fan_out(path):
    """An input read by an Add and a Mul (its QuantizeLinear feeds two nodes: int8, unfused), their
    results added and rectified."""
    rng = np.random.default_rng(3)
    n = helper.make_node
    nodes = [n("Add", ["x", "shift"], ["a"], name="add_shift"),
             n("Mul", ["x", "gain"], ["m"], name="mul_gain"),
             n("Add", ["a", "m"], ["s"], name="add_sum"),
             n("Relu", ["s"], ["y"], name="relu")]
    inits = [M._w(rng, "shift", (1, 3, 1, 1), 0.7), M._w(rng, "gain", (1, 3, 1, 1), 0.9)]
    vi = helper.make_tensor_value_info
    return M._save(nodes, inits, [vi("x", TensorProto.FLOAT, [2, 3, 8, 8])], [vi("y", TensorProto.FLOAT, [2, 3, 8, 8])],
                   path, "fan_out")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unfused_elementwise_units_run_in_float_as_onnxruntime(tmp_path, seed):
    """The unfused Add and Mul units run as float islands (DQ -> fp32 op -> QuantizeLinear), as
    onnxruntime runs them: equal on every output element."""
    import onnxruntime

    from qsim.ir.onnx_s8_units import int8_float_units

    q = quantize(_fan_out(tmp_path / "f.onnx"), tmp_path / "q.onnx", "qdq", False, activations="int8")
    model = onnx.load(str(q))
    assert set(unfused_int8_units(model)) == {"add_shift", "mul_gain"} == set(int8_float_units(model))
    x = (np.random.default_rng(seed).standard_normal((2, 3, 8, 8)) * 2).astype(np.float32)
    want = _ort(q, x, onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL)
    got = simulate(q, {"x": x})
    got = got[next(iter(got))]
    assert got.shape == want.shape and int(np.sum(got.view(np.int32) != want.view(np.int32))) == 0
