"""Hand-computed cases: MX block scales, quantize/dequantize variants and granularities."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import WorkloadError
from qsim.numerics.tensor_quant import TensorQuant
from qsim.numerics import dequantize, get_format, mx_cast, mx_quantize, quantize
from qsim.numerics.mx import mx_scale_exponents


def test_mx_shared_scale_is_floor_log2_amax_minus_emax():
    x = np.zeros(32)
    x[0], x[1] = 5.0, -0.3  # amax 5: floor(log2 5) = 2
    assert mx_scale_exponents(x, get_format("mxfp8_e4m3"))[0] == 2 - 8
    assert mx_scale_exponents(x, get_format("mxfp8_e5m2"))[0] == 2 - 15
    assert mx_scale_exponents(x, get_format("mxfp6_e2m3"))[0] == 2 - 2
    assert mx_scale_exponents(x, get_format("mxfp6_e3m2"))[0] == 2 - 4
    assert mx_scale_exponents(x, get_format("mxfp4"))[0] == 2 - 2
    assert mx_scale_exponents(x, get_format("mxint8"))[0] == 2
    assert mx_scale_exponents(np.zeros(32), get_format("mxfp8_e4m3"))[0] == -127  # clamped E8M0
    assert np.isnan(mx_scale_exponents(np.r_[np.nan, np.zeros(31)], get_format("mxfp4"))[0])


def test_mxfp4_element_ties_follow_the_rounding_parameter():
    from dataclasses import replace
    x = np.zeros(32)
    x[:4] = [6.0, 5.0, -2.5, 0.25]  # scale 2^0: 5 is the tie 4|6, 2.5 the tie 2|3, 0.25 the tie 0|0.5
    even = mx_cast(x, get_format("mxfp4"))
    away = mx_cast(x, replace(get_format("mxfp4"), rounding="half_away"))
    assert even[:4].tolist() == [6.0, 4.0, -2.0, 0.0]
    assert away[:4].tolist() == [6.0, 6.0, -3.0, 0.5]


def test_mx_elements_saturate_and_blocks_split_along_axis():
    fmt = get_format("mxfp8_e4m3")
    x = np.zeros((2, 40))
    x[0, 0] = 1.0        # block 0 amax 1 -> exp -8, elements x * 256
    x[0, 1] = 1.9999     # 511.97 at scale 2^-8 would exceed 448: saturates (the spec's clamp)
    x[0, 35] = 3.0       # block 1 (elements 32..39, zero padded) amax 3 -> exp -7
    q, e = mx_quantize(x, fmt, axis=1)
    assert e.shape == (2, 2) and e[0].tolist() == [-8, -7]
    assert q[0, 0] == 256.0 and q[0, 1] == 448.0 and q[0, 35] == 384.0
    y = mx_cast(x, fmt, axis=1)
    assert y[0, 1] == 448.0 / 256 and y[0, 35] == 3.0
    xi = np.zeros(32)
    xi[:3] = [5.0, 1.0, 0.01]  # MXINT8: scale 2^2, elements k/64 clamped to +-127/64
    qi, _ = mx_quantize(xi, get_format("mxint8"))
    assert qi[:3].tolist() == [80 / 64, 16 / 64, 0.0]


def test_quantize_variants_on_ties():
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 3.75], np.float32)
    tq = TensorQuant(np.float32(1.0), np.int8(3), "int8")
    assert quantize(x, tq, "onnx").tolist() == [3, 5, 5, 3, 1, 7]      # ties to even, then + zp
    assert quantize(x, tq, "tflite").tolist() == [4, 5, 6, 2, 0, 7]    # ties away
    assert quantize(x, tq, "xnnpack").tolist() == [3, 5, 5, 3, 1, 7]
    assert quantize(x, tq, "fbgemm").tolist() == [4, 4, 6, 2, 0, 7]    # zero point before rounding
    # xnnpack multiplies by fp32(1/scale): -91.60424 / 0.0123 = -7447.4995 but * fp32(1/0.0123)
    # gives the tie -7447.5, which rounds to even
    t = TensorQuant(np.float32(0.0123), np.int32(0), "int16")
    x = np.float32(-91.60424)
    assert quantize(x, t, "onnx") == -7447 and quantize(x, t, "xnnpack") == -7448
    with pytest.raises(WorkloadError, match="onnx, fbgemm, xnnpack, tflite"):
        quantize(x, tq, "numpy")


def test_quantize_saturates_and_packs_sub_byte_types():
    x = np.array([100.0, -100.0, 7.4, -8.6], np.float32)
    assert quantize(x, TensorQuant(np.float32(1), np.int8(0), "int4")).tolist() == [7, -8, 7, -8]
    assert quantize(x, TensorQuant(np.float32(1), np.uint8(8), "uint4")).tolist() == [15, 0, 15, 0]
    assert quantize(x, TensorQuant(np.float32(1), np.int16(0), "int16")).dtype == np.int16
    fp8 = quantize(np.float32([1000.0, 0.3]), TensorQuant(np.float32(1), np.float32(0), "float8e4m3fn"))
    assert fp8.tolist() == [448.0, 0.3125]


def test_per_channel_and_per_block_granularity():
    x = np.arange(12, dtype=np.float32).reshape(2, 6) + 0.5
    ch = TensorQuant(np.float32([1.0, 0.5]), np.int8([0, 1]), "int8", axis=0)
    assert quantize(x, ch).tolist() == [[0, 2, 2, 4, 4, 6], [14, 16, 18, 20, 22, 24]]
    blk = TensorQuant(np.float32([[1.0, 2.0], [1.0, 4.0]]), np.int8([[0, 0], [0, 0]]), "int8",
                      axis=1, block_size=4)  # blocks: columns 0..3 and 4..5
    assert quantize(x, blk).tolist() == [[0, 2, 2, 4, 2, 3], [6, 8, 8, 10, 3, 3]]
    back = dequantize(quantize(x, blk), blk)
    assert back.dtype == np.float32 and back[1].tolist() == [6, 8, 8, 10, 12, 12]
    with pytest.raises(WorkloadError, match="does not match axis"):
        quantize(x, TensorQuant(np.float32([1, 1, 1]), np.int8([0, 0, 0]), "int8", axis=0))
