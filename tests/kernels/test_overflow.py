"""Planted accumulator overflows are caught in wrap and saturate modes, at 16 and 32 bits, on every
kernel path; plus the input errors."""
from __future__ import annotations

import numpy as np
import pytest

from qsim.errors import QsimError
from qsim.kernels import jit, reference, vnni, vnni_ops
from qsim.kernels._common import KernelInputError

KERNELS = [reference, jit]


@pytest.mark.parametrize("k", KERNELS, ids=["reference", "jit"])
@pytest.mark.parametrize("m", [1, 16], ids=["portable", "vnni-width"])
def test_conv_all_outputs_overflow_16(k, m):
    # 1x1 conv over 4 channels of 127*127: exact 64516 per output.
    x = np.full((1, 4, 3, 5), 127, dtype=np.int8)
    w = np.full((m, 4, 1, 1), 127, dtype=np.int8)
    acc, n = k.conv2d_acc(x, w, 0, 0, None, (1, 1), (0, 0, 0, 0), (1, 1), 1, acc_bits=16)
    assert n == acc.size and np.all(acc == 64516 - 65536)
    # Saturating: 16129, 32258, then 48387 clamps to 32767, and 32767 + 16129 clamps again.
    acc, n = k.conv2d_acc(x, w, 0, 0, None, (1, 1), (0, 0, 0, 0), (1, 1), 1, acc_bits=16,
                          overflow="saturate")
    assert n == acc.size and np.all(acc == 32767)


