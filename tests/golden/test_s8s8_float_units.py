"""S8S8 QDQ Gemm, MatMul and Conv units that onnxruntime leaves in float, against onnxruntime 1.32 (CPU, x86-64, AVX2).

An int8 QuantizeLinear whose DequantizeLinear feeds two nodes stays int8, and onnxruntime runs the Gemm
reading it as DQ -> fp32 Gemm (MLAS SGEMM) -> QuantizeLinear (``qsim.ir.onnx_s8_units``). qsim refused
such models; it now runs the Gemm (transB=1) in MLAS's order (``qsim.sim.float_mlas_gemm``). Measured
(this file's shapes, both session levels, 1 / 2 / 4 threads): every fp32 output equal, where numpy's
product differed on about 35 % of them; with a QuantizeLinear tie planted on an output where numpy's last
bit differs, qsim's codes equal onnxruntime's and numpy's order would give another code. Conv units
likewise (``qsim.sim.float_mlas_conv``, MlasConv's algorithms and thread split; below), and MatMul units,
by a DQ'd constant weight or of two activations with batch axes (``float_mlas_gemm.batched``; below)."""
from __future__ import annotations

import platform

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

import qsim  # noqa: E402
from qsim.sim import float_ops  # noqa: E402
from qsim.sim.int_runtime import ort_float_lanes  # noqa: E402

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or ort_float_lanes("host") != 8,
                                reason="measured on x86-64 with MLAS's FMA3 (8-lane) kernels")
