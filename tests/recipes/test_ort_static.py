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


@pytest.mark.parametrize("options", [
    {"extra_options": {"QDQKeepRemovableActivations": True}},
    {"extra_options": {"OpTypesToExcludeOutputQuantization": ["Conv"]}},
    {"nodes_to_exclude": ["conv_b"]}, {"op_types_to_quantize": ["Conv", "Relu"]}, {"per_channel": True}],
    ids=["keep_relu", "no_conv_outputs", "exclude_node", "op_types", "per_channel"])
def test_placement_options_on_a_concat_cnn(tmp_path, options):
    """Concat of two convolutions (one through a Relu): the placement options move Q/DQ as
    quantize_static moves them."""
    src = M.concat_cnn(tmp_path / "concat.onnx")
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.standard_normal((2, 3, 16, 16)).astype(np.float32)} for _ in range(2)]
    theirs = ort_quantize(src, tmp_path / "ref.onnx", feeds, **options)
    assert differences(quantize_static_model(src, feeds, **options), theirs) == []


def gather_where_split_pad_resize(path) -> Path:
    """Embedding Gather, Mul by a constant, Where, Split, Add; Pad (constant 0), Conv, Resize."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    n = helper.make_node
    nodes = [n("Gather", ["emb", "ids"], ["e"], name="embed"), n("Mul", ["e", "two"], ["m"], name="mul"),
             n("Where", ["cond", "e", "m"], ["w"], name="where"),
             n("Split", ["w", "split"], ["w1", "w2"], axis=2, name="split"),
             n("Add", ["w1", "w2"], ["out1"], name="add"),
             n("Pad", ["x", "pads"], ["xp"], mode="constant", name="pad"),
             n("Conv", ["xp", "wc", "bc"], ["c"], kernel_shape=[3, 3], name="conv"),
             n("Resize", ["c", "", "scales"], ["out2"], mode="nearest", name="resize")]
    values = {"emb": rng.standard_normal((10, 8)), "two": np.array(2.0), "wc": rng.standard_normal((5, 4, 3, 3)) * 0.3,
              "bc": rng.standard_normal(5) * 0.1, "scales": np.array([1, 1, 2, 2])}
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in values.items()]
    inits += [numpy_helper.from_array(np.array([4, 4], np.int64), "split"),
              numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]
    vi = helper.make_tensor_value_info
    g = helper.make_graph(nodes, "ops", [vi("ids", TensorProto.INT64, [2, 6]), vi("cond", TensorProto.BOOL, [2, 6, 8]),
                                         vi("x", TensorProto.FLOAT, [2, 4, 8, 8])],
                          [vi("out1", TensorProto.FLOAT, [2, 6, 4]), vi("out2", TensorProto.FLOAT, [2, 5, 16, 16])],
                          inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)


@pytest.mark.parametrize("options", [{}, {"activation_type": U8, "per_channel": True},
                                     {"extra_options": {"ForceQuantizeNoInputCheck": True}}],
                         ids=["s8s8", "u8s8_channel", "force"])
def test_gather_where_split_pad_resize_placement(tmp_path, options):
    src = gather_where_split_pad_resize(tmp_path / "ops.onnx")
    rng = np.random.default_rng(4)
    feeds = [{"ids": rng.integers(0, 10, (2, 6)), "cond": rng.random((2, 6, 8)) > 0.5,
              "x": rng.standard_normal((2, 4, 8, 8)).astype(np.float32)} for _ in range(2)]
    theirs = ort_quantize(src, tmp_path / "ref.onnx", feeds, **options)
    assert sum(n.op_type == "QuantizeLinear" for n in theirs.graph.node) >= 9  # it does quantize this graph
    assert differences(quantize_static_model(src, feeds, **options), theirs) == []


@pytest.mark.parametrize("moving_average", [False, True])
def test_strided_minmax_merges_as_quantize_static(models, moving_average):
    """CalibStridedMinMax: one calibrator call per stride of batches, ranges merged (by min/max, or
    moved by CalibMovingAverageConstant with the moving average)."""
    src, feeds = models["cnn"]
    feeds = feeds + [{"x": f["x"] * 1.7} for f in feeds[:1]]

    class StridedReader(CalibrationDataReader):
        def __init__(self):
            self.start, self.end = 0, len(feeds)

        def __len__(self):
            return len(feeds)

        def set_range(self, start_index, end_index):
            self.start, self.end = start_index, end_index

        def get_next(self):
            if self.start >= self.end:
                return None
            self.start += 1
            return feeds[self.start - 1]

    extra = {"CalibStridedMinMax": 2, "CalibMovingAverage": moving_average, "CalibMovingAverageConstant": 0.25}
    dst = models["dir"] / f"strided_{moving_average}.onnx"
    quantize_static(str(src), str(dst), StridedReader(), quant_format=QuantFormat.QDQ, extra_options=extra)
    assert differences(quantize_static_model(src, feeds, extra_options=extra), onnx.load(str(dst))) == []


def test_comparison_sees_a_one_ulp_scale(models):
    """The comparison is sharp: a per-tensor model is not the per-channel one, and one scale moved by
    one ulp is reported."""
    src, feeds = models["cnn"]
    theirs = ort_quantize(src, models["dir"] / "pc.onnx", feeds, per_channel=True)
    assert differences(quantize_static_model(src, feeds), theirs)
    mine = quantize_static_model(src, feeds, per_channel=True)
    init = next(i for i in mine.graph.initializer if i.name == "c1b_scale")
    init.CopyFrom(numpy_helper.from_array(np.nextafter(numpy_helper.to_array(init), np.float32(1)), init.name))
    ref = next(i for i in theirs.graph.initializer if i.name == "c1b_scale")
    assert differences(mine, theirs) == [f"initializer c1b_scale: float32() {np.ravel(numpy_helper.to_array(init))} "
                                         f"vs float32() {np.ravel(numpy_helper.to_array(ref))}"]


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


def test_an_op_whose_quantizer_is_not_reproduced_is_refused_by_node(tmp_path):
    from onnx import TensorProto, helper

    vi = helper.make_tensor_value_info
    g = helper.make_graph([helper.make_node("CumSum", ["x", "axis"], ["y"], name="running_sum")], "cs",
                          [vi("x", TensorProto.FLOAT, [2, 5])], [vi("y", TensorProto.FLOAT, [2, 5])],
                          [numpy_helper.from_array(np.array(1, np.int64), "axis")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(QsimError, match="node 'running_sum' \\(CumSum\\)"):
        quantize_static_model(model, [{"x": np.ones((2, 5), np.float32)}])
    quantize_static_model(model, [{"x": np.ones((2, 5), np.float32)}], nodes_to_exclude=["running_sum"])


def _digits_cnn(batch: int):
    """The digits CNN's graph with seeded random weights, and real digits images."""
    from qsim.evaluation.digits import digits_graph, load_digits_split

    rng = np.random.default_rng(5)
    shapes = {"conv1.weight": (8, 1, 3, 3), "conv1.bias": (8,), "conv2.weight": (16, 8, 3, 3), "conv2.bias": (16,),
              "fc.weight": (10, 256), "fc.bias": (10,)}
    weights = {k: (rng.standard_normal(s) * (0.3 if len(s) > 1 else 0.05)).astype(np.float32)
               for k, s in shapes.items()}
    x_tr, _, x_te, _ = load_digits_split()
    return digits_graph(weights, batch), [{"x": x_tr[i * batch:(i + 1) * batch]} for i in range(3)], {"x": x_te[:batch]}


