"""The numba kernels (VNNI and portable paths) equal the numpy reference bit for bit."""
from __future__ import annotations

import numpy as np
from _kernel_cases import KERNEL_SETTINGS, KINDS, acc_modes, biases, tensors, zero_points
from hypothesis import given
from hypothesis import strategies as st

from qsim.kernels import jit, reference

EIGHT_BIT = ["int8", "uint8", "int4", "uint4"]


def assert_same(ref, got):
    (r, rc), (g, gc) = ref, got
    assert g.dtype == r.dtype == np.int64 and g.shape == r.shape
    np.testing.assert_array_equal(g, r)
    assert gc == rc


@st.composite
def conv_cases(draw):
    xk = draw(st.sampled_from(EIGHT_BIT + ["int16"]))
    wk = draw(st.sampled_from(EIGHT_BIT + ["int16"]))
    groups, cg = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    # 16+ output channels per group take the VNNI path for 8-bit wrap; fewer the portable one.
    mg = draw(st.sampled_from([1, 2, 16, 17, 33]))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2]), 9))
    w = draw(st.integers(max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3]), 9))
    n = draw(st.integers(1, 2))
    x = draw(tensors((n, groups * cg, h, w), xk))
    wt = draw(tensors((groups * mg, cg, kh, kw), wk))
    return (x, wt, draw(zero_points(xk)), draw(zero_points(wk, groups * mg)),
            draw(biases(groups * mg)), stride, pads, dil, groups)


@KERNEL_SETTINGS
@given(conv_cases(), acc_modes())
def test_conv2d_acc(case, mode):
    bits, overflow = mode
    assert_same(reference.conv2d_acc(*case, acc_bits=bits, overflow=overflow),
                jit.conv2d_acc(*case, acc_bits=bits, overflow=overflow))


@st.composite
def matmul_cases(draw):
    ak = draw(st.sampled_from(EIGHT_BIT + ["int16"]))
    bk = draw(st.sampled_from(EIGHT_BIT + ["int16"]))
    m, k = draw(st.integers(1, 9)), draw(st.sampled_from([1, 3, 4, 17, 70]))
    n = draw(st.sampled_from([1, 5, 64, 65, 130]))
    a_batch, b_batch = draw(st.sampled_from([((), ()), ((2,), ()), ((), (3,)), ((2, 1), (3,)),
                                             ((2,), (2,))]))
    a_shape = (k,) if draw(st.booleans()) and not a_batch else a_batch + (m, k)
    b_shape = b_batch + (k, n)
    a, b = draw(tensors(a_shape, ak)), draw(tensors(b_shape, bk))
    return a, b, draw(zero_points(ak)), draw(zero_points(bk, n)), draw(biases(n))


@KERNEL_SETTINGS
@given(matmul_cases(), acc_modes())
def test_matmul_acc(case, mode):
    a, b, az, bz, bias = case
    bits, overflow = mode
    assert_same(reference.matmul_acc(a, b, az, bz, bias, bits, overflow),
                jit.matmul_acc(a, b, az, bz, bias, bits, overflow))


def test_matmul_longer_than_vnni_int32_bound():
    # K beyond vnni.MAX_K: the int32 VNNI sum could wrap, so the portable int64 path must take it.
    k = 70_000
    a = np.full((1, k), 255, dtype=np.uint8)
    b = np.full((k, 16), -128, dtype=np.int8)
    ref = reference.matmul_acc(a, b, 0, 0, acc_bits=40)
    assert ref[0][0, 0] == -255 * 128 * k and ref[1] == 0
    assert_same(ref, jit.matmul_acc(a, b, 0, 0, acc_bits=40))
    assert_same(reference.matmul_acc(a, b, 0, 0), jit.matmul_acc(a, b, 0, 0))


@st.composite
def pool_cases(draw):
    kind = draw(st.sampled_from(["int8", "uint8", "int16"]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pads = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)),
            draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    h, w = draw(st.integers(kh, 10)), draw(st.integers(kw, 10))
    x = draw(tensors((draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), kind))
    return x, (kh, kw), stride, pads, draw(zero_points(kind)), kind


@KERNEL_SETTINGS
@given(pool_cases(), st.booleans(), st.sampled_from(reference.ROUNDINGS), st.booleans())
def test_pools(case, include_pad, rounding, ceil_mode):
    x, kernel, stride, pads, zp, kind = case
    got = jit.avgpool2d(x, kernel, stride, pads, include_pad, rounding, x_zp=zp)
    ref = reference.avgpool2d(x, kernel, stride, pads, include_pad, rounding, x_zp=zp)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, ref)
    _, lo, hi = KINDS[kind]
    assert lo <= got.min() and got.max() <= hi
    np.testing.assert_array_equal(jit.maxpool2d(x, kernel, stride, pads, ceil_mode),
                                  reference.maxpool2d(x, kernel, stride, pads, ceil_mode))


def test_round_div_hand_cases():
    t = np.array([5, -5, 6, -6, 7, -7, 2, -2])
    n = np.array([2, 2, 4, 4, 2, 2, 4, 4])
    expect = {"half_away": [3, -3, 2, -2, 4, -4, 1, -1], "half_even": [2, -2, 2, -2, 4, -4, 0, 0],
              "half_up": [3, -2, 2, -1, 4, -3, 1, 0], "floor": [2, -3, 1, -2, 3, -4, 0, -1]}
    for mode, e in expect.items():
        np.testing.assert_array_equal(reference.round_div(t, n, mode), e, err_msg=mode)


def test_portable_wrap_path_for_8bit(monkeypatch):
    # What a CPU without avx512_vnni runs: the 8-bit wrap cases the VNNI core takes here.
    from qsim.kernels import vnni_ops
    monkeypatch.setattr(vnni_ops, "usable", lambda *a: False)
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (2, 6, 7, 9)).astype(np.int8)
    w = rng.integers(0, 256, (32, 3, 3, 2)).astype(np.uint8)
    bias = rng.integers(-2**31, 2**31, 32).astype(np.int32)
    for bits in (16, 32):
        args = (x, w, -128, np.arange(32) * 8, bias, (1, 2), (2, 1, 0, 1), (2, 1), 2)
        assert_same(reference.conv2d_acc(*args, acc_bits=bits), jit.conv2d_acc(*args, acc_bits=bits))
        a, b = x.reshape(12, 63), w.reshape(32, 18)[:, :9].T.copy()
        assert_same(reference.matmul_acc(a[:, :9], b, 127, 255, None, bits),
                     jit.matmul_acc(a[:, :9], b, 127, 255, None, bits))
