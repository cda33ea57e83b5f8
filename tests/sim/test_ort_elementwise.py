"""QLinearAdd / QLinearMul against onnxruntime on every (a, b) pair of 8-bit codes: same shape and
both broadcast directions (the runtime folds a scalar A differently from a scalar B), uint8 and
int8, several scale / zero-point sets with both input zero points non-zero, through the ONNX
importer and the integer executor (numba and numpy paths)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

ort = pytest.importorskip("onnxruntime")

from qsim.errors import GraphError  # noqa: E402
from qsim.ir.onnx_import import load_onnx  # noqa: E402
from qsim.sim.integer import run_integer  # noqa: E402

# (sA, zA, sB, zB, sC, zC): the FMA of the fixed part matters only with zA, zB both non-zero.
PARAMS = [(0.05, 3, 0.1, 7, 0.12, 2), (0.0123, 100, 0.0071, 140, 0.02, 128), (0.031, 201, 0.017, 55, 0.045, 4),
          (0.25, 128, 0.25, 128, 1.0, 128), (0.5, 3, 0.25, 255, 1.0, 2), (0.0183, 117, 0.0247, 131, 0.0301, 125),
          (2.1e-3, 250, 3.7e-2, 1, 9.3e-4, 0), (40.0, 9, 1e-5, 200, 3e-3, 255)]
# Shapes (A, B) over the 256 x 256 codes: same shape; A broadcast on the innermost axis (A is
# the runtime's scalar); B broadcast there; and a per-channel [1, C, 1, 1] operand.
SHAPES = {"same": ((256, 256), (256, 256)), "scalar_a": ((256, 1), (1, 256)),
          "scalar_b": ((1, 256), (256, 1)), "channel": ((1, 256, 4, 64), (1, 256, 1, 1))}


def _model(tmp_path, op, dtype, shapes, p):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    sa, za, sb, zb, sc, zc = p
    if dtype == np.int8:
        za, zb, zc = za - 128, zb - 128, zc - 128
    inits = [numpy_helper.from_array(np.array(v, t), name) for v, t, name in
             ((sa, np.float32, "sa"), (za, dtype, "za"), (sb, np.float32, "sb"), (zb, dtype, "zb"),
              (sc, np.float32, "sc"), (zc, dtype, "zc"))]
    node = helper.make_node(op, ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"], domain="com.microsoft")
    out = list(np.broadcast_shapes(*shapes))
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", elem, list(shapes[0])),
                                            helper.make_tensor_value_info("b", elem, list(shapes[1]))],
                              [helper.make_tensor_value_info("y", elem, out)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    path = tmp_path / f"{op}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _codes(dtype, shapes):
    lo = np.iinfo(dtype).min
    grid_a, grid_b = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    if shapes[0] == shapes[1]:
        return (grid_a + lo).astype(dtype), (grid_b + lo).astype(dtype)
    codes = (np.arange(256) + lo).astype(dtype)
    a = np.tile(codes, int(np.prod(shapes[0])) // 256).reshape(shapes[0])
    b = np.roll(codes, 77).reshape(shapes[1])
    return a, b


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_pair_matches_onnxruntime(tmp_path, op, dtype, shape):
    shapes = SHAPES[shape]
    a, b = _codes(dtype, shapes)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    bad = compared = 0
    for p in PARAMS:
        path = _model(tmp_path, op, dtype, shapes, p)
        want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"a": a, "b": b})[0]
        g = load_onnx(path)
        for impl in ("numba", "numpy"):
            got = run_integer(g, {"a": a, "b": b}, "onnxruntime", impl=impl).outputs[g.outputs[0]]
            assert got.dtype == want.dtype and got.shape == want.shape
            bad += int(np.sum(got != want))
            compared += want.size
    print(f"[ort-elementwise] {op} {np.dtype(dtype).name} {shape}: {compared} elements, {bad} mismatches")
    assert bad == 0


def _softmax_model(shape, sx, sy, zy, dtype):
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [numpy_helper.from_array(np.array(sx, np.float32), "sx"), numpy_helper.from_array(np.array(0, dtype), "zx"),
             numpy_helper.from_array(np.array(sy, np.float32), "sy"), numpy_helper.from_array(np.array(zy, dtype), "zy")]
    node = helper.make_node("QLinearSoftmax", ["x", "sx", "zx", "sy", "zy"], ["y"], domain="com.microsoft",
                            axis=-1, opset=13)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, list(shape))],
                              [helper.make_tensor_value_info("y", elem, list(shape))], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_softmax_saturates_like_onnxruntime(dtype):
    """QLinearSoftmax where e * floor(1 / y_scale) overflows fp32 (axis of length 1, y_scale below
    1/256) or the result passes the type's maximum: the runtime saturates."""
    from qsim.sim.int_elementwise import ort_softmax

    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    bad = 0
    for d in (1, 2, 5, 17, 40):
        for sx, sy, zy in ((3.1e-4, 1 / 256, 0), (3.9e-4, 1.95e-4, 0), (0.05, 1 / 256, 0), (0.1, 0.002, 27)):
            zy = zy - 128 if dtype == np.int8 else zy
            x = rng.integers(info.min, info.max + 1, (6, d)).astype(dtype)
            want = _softmax_model(x.shape, sx, sy, zy, dtype).run(None, {"x": x})[0]
            bad += int(np.sum(ort_softmax(x, sx, sy, zy, dtype == np.int8) != want))
    assert bad == 0


