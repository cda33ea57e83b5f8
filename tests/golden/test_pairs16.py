"""onnxruntime's uint8 x int8 products on x86 CPUs without VNNI (``qsim.kernels.pairs16``): summed in
int16 pairs that saturate. Planted pairs sit on both edges of the int16 range (32767 / 32768,
-32768 / -32769), straddle two taps of a convolution with an odd channel count, and fall on an odd
K's last element (paired with 0).

* Hand-checked accumulators with ``QSIM_ORT_CPU`` set (``avx2``: saturating pairs, ``vnni``: exact),
  whatever the host: MatMulInteger returns the int32 accumulator itself.
* qsim against this host's onnxruntime (QSIM_ORT_CPU unset): equal, and on an AVX2 host the planted
  pairs do saturate there (the test would pass vacuously otherwise)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T, helper as h, numpy_helper as nh

import qsim
from qsim.errors import QsimError
from qsim.sim.int_runtime import get_runtime, host_ort_cpu

ort = pytest.importorskip("onnxruntime")

# (a0, a1, b0, b1) -> the pair's exact sum: 32767, 32768, -32768, -32769, 64770, -65280, 32385 + 0.
PAIRS = [(253, 12, 127, 53), (254, 255, 127, 2), (255, 1, -128, -128), (255, 3, -128, -43),
         (255, 255, 127, 127), (255, 255, -128, -128), (255, 0, 127, 127)]


def _sat(v: int) -> int:
    return min(max(v, -32768), 32767)


def _matmul_integer(path, k: int, b: np.ndarray):
    node = h.make_node("MatMulInteger", ["a", "b"], ["y"])
    g = h.make_graph([node], "g", [h.make_tensor_value_info("a", T.UINT8, [len(PAIRS), k])],
                     [h.make_tensor_value_info("y", T.INT32, None)], [nh.from_array(b, "b")])
    path.write_bytes(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]).SerializeToString())
    return path


def _planted(k: int):
    """Row i of A and column i of B hold planted pair i in K positions (0, 1); an odd K also plants
    a lone 255 x 127 in its last position."""
    a = np.zeros((len(PAIRS), k), np.uint8)
    b = np.zeros((k, len(PAIRS)), np.int8)
    for i, (a0, a1, b0, b1) in enumerate(PAIRS):
        a[i, :2], b[:2, i] = (a0, a1), (b0, b1)
    if k % 2:
        a[:, -1], b[-1, :] = 255, 127
    return a, b


def _expected(a, b, saturate: bool) -> np.ndarray:
    k = a.shape[1] + a.shape[1] % 2
    ap = np.zeros((a.shape[0], k), np.int64)
    bp = np.zeros((k, b.shape[1]), np.int64)
    ap[:, :a.shape[1]], bp[:b.shape[0]] = a, b
    out = np.zeros((a.shape[0], b.shape[1]), np.int64)
    for j in range(0, k, 2):
        pair = ap[:, j:j + 1] * bp[j] + ap[:, j + 1:j + 2] * bp[j + 1]
        out += np.vectorize(_sat)(pair) if saturate else pair
    return out


@pytest.mark.parametrize("k", [8, 9])
@pytest.mark.parametrize("cpu", ["avx2", "vnni"])
def test_hand_checked_accumulators(tmp_path, monkeypatch, k, cpu):
    monkeypatch.setenv("QSIM_ORT_CPU", cpu)
    a, b = _planted(k)
    got = qsim.simulate(_matmul_integer(tmp_path / "m.onnx", k, b), {"a": a})
    y = got["y"] if isinstance(got, dict) else got[0]
    want = _expected(a, b, saturate=cpu == "avx2")
    np.testing.assert_array_equal(y, want)
    diag = np.diag(want)
    if cpu == "avx2":  # the planted pairs, by hand: each saturates or sits exactly on the edge
        lone = 255 * 127 if k % 2 else 0
        assert list(diag - lone) == [32767, 32767, -32768, -32768, 32767, -32768, 32385]


def test_unknown_cpu_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("QSIM_ORT_CPU", "avx9")
    with pytest.raises(QsimError, match="QSIM_ORT_CPU='avx9'.*avx2"):
        get_runtime("onnxruntime")


def _qlinear_conv(path, w: np.ndarray, pads, x_zp: int):
    inits = [nh.from_array(np.array(0.02, np.float32), "xs"), nh.from_array(np.array(x_zp, np.uint8), "xz"),
             nh.from_array(w, "w"), nh.from_array(np.full(w.shape[0], 0.01, np.float32), "ws"),
             nh.from_array(np.zeros(w.shape[0], np.int8), "wz"), nh.from_array(np.array(4.0, np.float32), "ys"),
             nh.from_array(np.array(128, np.uint8), "yz")]
    node = h.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"],
                       kernel_shape=list(w.shape[2:]), pads=pads)
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.UINT8, [1, 3, 5, 5])],
                     [h.make_tensor_value_info("y", T.UINT8, None)], inits)
    path.write_bytes(h.make_model(g, opset_imports=[h.make_opsetid("", 13)]).SerializeToString())
    return path


def _ort(path, feeds, exact: bool = False):
    so = ort.SessionOptions()
    if exact:
        so.add_session_config_entry("session.x64quantprecision", "1")  # int16 products: exact
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.mark.parametrize("x_zp", [0, 255])
def test_conv_pairs_across_taps_equal_this_hosts_onnxruntime(tmp_path, x_zp):
    """3 input channels: K = (ky, kx, c) pairs (c2 of one tap, c0 of the next) straddle taps; with
    x_zp = 255 the padded taps (raw 255) saturate too."""
    w = np.zeros((4, 3, 3, 3), np.int8)
    w[0, 2, 0, 0], w[0, 0, 0, 1] = 127, 127          # K 2 and 3: one pair across two taps
    w[1, 1, 0, 0], w[1, 2, 0, 0] = 127, 127          # K 1 and 2: two pairs, exact
    w[2, :, :, :] = -128                             # every pair at -65280
    w[3, 0, 2, 2], w[3, 2, 2, 1] = 100, 120          # K 24 (odd K's last element, alone) and K 23
    x = np.full((1, 3, 5, 5), 255, np.uint8)
    x[0, :, 2, 2] = 7
    path = _qlinear_conv(tmp_path / "c.onnx", w, [1, 1, 1, 1], x_zp)
    got = qsim.simulate(path, {"x": x})
    y = got["y"] if isinstance(got, dict) else got[0]
    want = _ort(path, {"x": x})
    np.testing.assert_array_equal(y, want)
    if host_ort_cpu() == "avx2":  # the runtime does saturate here: the comparison is not vacuous
        assert get_runtime("onnxruntime").u8s8_pairs16
        assert not np.array_equal(want, _ort(path, {"x": x}, exact=True))
