"""Float reference kernels (numpy), one per op: the executable spec of what each op computes.

Every kernel takes (inputs: list of arrays, weights: dict role -> array, attrs) and returns a
list of outputs. Computation is in float32 unless an input is float64, as ONNX Runtime does.
Each op's registry entry (``qsim.ir.ops``) names its kernel here; ``run_float_kernel`` looks it up.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from qsim.errors import GraphError
from qsim.ir.ops._attrs import pads as _pads, pair, window_out
from qsim.ir.ops.extra import reduce_axes
from qsim.ir.ops.shape import slice_index
from qsim.ir.registry import Support, get_op, ops_running_on
from qsim.numerics.requant_ref import fma_f32
from qsim.sim import float_pool

Kernel = Callable[[list, Mapping[str, np.ndarray], Mapping[str, Any]], list]


def windows(x: np.ndarray, kernel_hw, stride, pad, dilation=(1, 1), pad_value=0.0) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) view of padded NCHW input: the im2col of a convolution or pool."""
    top, left, bottom, right = pad
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    kh, kw = kernel_hw
    dh, dw = dilation
    view = np.lib.stride_tricks.sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1], ::dh, ::dw]


def conv(inputs, w, attrs):
    x = inputs[0]
    if attrs.get("ort_sconv") and x.dtype == np.float32:  # an onnxruntime float QDQ unit (int_float.float_island)
        from qsim.sim.float_mlas_conv import ort_conv

        return [ort_conv(x, w, attrs)]
    groups = int(attrs.get("groups", 1))
    weight = w["weight"]
    cols = windows(x, pair(attrs["kernel"], "kernel"), pair(attrs.get("stride", 1), "stride"),
                   _pads(attrs.get("pad", 0)), pair(attrs.get("dilation", 1), "dilation"))
    n, c, oh, ow = cols.shape[:4]
    cout = weight.shape[0]
    cols = cols.reshape(n, groups, c // groups, oh, ow, -1)
    wg = weight.reshape(groups, cout // groups, c // groups, -1)
    y = np.einsum("ngchwk,gock->ngohw", cols, wg, optimize=True).reshape(n, cout, oh, ow)
    if "bias" in w:
        y = y + w["bias"].reshape(1, -1, 1, 1)
    return [y.astype(x.dtype, copy=False)]


def gemm(inputs, w, attrs):
    x = inputs[0]
    if attrs.get("ort_sgemm") and x.dtype == np.float32:  # an onnxruntime float QDQ unit (int_float.float_island)
        from qsim.sim.float_mlas_gemm import ort_gemm

        return [ort_gemm(x, w, attrs)]
    y = x @ w["weight"].T
    return [y + w["bias"] if "bias" in w else y]


def matmul(inputs, w, attrs):
    return [np.matmul(inputs[0], inputs[1])]


def embedding(inputs, w, attrs):
    return [w["weight"][inputs[0].astype(np.int64)]]


def _binary(fn) -> Kernel:
    def run(inputs, w, attrs):
        return [fn(inputs[0], inputs[1])]
    return run


add, sub, mul, div, power = (_binary(f) for f in (np.add, np.subtract, np.multiply, np.divide, np.power))


def _const_binary(fn) -> Kernel:
    """``x op c`` with the node's constant weight ``operand`` (``c op x`` when ``reversed``): importers
    emit these for an elementwise op whose other input is a constant (a TFLite MUL by a per-channel vector)."""
    def run(inputs, w, attrs):
        c = w["operand"]
        return [fn(c, inputs[0]) if attrs.get("reversed", False) else fn(inputs[0], c)]
    return run


add_const, sub_const, mul_const, div_const, power_const = (
    _const_binary(f) for f in (np.add, np.subtract, np.multiply, np.divide, np.power))


def _unary(fn) -> Kernel:
    def run(inputs, w, attrs):
        return [fn(inputs[0], attrs)]
    return run


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


_erf = np.vectorize(math.erf, otypes=[np.float64])
relu = _unary(lambda x, a: np.maximum(x, 0))
relu6 = _unary(lambda x, a: np.clip(x, 0, 6))
clip = _unary(lambda x, a: np.clip(x, a.get("min", -np.inf), a.get("max", np.inf)))
sigmoid = _unary(lambda x, a: _sigmoid(x))
tanh = _unary(lambda x, a: np.tanh(x))
gelu = _unary(lambda x, a: (0.5 * x * (1 + np.tanh(math.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))))
              if a.get("approximate") == "tanh" else 0.5 * x * (1 + _erf(x / math.sqrt(2)).astype(x.dtype)))


def _hardsigmoid(x, alpha, beta):
    """onnxruntime's HardSigmoid (an Eigen expression: the product rounded to fp32, then the sum, no
    fused multiply-add): matched on 816,000 values and inf / NaN (tests/golden/test_hard_activations.py)."""
    x = np.asarray(x, np.float32)
    return np.minimum(np.maximum(x * np.float32(alpha) + np.float32(beta), np.float32(0)), np.float32(1))


hardsigmoid = _unary(lambda x, a: _hardsigmoid(x, a.get("alpha", 0.2), a.get("beta", 0.5)))
# onnxruntime's HardSwish is its function body, x * HardSigmoid(x) with alpha = fp32(1/6): x * relu6(x +
# 3) / 6 (PyTorch's and TFLite's form) differed on 40 % of the same values.


def _hardswish(x, attrs):
    with np.errstate(invalid="ignore"):  # -inf * 0: NaN, as onnxruntime gives
        return np.asarray(x, np.float32) * _hardsigmoid(x, 1 / 6, 0.5)


hardswish = _unary(_hardswish)
silu = _unary(lambda x, a: x * _sigmoid(x))
leaky_relu = _unary(lambda x, a: np.where(x >= 0, x, x * np.asarray(a.get("alpha", 0.01), x.dtype)))
erf = _unary(lambda x, a: _erf(x).astype(x.dtype))
sqrt = _unary(lambda x, a: np.sqrt(x))


def softmax(inputs, w, attrs):
    x = inputs[0]
    axis = int(attrs.get("axis", -1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [e / e.sum(axis=axis, keepdims=True)]


def batchnorm(inputs, w, attrs):
    shape = (1, -1) + (1,) * (inputs[0].ndim - 2)
    return [inputs[0] * w["scale"].reshape(shape) + w["shift"].reshape(shape)]


def _layernorm_ort(x: np.ndarray, gamma: np.ndarray, beta, eps: float) -> np.ndarray:
    """onnxruntime 1.32 CPU LayerNormalization on fp32 rows (x: (rows, n)), bit for bit. Published
    layer_norm_impl.cc sources show a sequential fp32 ``ComputeJob``; the 1.32 x86-64 wheel's
    ComputeJob instead jumps to a vectorized kernel (a function pointer set at start-up) when
    n > 7, so the loops below mirror the wheel's machine code (objdump of
    onnxruntime_pybind11_state.so), checked against the wheel with 0 differing bits.

    n >= 8: the kernel ``ComputeJob`` dispatches to when the CPU has AVX2/FMA (also on AVX-512 CPUs):
      mean: fp64 sum in 4 lanes (lane j adds x[4k + j] in order), lanes combined as
            (l0 + l2) + (l1 + l3), then the n % 4 tail in order; / n in fp64; rounded to fp32;
      var:  two-pass, fp32: d = x - mean; 8 lanes of fma(d, d, acc) over 8 * (n // 8) elements,
            combined as ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)); a tail of 4 or more adds
            four rounded squares d * d in order, the rest (1 to 3) fma(d, d, acc); then / n;
      inv = 1 / sqrt(var + eps) in fp32;
      y = fma((x - mean) * inv, gamma, beta); without beta ((x - mean) * inv) * gamma.
    n <= 7 (every n on CPUs without AVX2: not modelled): ComputeJob's scalar SSE loop, Welford in fp32:
      delta = x - mean; mean += delta / (i + 1); m2 += (x - mean) * delta; sd = sqrt(m2 / n + eps);
      y = (x - mean) / sd * gamma + beta (each operation rounded, no FMA)."""
    f32 = np.float32
    rows, n = x.shape
    if n <= 7:
        mean = np.zeros(rows, f32)
        m2 = np.zeros(rows, f32)
        for i in range(n):
            delta = x[:, i] - mean
            mean = mean + delta / f32(i + 1)
            m2 = m2 + (x[:, i] - mean) * delta
        sd = np.sqrt(m2 / f32(n) + f32(eps))
        y = (x - mean[:, None]) / sd[:, None] * gamma
        return y if beta is None else y + beta
    n4 = n // 4 * 4  # np.cumsum adds in order along its axis: one running sum per lane
    lanes = np.cumsum(x[:, :n4].astype(np.float64).reshape(rows, n4 // 4, 4), axis=1)[:, -1]
    total = (lanes[:, 0] + lanes[:, 2]) + (lanes[:, 1] + lanes[:, 3])
    for j in range(n4, n):
        total = total + x[:, j]
    mean = (total / n).astype(f32)
    d = x - mean[:, None]
    n8 = n // 8 * 8
    acc = np.zeros((rows, 8), f32)
    for k in range(0, n8, 8):
        acc = fma_f32(d[:, k:k + 8], d[:, k:k + 8], acc)
    half = acc[:, :4] + acc[:, 4:]
    var = (half[:, 0] + half[:, 2]) + (half[:, 1] + half[:, 3])
    j = n8
    if n - n8 >= 4:  # the 4-wide tail block squares without FMA, then adds in order
        sq = d[:, j:j + 4] * d[:, j:j + 4]
        for t in range(4):
            var = var + sq[:, t]
        j += 4
    for t in range(j, n):
        var = fma_f32(d[:, t], d[:, t], var)
    inv = f32(1) / np.sqrt(var / f32(n) + f32(eps))
    z = d * inv[:, None]
    if beta is None:
        return z * gamma
    return fma_f32(z, np.broadcast_to(gamma, z.shape), np.broadcast_to(beta, z.shape))


def layernorm(inputs, w, attrs):
    """fp32: onnxruntime 1.32's CPU kernel bit for bit (``_layernorm_ort``); an IR LayerNorm always
    has beta (the ONNX importer fills zeros for a missing bias), so a model without bias runs the
    FMA with +0 here: equal values, only the sign of an exact zero result may differ. fp64: the
    plain formula (onnxruntime's double kernel is not mirrored)."""
    x = inputs[0]
    eps = float(attrs.get("eps", 1e-5))
    if x.dtype == np.float64:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return [(x - mean) / np.sqrt(var + eps) * w["gamma"] + w.get("beta", 0.0)]
    x = np.asarray(x, np.float32)
    gamma = np.asarray(w["gamma"], np.float32)
    beta = np.asarray(w["beta"], np.float32) if w.get("beta") is not None else None
    y = _layernorm_ort(x.reshape(-1, x.shape[-1]), gamma, beta, eps)
    return [y.reshape(x.shape)]


def rmsnorm(inputs, w, attrs):
    x = inputs[0]
    return [x / np.sqrt((x * x).mean(-1, keepdims=True) + float(attrs.get("eps", 1e-6))) * w["gamma"]]


def _pool_windows(x, attrs, pad_value):
    k = pair(attrs["kernel"], "kernel")
    stride = pair(attrs.get("stride", k), "stride")
    top, left, bottom, right = _pads(attrs.get("pad", 0))
    if attrs.get("ceil_mode", False):  # extend the bottom/right padding to cover the last window
        for axis, (size, kk, s) in enumerate(zip(x.shape[2:], k, stride)):
            lo, hi = (top, bottom) if axis == 0 else (left, right)
            extra = (-(-(size + lo + hi - kk) // s) * s + kk) - (size + lo + hi)
            if axis == 0:
                bottom += max(extra, 0)
            else:
                right += max(extra, 0)
    cols = windows(x, k, stride, (top, left, bottom, right), (1, 1), pad_value)
    if attrs.get("ceil_mode", False):  # but no window starts in the end padding (ONNX)
        pads = _pads(attrs.get("pad", 0))
        oh, ow = (window_out(size, kk, s, pads[a], pads[a + 2], 1, True)
                  for a, (size, kk, s) in enumerate(zip(x.shape[2:], k, stride)))
        cols = cols[:, :, :oh, :ow]
    return cols


def maxpool(inputs, w, attrs):
    x = inputs[0]
    if x.dtype.kind == "f" and np.isnan(x).any():
        # onnxruntime's MLAS pool kernels fold a window with maxps / std::max in an order that depends
        # on the kernel chosen (scalar, 4-wide column vectors, NCHWc blocks): a NaN there is kept or
        # dropped by its place in the window (measured: [1, NaN, 9, 2] gives NaN, [9, 1, NaN, 2] 9)
        raise ValueError("MaxPool: a NaN input; onnxruntime keeps or drops it by its place in the window "
                         "and by the pool kernel it picks, which qsim does not reproduce")
    low = np.iinfo(x.dtype).min if x.dtype.kind in "iu" else -np.inf  # integers pad with their minimum
    return [_pool_windows(x, attrs, low).max(axis=(-2, -1))]


def avgpool(inputs, w, attrs):
    x = inputs[0]
    if x.dtype == np.float32 and x.ndim == 4:  # onnxruntime's summation order (float_pool)
        return [float_pool.avgpool(x, attrs)]
    total = _pool_windows(x, attrs, 0.0).sum(axis=(-2, -1))
    if attrs.get("count_include_pad", False):
        k = pair(attrs["kernel"], "kernel")
        return [total / (k[0] * k[1])]
    count = _pool_windows(np.ones((1, 1) + x.shape[2:], x.dtype), attrs, 0.0).sum(axis=(-2, -1))
    return [total / count]


def reduce_mean(inputs, w, attrs):
    x = inputs[0]
    if x.dtype == np.float32 and x.size:  # onnxruntime's summation order (float_pool)
        from qsim.sim.compiled import physical_cores  # here: compiled imports the executors, which import this

        return [float_pool.reduce_mean(x, attrs, physical_cores())]
    return [x.mean(axis=tuple(reduce_axes(x.shape, attrs)), keepdims=bool(int(attrs.get("keepdims", 1))))]


def identity(inputs, w, attrs):
    """Quantization happens where tensors are stored (the executors); in real numbers these are identities."""
    return [inputs[0]]


def concat(inputs, w, attrs):
    return [np.concatenate(inputs, axis=int(attrs.get("axis", 1)))]


def reshape(inputs, w, attrs):
    x = inputs[0]
    shape = [x.shape[i] if int(d) == 0 else int(d) for i, d in enumerate(attrs["shape"])]
    return [x.reshape(shape)]


def flatten(inputs, w, attrs):
    x = inputs[0]
    axis = int(attrs.get("axis", 1))
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


def transpose(inputs, w, attrs):
    x = inputs[0]
    return [np.transpose(x, attrs.get("perm", None))]


def constant(inputs, w, attrs):
    return [w["value"]]


def slice_axes(inputs, w, attrs):
    return [inputs[0][slice_index(inputs[0].ndim, attrs)]]


def take(inputs, w, attrs):
    """Gather of constant, non-negative indices (``attrs["indices"]`` flattened, ``index_shape``)."""
    index = np.asarray(attrs["indices"], np.int64).reshape(tuple(attrs["index_shape"]))
    return [np.take(inputs[0], index, axis=int(attrs["axis"]))]


def split(inputs, w, attrs):
    x = inputs[0]
    return np.split(x, np.cumsum([int(s) for s in attrs["split"]])[:-1], axis=int(attrs.get("axis", 0)))


def attention(inputs, w, attrs):
    x = inputs[0]
    if int(attrs.get("past", 0)):
        raise GraphError("the float reference runs Attention without a filled KV cache (past = 0) only")
    b, s, hidden = x.shape
    heads = int(attrs["heads"])
    kvh = int(attrs.get("kv_heads", heads))
    hd = int(attrs.get("head_dim", hidden // heads))

    def proj(name, bias, nh):
        y = x @ w[name].T + (w[bias] if bias in w else 0)
        return y.reshape(b, s, nh, hd).transpose(0, 2, 1, 3)

    q, k, v = proj("wq", "bq", heads), proj("wk", "bk", kvh), proj("wv", "bv", kvh)
    k, v = np.repeat(k, heads // kvh, axis=1), np.repeat(v, heads // kvh, axis=1)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd).astype(x.dtype)
    if attrs.get("causal", False):
        scores = scores + np.triu(np.full((s, s), -np.inf, x.dtype), 1)
    ctx = softmax([scores], {}, {"axis": -1})[0] @ v
    out = ctx.transpose(0, 2, 1, 3).reshape(b, s, heads * hd) @ w["wo"].T
    return [out + w["bo"] if "bo" in w else out]


def run_float_kernel(op: str, inputs: list, weights: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> list:
    """Run ``op``'s float kernel (named by its registry entry)."""
    kernel = get_op(op).float_kernel
    if kernel is Support.UNSUPPORTED:
        raise GraphError(f"no float reference kernel for op {op!r}; the simulator supports "
                         f"{', '.join(ops_running_on('float_kernel'))}")
    return kernel.load()(inputs, weights, attrs)


def pad(inputs, w, attrs):
    """ONNX Pad (pads: begin values then end values per axis); constant cells hold 0."""
    x = inputs[0]
    rank = x.ndim
    pads = [int(p) for p in attrs["pads"]]
    widths = [(pads[i], pads[i + rank]) for i in range(rank)]
    mode = attrs.get("mode", "constant") or "constant"
    if mode not in ("constant", "reflect", "edge"):
        raise ValueError(f"Pad mode {mode!r} is not supported")
    return [np.pad(x, widths) if mode == "constant" else np.pad(x, widths, mode=mode)]
