"""ort_static's arithmetic against onnxruntime's own functions, value for value: compute_scale_zp
(ties planted in the zero point, zero and tiny ranges, symmetric, reduced ranges), and the histogram
calibrators (percentile, distribution, and the KL search with more bins than quantize_static uses)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")
from onnxruntime.quantization import calibrate as C  # noqa: E402
from onnxruntime.quantization import quant_utils as U  # noqa: E402
from onnxruntime.quantization.quant_utils import QuantType  # noqa: E402

from qsim.recipes import ort_calibrate, ort_qparams  # noqa: E402

TYPES = {"uint8": QuantType.QUInt8.tensor_type, "int8": QuantType.QInt8.tensor_type}


def _ranges():
    rng = np.random.default_rng(0)
    out = [(0.0, 0.0), (0.0, 1e-40), (-1e-45, 0.0), (-3.0, 5.0), (0.5, 2.0), (-2.0, -0.25), (-1e30, 1e30)]
    out += [(-a, b) for a, b in rng.exponential(1.0, (40, 2))]
    # ties: scale = 10/255, rmin = -k.5 * scale, so qmin - rmin / scale lands on .5 in float64 (or nearly)
    out += [(-(k + 0.5) * 10 / 255, 10 - (k + 0.5) * 10 / 255) for k in range(0, 255, 17)]
    return [(np.float32(a), np.float32(b)) for a, b in out]


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_compute_scale_zp_equals_onnxruntime(dtype, symmetric, reduce_range):
    qmin, qmax = ort_qparams.qmin_qmax(dtype, reduce_range, symmetric)
    want_q = U.get_qmin_qmax_for_qType(TYPES[dtype], reduce_range=reduce_range, symmetric=symmetric)
    assert (qmin, qmax) == tuple(want_q) and qmin.dtype == want_q[0].dtype
    for lo, hi in _ranges():
        lo, hi = np.array(lo), np.array(hi)
        zero, scale = ort_qparams.compute_scale_zp(lo, hi, qmin, qmax, symmetric)
        want_zero, want_scale = U.compute_scale_zp(lo, hi, want_q[0], want_q[1], symmetric)
        assert zero.dtype == want_zero.dtype and zero == want_zero, (lo, hi)
        assert scale.dtype == want_scale.dtype and scale.tobytes() == want_scale.tobytes(), (lo, hi)


def test_quantize_values_and_bias_equal_onnxruntime():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(500) * 3).astype(np.float32)
    x[:10] = np.float32(0.5) * np.float32(0.02) * np.arange(1, 20, 2)[:10]  # exact .5 ties at scale 0.02
    for dtype in ("uint8", "int8"):
        zero = np.array(7, dtype)
        want = U.quantize_nparray(TYPES[dtype], x, np.float32(0.02), zero)
        assert np.array_equal(ort_qparams.quantize_values(x, np.float32(0.02), zero, dtype), want)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    p = ort_qparams.initializer_params(w, "int8", True, False, 0)
    for i in range(6):
        z, s = U.compute_data_quant_params(w[i].ravel(), TYPES["int8"], True)
        assert p["scale"][i].tobytes() == s.tobytes() and p["zero_point"][i] == z


def _collector(method, symmetric, bins, quantized_bins=128, percentile=99.999):
    return C.HistogramCollector(method=method, symmetric=symmetric, num_bins=bins, num_quantized_bins=quantized_bins,
                                percentile=percentile, scenario="same")


@pytest.mark.parametrize("method,symmetric", [("percentile", True), ("percentile", False), ("distribution", False),
                                              ("entropy", False)])
def test_histogram_calibrators_equal_onnxruntime(method, symmetric):
    rng = np.random.default_rng(2)
    batches = [np.maximum(rng.standard_normal((4, 300)), -0.3).astype(np.float32) * 2 for _ in range(3)]
    name = {"percentile": "Percentile", "distribution": "Distribution", "entropy": "Entropy"}[method]
    bins = 128 if method == "entropy" else 2048
    col = _collector(method, symmetric, bins)
    col.collect({"t": list(batches)})
    want = col.compute_collection_result()["t"]
    want = (want.range_value if method == "distribution" else want[:2])
    got = ort_calibrate.histogram_ranges({"t": batches}, name, symmetric, 99.999)["t"]
    for a, b in zip(got, want):
        assert np.asarray(a).dtype == np.asarray(b).dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("bins,quantized", [(512, 128), (256, 32)])
def test_kl_search_equals_onnxruntime_with_more_candidates(bins, quantized):
    """quantize_static fixes 128 bins / 128 levels (one candidate); the port of the search is checked
    where it has many."""
    rng = np.random.default_rng(3)
    data = np.concatenate([rng.standard_normal(4000), rng.standard_normal(40) * 8]).astype(np.float32)
    col = _collector("entropy", False, bins, quantized)
    col.collect({"t": [data]})
    hist, edges, lo, hi, _ = col.histogram_dict["t"]
    want = col.get_entropy_threshold(col.histogram_dict["t"], quantized)
    got = ort_calibrate.entropy_threshold(hist, edges, lo, hi, quantized)
    assert [np.asarray(v).tobytes() for v in got] == [np.asarray(v).tobytes() for v in want]
    assert -hi < want[1] < hi  # the search did clip: more than one candidate was weighed