@pytest.mark.parametrize("k", KERNELS, ids=["reference", "jit"])
@pytest.mark.parametrize("dtypes", [(np.uint8, np.int8), (np.int8, np.uint8), (np.int16, np.int8)])
@pytest.mark.parametrize("bits", [16, 32])
def test_conv_one_planted_output(k, dtypes, bits):
    xd, wd = dtypes
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, (1, 8, 6, 6)).astype(xd)
    w = rng.integers(0, 3, (32, 8, 3, 3)).astype(wd)
    bias = np.zeros(32, dtype=np.int32)
    hi = 2 ** (bits - 1) - 1
    # Output (channel 5, y 2, x 3) starts just below the top of the range; its products are >= 0.
    bias[5] = hi - 3
    x[0, :, 1:4, 2:5] = 2
    w[5] = 2
    args = (x, w, 0, 0, bias, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    wrap, n_wrap = k.conv2d_acc(*args, acc_bits=bits)
    sat, n_sat = k.conv2d_acc(*args, acc_bits=bits, overflow="saturate")
    exact = hi - 3 + 8 * 9 * 4
    over = (sat == hi)
    assert sat[0, 5, 2, 3] == hi and wrap[0, 5, 2, 3] == exact - 2**bits
    assert n_wrap == n_sat == int(over.sum()) >= 1
    assert np.array_equal(wrap[~over], sat[~over])


@pytest.mark.parametrize("k", KERNELS, ids=["reference", "jit"])
@pytest.mark.parametrize("n_cols", [1, 64])
def test_matmul_bias_at_int32_edge(k, n_cols):
    a = np.array([[3, 1, 2]], dtype=np.uint8)
    b = np.ones((3, n_cols), dtype=np.int8)
    bias = np.full(n_cols, 2**31 - 4, dtype=np.int32)
    acc, n = k.matmul_acc(a, b, 0, 0, bias)
    assert n == n_cols and np.all(acc == 2**31 + 2 - 2**32)
    acc, n = k.matmul_acc(a, b, 0, 0, bias, overflow="saturate")
    assert n == n_cols and np.all(acc == 2**31 - 1)
    # Negative side: u8 - zero point 255 makes every term negative.
    acc, n = k.matmul_acc(a, b, 255, 0, -bias - 1, acc_bits=32)
    assert n == n_cols and np.all(acc == -(2**31 - 3) + (3 + 1 + 2 - 3 * 255) + 2**32)


@pytest.mark.parametrize("k", KERNELS, ids=["reference", "jit"])
def test_excursion_wrap_exact_saturate_order(k):
    # +40000 then -40000 on a 16-bit accumulator: wrap ends exact (not counted); saturate clamps
    # at the first add and ends off by 7233 (counted). Bias first: -30000 keeps it in range.
    a = np.array([[200, 200]], dtype=np.int16)
    b = np.array([[200], [-200]], dtype=np.int16)
    assert k.matmul_acc(a, b, 0, 0, acc_bits=16)[0][0, 0] == 0
    assert k.matmul_acc(a, b, 0, 0, acc_bits=16)[1] == 0
    acc, n = k.matmul_acc(a, b, 0, 0, acc_bits=16, overflow="saturate")
    assert (acc[0, 0], n) == (32767 - 40000, 1)
    acc, n = k.matmul_acc(a, b, 0, 0, np.array([-30000]), acc_bits=16, overflow="saturate")
    assert (acc[0, 0], n) == (-30000, 0)
    # The bias alone can saturate.
    acc, n = k.matmul_acc(a[:, :0], b[:0], 0, 0, np.array([40000]), acc_bits=16, overflow="saturate")
    assert (acc[0, 0], n) == (32767, 1)


def test_vnni_path_is_used(monkeypatch):
    if not vnni.HAS_VNNI:
        pytest.skip("CPU without avx512_vnni: the portable path is tested instead")
    calls = []
    for name in ("conv", "matmul"):
        orig = getattr(vnni_ops, name)
        monkeypatch.setattr(vnni_ops, name, lambda *a, _o=orig, _n=name, **kw: calls.append(_n) or _o(*a, **kw))
    x = np.zeros((1, 3, 4, 4), dtype=np.uint8)
    jit.conv2d_acc(x, np.zeros((16, 3, 3, 3), np.int8), 0, 0, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    jit.matmul_acc(np.zeros((2, 8), np.int8), np.zeros((8, 5), np.uint8), 0, 0)
    jit.conv2d_acc(x, np.zeros((16, 3, 3, 3), np.int8), 0, 0, None, (1, 1), (0, 0, 0, 0), (1, 1), 1,
                   overflow="saturate")
    assert calls == ["conv", "matmul"]


def test_packed_weights_reused_only_when_read_only():
    b = np.arange(64 * 8, dtype=np.int64).reshape(8, 64).astype(np.int8)
    a = np.ones((2, 8), dtype=np.uint8)
    first = jit.matmul_acc(a, b, 0, 0)[0]
    b[0, 0] = 100                      # writable: must not be served from a cache
    assert jit.matmul_acc(a, b, 0, 0)[0][0, 0] == first[0, 0] + 100      # b[0, 0] was 0
    b.flags.writeable = False
    np.testing.assert_array_equal(jit.matmul_acc(a, b, 0, 0)[0], jit.matmul_acc(a, b, 0, 0)[0])
    np.testing.assert_array_equal(jit.matmul_acc(a, b, 0, 0)[0], reference.matmul_acc(a, b, 0, 0)[0])


@pytest.mark.parametrize("k", KERNELS, ids=["reference", "jit"])
def test_bad_inputs_name_the_problem(k):
    x = np.zeros((1, 6, 5, 5), np.int8)
    with pytest.raises(KernelInputError, match=r"groups=4 must divide input channels C=6 .*\(1, 6, 5, 5\)"):
        k.conv2d_acc(x, np.zeros((8, 1, 3, 3), np.int8), 0, 0, None, 1, 0, 1, 4)
    with pytest.raises(KernelInputError, match=r"C/groups = 6/2 = 3"):
        k.conv2d_acc(x, np.zeros((8, 2, 3, 3), np.int8), 0, 0, None, 1, 0, 1, 2)
    with pytest.raises(QsimError, match="acc_bits"):
        k.conv2d_acc(x, np.zeros((8, 6, 3, 3), np.int8), 0, 0, None, 1, 0, 1, 1, acc_bits=80)
    with pytest.raises(KernelInputError, match="overflow"):
        k.matmul_acc(np.zeros((2, 3), np.int8), np.zeros((3, 4), np.int8), 0, 0, overflow="clip")
    with pytest.raises(KernelInputError, match=r"b_zp must be a scalar or have shape \(4,\)"):
        k.matmul_acc(np.zeros((2, 3), np.int8), np.zeros((3, 4), np.int8), 0, np.zeros(3, int))
    with pytest.raises(KernelInputError, match="integer array"):
        k.matmul_acc(np.zeros((2, 3), np.float32), np.zeros((3, 4), np.int8), 0, 0)
    with pytest.raises(KernelInputError, match="disagree on K"):
        k.matmul_acc(np.zeros((2, 3), np.int8), np.zeros((4, 4), np.int8), 0, 0)
    with pytest.raises(KernelInputError, match="rounding"):
        k.avgpool2d(x, 2, 2, 0, True, "nearest")
    with pytest.raises(KernelInputError, match="does not fit"):
        k.conv2d_acc(x, np.zeros((8, 6, 7, 7), np.int8), 0, 0, None, 1, 0, 1, 1)
    with pytest.raises(KernelInputError, match=r"x_zp=300 is outside the range of uint8"):
        k.avgpool2d(x.view(np.uint8), 2, 2, 0, True, "half_even", x_zp=300)


def test_packed_weights_follow_views_of_frozen_arrays():
    w = np.arange(-64, 64, dtype=np.int8).reshape(16, 8)
    w.flags.writeable = False
    a = np.arange(24, dtype=np.uint8).reshape(3, 8)
    for view in (w.T, w.T, w[::2].T, w[1::2].T):       # fresh views, two geometries
        np.testing.assert_array_equal(jit.matmul_acc(a, view, 1, 0)[0],
                                      reference.matmul_acc(a, view, 1, 0)[0])