@pytest.mark.parametrize("options", [{}, {"per_channel": True},
                                     {"activation_type": U8, "per_channel": True,
                                      "calibrate_method": CalibrationMethod.Entropy}],
                         ids=["s8s8_tensor", "s8s8_channel", "u8s8_entropy"])
def test_qsim_graph_in_equals_onnxruntime_on_its_onnx_form(tmp_path, options):
    """A qsim Graph (the digits CNN) goes through the recipe as the ONNX model graph_to_onnx writes:
    the same QDQ model as quantize_static on that file, and the same logits (int8 activations too:
    every unit of this CNN is fused by onnxruntime)."""
    from qsim.recipes.ort_export import graph_to_onnx

    graph, calib, test = _digits_cnn(32)
    src = tmp_path / "digits.onnx"
    onnx.save(graph_to_onnx(graph), str(src))
    theirs = ort_quantize(src, tmp_path / "ref.onnx", calib, **options)
    mine = quantize_static_model(graph, calib, **options)
    assert differences(mine, theirs) == []
    onnx.save(mine, str(tmp_path / "mine.onnx"))
    want = ort.InferenceSession(str(tmp_path / "ref.onnx"), providers=["CPUExecutionProvider"]).run(None, test)[0]
    assert np.count_nonzero(qsim.simulate(tmp_path / "mine.onnx", test)["fc"] != want) == 0


def test_export_refuses_an_op_it_does_not_write():
    from qsim.ir.graph import Graph
    from qsim.recipes.ort_export import graph_to_onnx

    g = Graph("ln")
    g.add_input("x", (2, 4))
    g.add_node("LayerNorm", "norm", ["x"])
    g.mark_output("norm")
    g.constants.update({t: np.ones(4, np.float32) for t in g.node("norm").weights.values()})
    with pytest.raises(QsimError, match="node 'norm' \\(LayerNorm\\)"):
        graph_to_onnx(g.validate())