@pytest.mark.parametrize("params", [(0.05, 128, 0.03, 100), (0.1, 10, 0.1, 10), (0.0173, 201, 0.0419, 240)])
def test_leaky_relu_every_code_matches_onnxruntime(tmp_path, params):
    """QLinearLeakyRelu (a table of the float function in MLAS) as a float island, on all 256 codes."""
    import _int_onnx as M

    path = M.qlinear_unary(tmp_path / "leaky.onnx", "QLinearLeakyRelu", *params)
    x = np.arange(256, dtype=np.uint8)
    g = load_onnx(path)
    got = run_integer(g, {"x": x}, "onnxruntime").outputs[g.outputs[0]]
    want = M.ort_run(path, {"x": x})["y"]
    assert got.dtype == want.dtype == np.uint8 and int(np.sum(got != want)) == 0


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_softmax_other_output_scales_match_onnxruntime(dtype):
    """Output scales other than 1/256 equal onnxruntime on every element (the fp64 quotient: e *
    floor(1 / y_scale) past fp32's range is not an overflow, and ties round to even)."""
    from qsim.sim.int_elementwise import ort_softmax

    rng = np.random.default_rng(11)
    info = np.iinfo(dtype)
    compared = 0
    for d in (1, 2, 3, 17):
        for sx, sy in ((0.0067215, 0.0016804), (0.13257, 0.26514), (0.0025524, 0.0025524), (0.02, 0.0001)):
            zy = -97 if dtype == np.int8 else 31
            x = rng.integers(info.min, info.max + 1, (16, d)).astype(dtype)
            want = _softmax_model(x.shape, sx, sy, zy, dtype).run(None, {"x": x})[0]
            got = ort_softmax(x, np.float32(sx), np.float32(sy), zy, dtype == np.int8)
            compared += x.size
            assert int(np.sum(got != want)) == 0, (d, sx, sy)
    assert compared == 16 * 23 * 4


def test_softmax_former_tie_and_overflow_row_match():
    """F9: six equal maxima with y_scale 0.26514 put 3 * 1/6 near a tie; qsim gives the runtime's
    answer. y_scale 0.0016804 (floor(1/s) = 595) with 2 elements: the runtime's values, not saturation."""
    from qsim.sim.int_elementwise import ort_softmax

    tie = np.array([[127, 127, -128, 127, -128, -128, 127, 127, -128, 127]], np.int8)
    want = _softmax_model(tie.shape, 0.13256904, 0.2651381, -128, np.int8).run(None, {"x": tie})[0]
    assert np.array_equal(ort_softmax(tie, np.float32(0.13256904), np.float32(0.2651381), -128, True), want)
    x = np.array([[29, -92], [-34, -128], [-88, -11], [-44, -128]], np.int8)
    want = _softmax_model(x.shape, 0.0067214966, 0.0016803741, -97, np.int8).run(None, {"x": x})[0]
    got = ort_softmax(x, np.float32(0.0067214966), np.float32(0.0016803741), -97, True)
    assert want[1, 1] == 110 and np.array_equal(got, want)


def test_softmax_sum_that_drops_the_minima_matches():
    """Long-run seed 100073: six equal maxima and four minima whose table entries vanish from the fp32
    sum; the fp32 sum rounds below 6 e, so 3 e / sum is 0.50000003 in fp64 and the runtime gives 1, not
    the 0 that a tie would round to (the old table, one logf ulp off, made it look like an exact tie)."""
    from qsim.sim.int_elementwise import ort_softmax

    x = np.array([[127, 127, 127, -128, 127, -128, -128, 127, -128, 127]], np.int8)
    want = _softmax_model(x.shape, 0.1463623046875, 0.292724609375, 0, np.int8).run(None, {"x": x})[0]
    assert want[0, 0] == 1
    assert np.array_equal(ort_softmax(x, np.float32(0.1463623046875), np.float32(0.292724609375), 0, True), want)


