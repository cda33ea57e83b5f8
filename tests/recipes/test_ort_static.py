"""Recipe ort_static: qsim's reproduction of onnxruntime's quantize_static writes the same QDQ model
(same nodes, bit-equal scales, zero points, weights and biases) as quantize_static, on a ResNet-style
CNN and a transformer encoder layer, for every calibration method and the type / symmetry / range
options; and qsim simulating the float model under the recipe equals onnxruntime running
quantize_static's file, element for element."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,  # noqa: E402
                                      QuantType, quantize_static)

import qsim  # noqa: E402
from qsim.errors import QsimError  # noqa: E402
from qsim.recipes.ort_static import quantize_static_like, quantize_static_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))
import _int_onnx as M  # noqa: E402  (tests/sim: the onnx.helper builders of the integer-executor tests)

logging.getLogger().setLevel(logging.ERROR)  # quantize_static's pre-processing advice
U8, S8 = QuantType.QUInt8, QuantType.QInt8
CONFIGS = {
    "minmax_s8s8_tensor": {},
    "minmax_s8s8_channel": {"per_channel": True},
    "minmax_u8s8_channel": {"activation_type": U8, "per_channel": True},
    "entropy_u8s8": {"calibrate_method": CalibrationMethod.Entropy, "activation_type": U8},
    "percentile_u8s8_channel": {"calibrate_method": CalibrationMethod.Percentile, "activation_type": U8,
                                "per_channel": True},
    "percentile_asymmetric": {"calibrate_method": CalibrationMethod.Percentile,
                              "extra_options": {"CalibTensorRangeSymmetric": False, "CalibPercentile": 99.9}},
    "distribution_s8s8": {"calibrate_method": CalibrationMethod.Distribution},
    "u8u8_reduce_range": {"activation_type": U8, "weight_type": U8, "reduce_range": True},
    "symmetric_flags": {"extra_options": {"ActivationSymmetric": True, "WeightSymmetric": False}},
    "moving_average": {"per_channel": True, "extra_options": {"CalibMovingAverage": True}},
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("ort_static")
    rng = np.random.default_rng(0)
    return {"cnn": (M.resnet_cnn(base / "cnn.onnx"),
                    [{"x": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)} for _ in range(3)]),
            "encoder": (M.encoder_block(base / "enc.onnx"),
                        [{"x": rng.standard_normal((1, 16, 32)).astype(np.float32)} for _ in range(3)]),
            "dir": base}


def ort_quantize(src, dst, feeds, **options) -> onnx.ModelProto:
    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, **options)
    return onnx.load(str(dst))


def _node_key(n):
    attrs = tuple(sorted((a.name, str(onnx.helper.get_attribute_value(a))) for a in n.attribute))
    return n.op_type, tuple(n.input), tuple(n.output), attrs


def differences(mine: onnx.ModelProto, theirs: onnx.ModelProto) -> list[str]:
    """Every node (op, inputs, outputs, attributes) and initializer (dtype, shape, bytes) that differs."""
    out = []
    a, b = sorted(map(_node_key, mine.graph.node)), sorted(map(_node_key, theirs.graph.node))
    out += [f"node only in qsim's: {k}" for k in sorted(set(a) - set(b))]
    out += [f"node only in onnxruntime's: {k}" for k in sorted(set(b) - set(a))]
    ia = {i.name: numpy_helper.to_array(i) for i in mine.graph.initializer}
    ib = {i.name: numpy_helper.to_array(i) for i in theirs.graph.initializer}
    out += [f"initializer {k} in one model only" for k in sorted(set(ia) ^ set(ib))]
    for k in sorted(set(ia) & set(ib)):
        x, y = ia[k], ib[k]
        if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
            out.append(f"initializer {k}: {x.dtype}{x.shape} {np.ravel(x)[:3]} vs {y.dtype}{y.shape} {np.ravel(y)[:3]}")
    return out


@pytest.mark.parametrize("model", ["cnn", "encoder"])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_same_qdq_model_as_quantize_static(models, model, config):
    src, feeds = models[model]
    options = CONFIGS[config]
    theirs = ort_quantize(src, models["dir"] / f"{model}_{config}.onnx", feeds, **options)
    assert differences(quantize_static_model(src, feeds, **options), theirs) == []


def test_comparison_sees_a_one_ulp_scale(models):
    """The comparison is sharp: a per-tensor model is not the per-channel one, and one scale moved by
    one ulp is reported."""
    src, feeds = models["cnn"]
    theirs = ort_quantize(src, models["dir"] / "pc.onnx", feeds, per_channel=True)
    assert differences(quantize_static_model(src, feeds), theirs)
    mine = quantize_static_model(src, feeds, per_channel=True)
    init = next(i for i in mine.graph.initializer if i.name == "c1b_scale")
    init.CopyFrom(numpy_helper.from_array(np.nextafter(numpy_helper.to_array(init), np.float32(1)), init.name))
    assert differences(mine, theirs) == [f"initializer c1b_scale: float32() {np.ravel(numpy_helper.to_array(init))} "
                                         f"vs float32() {np.ravel(numpy_helper.to_array(next(i for i in theirs.graph.initializer if i.name == 'c1b_scale')))}"]


@pytest.mark.parametrize("model", ["cnn", "encoder"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_simulation_equals_onnxruntime_running_quantize_static_file(models, model, per_channel):
    src, feeds = models[model]
    options = {"activation_type": U8, "per_channel": per_channel}
    ref = models["dir"] / f"{model}_sim_{per_channel}.onnx"
    ort_quantize(src, ref, feeds, **options)
    mine = models["dir"] / f"{model}_mine_{per_channel}.onnx"
    onnx.save(quantize_static_model(src, feeds, **options), str(mine))
    sess = ort.InferenceSession(str(ref), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for _ in range(2):  # fresh inputs, not the calibration batches
        x = {"x": (rng.standard_normal(feeds[0]["x"].shape) * 1.5).astype(np.float32)}
        got = qsim.simulate(mine, x)
        for out, want in zip(sess.get_outputs(), sess.run(None, x)):
            assert got[out.name].dtype == want.dtype
            assert np.count_nonzero(got[out.name] != want) == 0, out.name


def test_returned_graph_runs_on_the_integer_executor(models):
    """quantize_static_like's Graph: the integer executor's outputs dequantized are onnxruntime's."""
    from qsim.sim.metrics import real_value

    src, feeds = models["cnn"]
    ref = models["dir"] / "graph_ref.onnx"
    ort_quantize(src, ref, feeds, activation_type=U8, per_channel=True)
    g = quantize_static_like(src, feeds, activation_type="QUInt8", per_channel=True)
    x = {"x": np.random.default_rng(3).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    got = qsim.simulate(g, x)
    want = ort.InferenceSession(str(ref), providers=["CPUExecutionProvider"]).run(["logits"], x)[0]
    t = g.outputs[0]
    assert np.array_equal(real_value(g, t, got[t]), want)


def test_refusals_name_what_is_not_reproduced(models):
    src, feeds = models["cnn"]
    with pytest.raises(QsimError, match="DedicatedQDQPair"):
        quantize_static_model(src, feeds, extra_options={"DedicatedQDQPair": True})
    with pytest.raises(QsimError, match="QOperator"):
        quantize_static_model(src, feeds, quant_format="QOperator")
    with pytest.raises(QsimError, match="QInt16"):
        quantize_static_model(src, feeds, activation_type="QInt16")
    with pytest.raises(QsimError, match="calibration batch"):
        quantize_static_model(src, [])
    with pytest.raises(QsimError, match="calibrate_method"):
        quantize_static_model(src, feeds, calibrate_method="KL")
