"""Float reference kernels (numpy), one per op: the executable spec of what each op computes.

Every kernel takes (inputs: list of arrays, weights: dict role -> array, attrs) and returns a
list of outputs. Computation is in float32 unless an input is float64, as ONNX Runtime does.
"""
from __future__ import annotations

from math import erf, sqrt
from typing import Any, Callable, Mapping

import numpy as np

from qsim.errors import GraphError
from qsim.ir.ops._attrs import pads as _pads, pair

Kernel = Callable[[list, Mapping[str, np.ndarray], Mapping[str, Any]], list]
FLOAT_KERNELS: dict[str, Kernel] = {}


def kernel(*names: str):
    def wrap(fn):
        for n in names:
            FLOAT_KERNELS[n] = fn
        return fn
    return wrap


def windows(x: np.ndarray, kernel_hw, stride, pad, dilation=(1, 1), pad_value=0.0) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) view of padded NCHW input: the im2col of a convolution or pool."""
    top, left, bottom, right = pad
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    kh, kw = kernel_hw
    dh, dw = dilation
    view = np.lib.stride_tricks.sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1], ::dh, ::dw]


@kernel("Conv")
def conv(inputs, w, attrs):
    x = inputs[0]
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


@kernel("Gemm")
def gemm(inputs, w, attrs):
    y = inputs[0] @ w["weight"].T
    return [y + w["bias"] if "bias" in w else y]


@kernel("MatMul")
def matmul(inputs, w, attrs):
    return [np.matmul(inputs[0], inputs[1])]


@kernel("Embedding")
def embedding(inputs, w, attrs):
    return [w["weight"][inputs[0].astype(np.int64)]]


_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


_erf = np.vectorize(erf, otypes=[np.float64])
_UNARY = {
    "Relu": lambda x, a: np.maximum(x, 0),
    "Relu6": lambda x, a: np.clip(x, 0, 6),
    "Clip": lambda x, a: np.clip(x, a.get("min", -np.inf), a.get("max", np.inf)),
    "Sigmoid": lambda x, a: _sigmoid(x),
    "Tanh": lambda x, a: np.tanh(x),
    "GELU": lambda x, a: (0.5 * x * (1 + np.tanh(sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))))
    if a.get("approximate") == "tanh" else 0.5 * x * (1 + _erf(x / sqrt(2)).astype(x.dtype)),
    "HardSwish": lambda x, a: x * np.clip(x + 3, 0, 6) / 6,
    "SiLU": lambda x, a: x * _sigmoid(x),
}


@kernel("Softmax")
def softmax(inputs, w, attrs):
    x = inputs[0]
    axis = int(attrs.get("axis", -1))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return [e / e.sum(axis=axis, keepdims=True)]


@kernel("BatchNorm")
def batchnorm(inputs, w, attrs):
    shape = (1, -1) + (1,) * (inputs[0].ndim - 2)
    return [inputs[0] * w["scale"].reshape(shape) + w["shift"].reshape(shape)]


@kernel("LayerNorm")
def layernorm(inputs, w, attrs):
    x = inputs[0]
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return [(x - mean) / np.sqrt(var + float(attrs.get("eps", 1e-5))) * w["gamma"] + w["beta"]]


@kernel("RMSNorm")
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
    return windows(x, k, stride, (top, left, bottom, right), (1, 1), pad_value)


@kernel("MaxPool")
def maxpool(inputs, w, attrs):
    return [_pool_windows(inputs[0], attrs, -np.inf).max(axis=(-2, -1))]


@kernel("AvgPool")
def avgpool(inputs, w, attrs):
    x = inputs[0]
    total = _pool_windows(x, attrs, 0.0).sum(axis=(-2, -1))
    if attrs.get("count_include_pad", False):
        k = pair(attrs["kernel"], "kernel")
        return [total / (k[0] * k[1])]
    count = _pool_windows(np.ones((1, 1) + x.shape[2:], x.dtype), attrs, 0.0).sum(axis=(-2, -1))
    return [total / count]


@kernel("GlobalAvgPool")
def global_avgpool(inputs, w, attrs):
    x = inputs[0]
    return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)]


@kernel("Quantize", "Requantize")
def identity(inputs, w, attrs):
    """Quantization happens where tensors are stored (the executors); in real numbers these are identities."""
    return [inputs[0]]


@kernel("Concat")
def concat(inputs, w, attrs):
    return [np.concatenate(inputs, axis=int(attrs.get("axis", 1)))]


@kernel("Reshape")
def reshape(inputs, w, attrs):
    x = inputs[0]
    shape = [x.shape[i] if int(d) == 0 else int(d) for i, d in enumerate(attrs["shape"])]
    return [x.reshape(shape)]


@kernel("Flatten")
def flatten(inputs, w, attrs):
    x = inputs[0]
    axis = int(attrs.get("axis", 1))
    return [x.reshape(int(np.prod(x.shape[:axis])), -1)]


@kernel("Transpose")
def transpose(inputs, w, attrs):
    x = inputs[0]
    return [np.transpose(x, attrs.get("perm", None))]


@kernel("Attention")
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


# ``x op c`` with the node's constant weight ``operand`` (``c op x`` when ``reversed``): importers emit
# these for an elementwise op whose other input is a constant (a TFLite MUL by a per-channel vector).
_CONST_BINARY = {"AddConst": np.add, "SubConst": np.subtract, "MulConst": np.multiply, "DivConst": np.divide,
                 "PowConst": np.power}


def run_float_kernel(op: str, inputs: list, weights: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> list:
    if op in _BINARY:
        return [_BINARY[op](inputs[0], inputs[1])]
    if op in _UNARY:
        return [_UNARY[op](inputs[0], attrs)]
    if op in _CONST_BINARY:
        fn, c = _CONST_BINARY[op], weights["operand"]
        return [fn(c, inputs[0]) if attrs.get("reversed", False) else fn(inputs[0], c)]
    fn = FLOAT_KERNELS.get(op)
    if fn is None:
        known = sorted(set(FLOAT_KERNELS) | set(_BINARY) | set(_UNARY) | set(_CONST_BINARY))
        raise GraphError(f"no float reference kernel for op {op!r}; the simulator supports {', '.join(known)}")
    return fn(inputs, weights, attrs)