f32 = np.float32
LEVELS = {"disable_all": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "enable_all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
SX, ZX = f32(0.037), 3
SHAPES = [(1, 512, 10), (1, 300, 7), (1, 64, 1), (2, 300, 150), (5, 700, 40), (16, 130, 150), (16, 9, 6), (3, 1000, 2)]


def _unit(rng, wshape, sy, op):
    """An int8 QDQ unit around ``op`` (reading xd, wd, bd, writing y): int8 weights of ``wshape`` with
    per-output-channel scales, an int32 bias, the output quantized at ``sy``; a second reader of the DQ
    output (a Relu branch) keeps the int8 pair int8, so onnxruntime leaves the unit in float. Returns
    (initializers, nodes, wq, sw, bq, sb)."""
    wq = rng.integers(-127, 128, wshape).astype(np.int8)
    sw = (rng.random(wshape[0]) * 0.02 + 0.005).astype(f32)
    bq = rng.integers(-3000, 3000, wshape[0]).astype(np.int32)
    sb = (sw * SX).astype(f32)
    t = numpy_helper.from_array
    inits = [t(wq, "wq"), t(sw, "sw"), t(bq, "bq"), t(sb, "sb"), t(np.asarray(SX), "sx"), t(np.int8(ZX), "zx"),
             t(np.asarray(f32(sy)), "sy"), t(np.int8(-2), "zy")]
    nd = helper.make_node
    nodes = [nd("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="qx"),
             nd("DequantizeLinear", ["xq", "sx", "zx"], ["xd"], name="dqx"),
             nd("DequantizeLinear", ["wq", "sw"], ["wd"], name="dqw", axis=0),
             nd("DequantizeLinear", ["bq", "sb"], ["bd"], name="dqb", axis=0), op,
             nd("QuantizeLinear", ["y", "sy", "zy"], ["yq"], name="qy"),
             nd("DequantizeLinear", ["yq", "sy", "zy"], ["out"], name="dqy"),
             nd("Relu", ["xd"], ["r"], name="relu"), nd("QuantizeLinear", ["r", "sx", "zx"], ["rq"], name="qr"),
             nd("DequantizeLinear", ["rq", "sx", "zx"], ["out2"], name="dqr")]
    return inits, nodes, wq, sw, bq, sb


def _model(m, k, n, sy, expose, seed):
    rng = np.random.default_rng(seed)
    inits, nodes, wq, sw, bq, sb = _unit(rng, (n, k), sy, helper.make_node("Gemm", ["xd", "wd", "bd"], ["y"], transB=1,
                                                                          name="fc"))
    vi = helper.make_tensor_value_info
    outs = [vi("out", TensorProto.FLOAT, [m, n]), vi("out2", TensorProto.FLOAT, [m, k])]
    if expose:
        outs.append(vi("y", TensorProto.FLOAT, [m, n]))
    g = helper.make_graph(nodes, "s8gemm", [vi("x", TensorProto.FLOAT, [m, k])], outs, inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    wd = (wq.astype(f32) * sw[:, None]).astype(f32)
    return model, wd, (bq.astype(f32) * sb).astype(f32), (rng.standard_normal((m, k)) * 2).astype(f32)


def _ort(model, x, level, threads=1):
    so = ort.SessionOptions()
    so.graph_optimization_level = LEVELS[level]
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})


def _real_x(x):
    q = np.clip(np.rint(x / SX) + ZX, -128, 127)
    return ((q - ZX).astype(f32) * SX).astype(f32)


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("level", list(LEVELS))
def test_float_gemm_values_equal_onnxruntime(level, threads, monkeypatch):
    import qsim.sim.compiled as compiled

    monkeypatch.setattr(compiled, "physical_cores", lambda: threads)
    compared = numpy_differ = 0
    for i, (m, k, n) in enumerate(SHAPES):
        model, wd, b, x = _model(m, k, n, 0.05, True, i)
        y = _ort(model, x, level, threads)[2]
        mine = float_ops.gemm([_real_x(x)], {"weight": wd, "bias": b}, {"ort_sgemm": True})[0]
        assert np.array_equal(mine, y), (m, k, n, int((mine != y).sum()))
        compared += y.size
        numpy_differ += int(((_real_x(x) @ wd.T + b).astype(f32) != y).sum())
    assert compared == 3020 and numpy_differ > compared // 5, numpy_differ  # numpy's order is not onnxruntime's


def _tie_scale(y, other):
    """An output scale putting y[i] exactly on a .5 code boundary where ``other`` (numpy) differs."""
    for i in np.flatnonzero(y.ravel() != other.ravel()):
        v = y.ravel()[i]
        for half in (2.5, 5.5, 11.5, 40.5, -3.5, -20.5):
            s = f32(v / f32(half))
            if s > 0 and f32(v / s) == f32(half):
                return s
    return None


# enable_all only: at disable_all onnxruntime runs every QDQ unit in float and qsim still refuses the
# model there (``float_qdq_units``), though the Gemm's values are equal at that level too (above).
@pytest.mark.parametrize("level", ["enable_all"])
def test_s8s8_gemm_unit_codes_with_planted_ties(tmp_path, level, monkeypatch):
    import onnx
    import qsim.sim.compiled as compiled

    monkeypatch.setattr(compiled, "physical_cores", lambda: 1)
    planted = 0
    for i, (m, k, n) in enumerate(SHAPES):
        model, wd, b, x = _model(m, k, n, 0.05, True, i)
        y = _ort(model, x, level)[2]
        sy = _tie_scale(y, (_real_x(x) @ wd.T + b).astype(f32))
        if sy is None:
            continue
        planted += 1
        model = _model(m, k, n, sy, False, i)[0]
        path = tmp_path / f"g{i}.onnx"
        onnx.save(model, str(path))
        want = _ort(model, x, level)
        got = qsim.simulate(path, {"x": x}, ort_level=level)
        assert np.array_equal(got["out"], want[0]) and np.array_equal(got["out2"], want[1]), (m, k, n)
        numpy_codes = np.clip(np.rint((_real_x(x) @ wd.T + b).astype(f32) / sy) - 2, -128, 127)
        assert not np.array_equal((numpy_codes + 2) * sy, want[0] + 2 * sy)  # the tie decides a code
    assert planted >= 6


# -- Conv units: MlasConv's order (qsim.sim.float_mlas_conv), one case per algorithm and thread split --
# (Cin, Cout, H, kernel, stride, pad, dilation, groups, batch): the segmented im2col form (3x3 pad 1; stride 2,
# cut in two at 2 threads; the 7x7 stem, cut at 4), the direct 1x1, the expanded GEMM (1x1 stride 2, a 3x3 on a
# small image), depthwise, grouped with batch 2, dilation 2
CONVS = [(16, 16, 8, 3, 1, 1, 1, 1, 1), (32, 64, 15, 3, 2, 1, 1, 1, 1), (64, 128, 8, 1, 1, 0, 1, 1, 1),
         (64, 128, 16, 1, 2, 0, 1, 1, 1), (3, 64, 28, 7, 2, 3, 1, 1, 1), (32, 32, 14, 3, 1, 1, 1, 32, 1),
         (32, 64, 12, 3, 1, 1, 1, 4, 2), (16, 32, 16, 3, 1, 2, 2, 1, 1), (128, 128, 5, 3, 1, 1, 1, 1, 1)]


def _conv_attrs(k, s, p, d, g):
    return {"kernel": k, "stride": s, "pad": p, "dilation": d, "groups": g}


def _conv_model(case, sy, expose, seed):
    c, o, h, k, s, p, d, g, n = case
    rng = np.random.default_rng(100 + seed)
    inits, nodes, wq, sw, bq, sb = _unit(rng, (o, c // g, k, k), sy, helper.make_node(
        "Conv", ["xd", "wd", "bd"], ["y"], name="conv", kernel_shape=[k, k], strides=[s, s], pads=[p] * 4,
        dilations=[d, d], group=g))
    oh = (h + 2 * p - d * (k - 1) - 1) // s + 1
    vi = helper.make_tensor_value_info
    outs = [vi("out", TensorProto.FLOAT, [n, o, oh, oh]), vi("out2", TensorProto.FLOAT, [n, c, h, h])]
    if expose:
        outs.append(vi("y", TensorProto.FLOAT, [n, o, oh, oh]))
    gr = helper.make_graph(nodes, "s8conv", [vi("x", TensorProto.FLOAT, [n, c, h, h])], outs, inits)
    model = helper.make_model(gr, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    wd = (wq.astype(f32) * sw[:, None, None, None]).astype(f32)
    return model, wd, (bq.astype(f32) * sb).astype(f32), (rng.standard_normal((n, c, h, h)) * 2).astype(f32)


def _numpy_conv(case, x, wd, b):
    return float_ops.conv([_real_x(x)], {"weight": wd, "bias": b}, _conv_attrs(*case[3:8]))[0]


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("level", list(LEVELS))
def test_float_conv_values_equal_onnxruntime(level, threads, monkeypatch):
    import qsim.sim.compiled as compiled

    monkeypatch.setattr(compiled, "physical_cores", lambda: threads)
    compared = numpy_differ = 0
    for i, case in enumerate(CONVS):
        model, wd, b, x = _conv_model(case, 0.05, True, i)
        y = _ort(model, x, level, threads)[2]
        mine = float_ops.conv([_real_x(x)], {"weight": wd, "bias": b}, {**_conv_attrs(*case[3:8]), "ort_sconv": True})[0]
        assert np.array_equal(mine, y), (case, int((mine != y).sum()))
        compared += y.size
        numpy_differ += int((_numpy_conv(case, x, wd, b) != y).sum())
    assert compared == 70144 and numpy_differ > compared // 4, numpy_differ  # numpy's order is not onnxruntime's


@pytest.mark.parametrize("threads", [1, 2])
def test_s8s8_conv_unit_codes_with_planted_ties(tmp_path, threads, monkeypatch):
    import onnx
    import qsim.sim.compiled as compiled

    monkeypatch.setattr(compiled, "physical_cores", lambda: threads)
    planted = 0
    for i, case in enumerate(CONVS):
        model, wd, b, x = _conv_model(case, 0.05, True, i)
        y = _ort(model, x, "enable_all", threads)[2]
        numpy_y = _numpy_conv(case, x, wd, b)
        sy = _tie_scale(y, numpy_y)
        if sy is None:
            continue
        planted += 1
        model = _conv_model(case, sy, False, i)[0]
        path = tmp_path / f"c{i}.onnx"
        onnx.save(model, str(path))
        want = _ort(model, x, "enable_all", threads)
        got = qsim.simulate(path, {"x": x}, ort_level="enable_all")
        assert np.array_equal(got["out"], want[0]) and np.array_equal(got["out2"], want[1]), case
        numpy_codes = np.clip(np.rint(numpy_y / sy) - 2, -128, 127)
        assert not np.array_equal((numpy_codes + 2) * sy, want[0] + 2 * sy)  # the tie decides a code
    assert planted >= 8


# -- MatMul units: MLAS's SGEMM with B not transposed (qsim.sim.float_mlas_gemm.batched); a DQ'd constant B
# (the importer's Gemm with ``kn_weight``) and two activations (attention's Q x K^T and scores x V) --
MM_LEVELS = {"enable_all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
             "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}
# constant B: (A's shape, N): M = 1 kernels (N = 1, a pair and a single row of B after the blocks of four),
# K slices, a 3-D A folded into M, the thread split of N and M
MM_CONST = [((1, 768), 64), ((1, 7), 13), ((1, 1, 300), 3072), ((1, 16, 64), 256), ((64, 768), 768), ((5, 130), 1),
            ((33, 9), 150)]
# two activations: attention shapes, broadcast batches, M = 1 slices, a column (N = 1), a 2-D B under a 3-D A,
# batches whose GEMMs share the threads (MlasGemmBatch's ThreadsPerGemm)
MM_ACT = [((1, 12, 16, 64), (1, 12, 64, 16)), ((1, 12, 16, 16), (1, 12, 16, 64)), ((2, 3, 1, 40), (2, 3, 40, 9)),
          ((4, 7, 30), (4, 30, 1)), ((3, 5, 20), (20, 6)), ((2, 1, 8, 16), (1, 3, 16, 8)), ((2, 1, 40), (1, 40, 30)),
          ((2, 1, 3000), (2, 3000, 200)), ((2, 64, 768), (2, 768, 96))]


def _mm_model(a_shape, b_shape, sy, expose, seed):
    """MatMul of the DQ'd int8 ``a`` (read by a Relu too: it stays int8, the unit unfused) by a DQ'd
    constant (K, N) weight (``b_shape`` an int N) or by a second such activation ``b``."""
    rng = np.random.default_rng(200 + seed)
    t, nd, vi = numpy_helper.from_array, helper.make_node, helper.make_tensor_value_info
    inits = [t(np.asarray(SX), "sx"), t(np.int8(ZX), "zx"), t(np.asarray(f32(sy)), "sy"), t(np.int8(-2), "zy")]
    feeds = {"a": (rng.standard_normal(a_shape) * 2).astype(f32)}
    nodes, outs, ins = [], [], [vi("a", TensorProto.FLOAT, list(a_shape))]
    if isinstance(b_shape, int):
        wq = rng.integers(-127, 128, (a_shape[-1], b_shape)).astype(np.int8)
        sw = (rng.random(b_shape) * 0.02 + 0.005).astype(f32)
        inits += [t(wq, "wq"), t(sw, "sw")]
        nodes.append(nd("DequantizeLinear", ["wq", "sw"], ["bd"], axis=1))
        b_real = (wq.astype(f32) * sw).astype(f32)
    else:
        feeds["b"] = (rng.standard_normal(b_shape) * 2).astype(f32)
        ins.append(vi("b", TensorProto.FLOAT, list(b_shape)))
        b_real = _real_x(feeds["b"])
    for v in feeds:  # Q -> DQ, and a second reader of the DQ output
        nodes += [nd("QuantizeLinear", [v, "sx", "zx"], [f"{v}q"]), nd("DequantizeLinear", [f"{v}q", "sx", "zx"], [f"{v}d"]),
                  nd("Relu", [f"{v}d"], [f"{v}r"]), nd("QuantizeLinear", [f"{v}r", "sx", "zx"], [f"{v}rq"]),
                  nd("DequantizeLinear", [f"{v}rq", "sx", "zx"], [f"{v}2"])]
        outs.append(vi(f"{v}2", TensorProto.FLOAT, list(feeds[v].shape)))
    y_shape = list(np.matmul(_real_x(feeds["a"]), b_real).shape)
    nodes += [nd("MatMul", ["ad", "bd"], ["y"], name="mm"), nd("QuantizeLinear", ["y", "sy", "zy"], ["yq"]),
              nd("DequantizeLinear", ["yq", "sy", "zy"], ["out"])]
    outs = [vi("out", TensorProto.FLOAT, y_shape)] + outs + ([vi("y", TensorProto.FLOAT, y_shape)] if expose else [])
    model = helper.make_model(helper.make_graph(nodes, "s8matmul", ins, outs, inits),
                              opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model, feeds, b_real


def _mm_ort(model, feeds, level, threads):
    so = ort.SessionOptions()
    so.graph_optimization_level = MM_LEVELS[level]
    so.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def _mm_qsim(feeds, b_real):
    """qsim's float unit: the Gemm of the importer's (N, K) weight with ``kn_weight``, or MatMul."""
    from qsim.sim import float_mlas

    a = _real_x(feeds["a"])
    if "b" not in feeds:
        return float_ops.gemm([a], {"weight": np.ascontiguousarray(b_real.T)}, {"kn_weight": True, "ort_sgemm": True})[0]
    return float_mlas.matmul([a, b_real], {}, {"ort_sgemm": True})[0]


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("level", list(MM_LEVELS))
def test_float_matmul_values_equal_onnxruntime(level, threads, monkeypatch):
    import qsim.sim.compiled as compiled

    monkeypatch.setattr(compiled, "physical_cores", lambda: threads)
    compared = numpy_differ = 0
    for i, (a_shape, b_shape) in enumerate(MM_CONST + MM_ACT):
        model, feeds, b_real = _mm_model(a_shape, b_shape, 0.05, True, i)
        y = _mm_ort(model, feeds, level, threads)[-1]
        mine = _mm_qsim(feeds, b_real)
        assert np.array_equal(mine, y), (a_shape, b_shape, int((mine != y).sum()))
        compared += y.size
        numpy_differ += int((np.matmul(_real_x(feeds["a"]), b_real) != y).sum())
    assert compared == 90016 and numpy_differ > compared // 5, numpy_differ  # numpy's order is not onnxruntime's


@pytest.mark.parametrize("threads", [1, 2])
def test_s8s8_matmul_unit_codes_with_planted_ties(tmp_path, threads, monkeypatch):
    import onnx
    import qsim.sim.compiled as compiled

    monkeypatch.setattr(compiled, "physical_cores", lambda: threads)
    planted = 0
    for i, (a_shape, b_shape) in enumerate(MM_CONST + MM_ACT):
        model, feeds, b_real = _mm_model(a_shape, b_shape, 0.05, True, i)
        y = _mm_ort(model, feeds, "enable_all", threads)[-1]
        numpy_y = np.matmul(_real_x(feeds["a"]), b_real)
        sy = _tie_scale(y, numpy_y)
        if sy is None:
            continue
        planted += 1
        model = _mm_model(a_shape, b_shape, sy, False, i)[0]
        path = tmp_path / f"m{i}.onnx"
        onnx.save(model, str(path))
        want = _mm_ort(model, feeds, "enable_all", threads)
        got = qsim.simulate(path, feeds, ort_level="enable_all")
        names = [o.name for o in model.graph.output]
        assert all(np.array_equal(got[n], w) for n, w in zip(names, want)), (a_shape, b_shape)
        numpy_codes = np.clip(np.rint(numpy_y / sy) - 2, -128, 127)
        assert not np.array_equal((numpy_codes + 2) * sy, want[0] + 2 * sy)  # the tie decides a code
    assert planted >= 12