def test_softmax_of_a_thousand_classes_matches():
    """uint8 rows of 1000 (ResNet-50's head): the fp32 sum in element order gives onnxruntime's
    codes; with these scales and rows (seed 19, found by search) numpy's pairwise sum changes one."""
    from qsim.sim.int_elementwise import _F32, ort_softmax, ort_softmax_table

    x = np.random.default_rng(19).integers(0, 256, (8, 1000)).astype(np.uint8)
    sx, sy = np.float32(0.0131), np.float32(1.47e-05)
    want = _softmax_model(x.shape, sx, sy, 0, np.uint8).run(None, {"x": x})[0]
    assert np.array_equal(ort_softmax(x, sx, sy, 0, False), want)
    e = ort_softmax_table(sx, 1000, False)[255 + x.astype(np.int64) - x.max(-1, keepdims=True)]
    pairwise = e.astype(np.float64) * float(np.floor(_F32(1) / sy)) / e.sum(-1, dtype=np.float32)[:, None]
    assert int(np.sum(np.minimum(np.rint(pairwise), 255) != want)) == 1


# Long-run seed 800762, row [1, 0]: int8, x_scale 0.0027885437, y_scale 1/256, y_zero -128
_SEED_800762_ROW = [116, 113, 45, -13, 45, 66, -76, -70, -29, 67, 120, -66, 51, -80, -118, -22, 47, 116, -63, 68, 99,
                    122, 28, -24, -89, 40, 10, 13, -73, -37, -18, 113, -97, 21, -75, -31, 53, -40, 60, 100, -61, -41,
                    -38, 4, 52, -103, -22, 1, -64, -18, -124, 30, -87, 86, 50, 108, -28, -15, -120, -99, 114, -77, -69,
                    76, 10, 2, 71, -8, 2, 54, -88, -120, 114, -48, -24, 5, -42, -26, -120, -45, -83, 17, -31, 112, 16,
                    -44, -59, -26, -72, 92, -28, -32, 97, 25, -30, -28, -114, 91, 112, -115]


def test_softmax_table_shift_is_glibc_logf():
    """The table's shift is log(FLT_MAX / D) in fp32 through glibc's logf. With D = 100 the correctly
    rounded log gives 2.254762e34 for e = table[255 - 6] and a quotient of 3.4999988 (code -125); the
    runtime's logf gives 3.5000002 (code -124) at elements 0 and 17."""
    from qsim.sim.int_elementwise import ort_softmax

    x = np.array([_SEED_800762_ROW], np.int8)
    sx, sy = np.float32(0.0027885437), np.float32(1 / 256)
    want = _softmax_model(x.shape, sx, sy, -128, np.int8).run(None, {"x": x})[0]
    got = ort_softmax(x, sx, sy, -128, True)
    assert want[0, 0] == want[0, 17] == -124
    assert np.array_equal(got, want)


def test_logf_is_glibc_not_correctly_rounded():
    """glibc's logf is 0.818 ulp: FLT_MAX / 60594 is one where it is one ulp below the correctly
    rounded log; checked against the C library itself where it is glibc."""
    import ctypes
    import math

    from qsim.kernels.elementwise_libm import logf

    a = np.float32(np.finfo(np.float32).max) / np.float32(60594)
    assert logf(a) == np.float32(77.710884) != np.float32(math.log(float(a)))
    libm = ctypes.CDLL("libm.so.6")  # glibc >= 2.28 on this platform (Debian 12: 2.36)
    libm.logf.restype, libm.logf.argtypes = ctypes.c_float, [ctypes.c_float]
    rng = np.random.default_rng(3)
    xs = [np.float32(np.finfo(np.float32).max) / np.float32(d) for d in range(1, 3000)]
    xs += list(rng.integers(0x00800000, 0x7F800000, 3000).astype(np.uint32).view(np.float32))
    assert [logf(v) for v in xs] == [np.float32(libm.logf(float(v))) for v in xs]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_softmax_exact_ties_round_to_even(dtype):
    """Two equal elements give e * ys / (2 e) = ys / 2 exactly: an odd ys is an exact tie, and the
    runtime rounds it to even (2.5 -> 2, 3.5 -> 4, 126.5 -> 126, 127.5 -> 128)."""
    from qsim.sim.int_elementwise import ort_softmax

    zy = -128 if dtype == np.int8 else 0
    x = np.zeros((1, 2), dtype)
    for ys, code in ((5, 2), (7, 4), (201, 100), (211, 106), (253, 126), (255, 128)):
        sy = np.float32(1 / (ys + 0.5))
        want = _softmax_model(x.shape, 0.1, sy, zy, dtype).run(None, {"x": x})[0]
        assert int(want[0, 0]) - zy == code
        assert np.array_equal(ort_softmax(x, np.float32(0.1), sy, zy, dtype == np.int8), want)
