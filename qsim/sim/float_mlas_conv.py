"""Float Conv (2-D, NCHW) as onnxruntime 1.32's CPU Conv sums it on x86-64 with FMA3 (8 float lanes),
bit for bit: ``Conv<float>::Compute`` (providers/cpu/nn/conv.cc) calls MlasConvPrepare + MlasConv
(core/mlas/lib/convolve.cpp) for 1-3-D kernels. An int8 QDQ Conv unit onnxruntime leaves in float
(``onnx_s8_units``) feeds a QuantizeLinear, so a last-bit difference becomes a code difference.

MlasConvPrepare picks the algorithm (FilterCount, K, OutputSize per group: Cout/g, Cin/g * kh * kw, OH * OW):
* GemmDirect: all strides 1, no padding and K == Cin/g (1x1): C = W (M x K) . X (K x N) with no im2col.
  Batch 1 and 1 group: MlasGemm (threaded: MlasGemmBatch's parts, ``float_mlas_gemm.segments``);
  otherwise MlasConvGemmDirectThreaded: one MlasSgemmOperation per (batch, group), whole.
  (The Cin/g == 1 kernel-spans-the-input forms, GemmDirect with B transposed, are not modelled: ``form``.)
* ExpandThenGemm: FilterCount > OutputSize: im2col of the whole image, then MlasGemm per (batch, group)
  (threaded as MlasGemmBatch, in a plain loop over batch and group).
* ExpandThenGemmSegmented, otherwise: MlasConvOperation over output columns [start, start + count):
  StrideK from ``count`` and K by MlasSgemmOperation's rule (``float_mlas_gemm.stride_k``), each K slice's
  MlasSgemmOperation (beta 0 for the first, 1 after) one FMA chain from 0 added to C (M = FilterCount > 1),
  or the M = 1 kernel (depthwise: FilterCount 1), whose blocks of four continue across K slices (StrideK
  is a multiple of 4 unless it covers K). Batch 1 and 1 group: the columns are cut in ThreadStrideN pieces
  (the complexity M * N * K gives one thread per 64K multiply-adds, at most 16 and the pool's threads;
  ceil(N / threads) rounded up to MLAS_SGEMM_STRIDEN_THREAD_ALIGN, 16), each its own MlasConvOperation;
  otherwise MlasConvExpandThenGemmSegmentedThreaded runs MlasConvOperation over all columns per (batch, group).
Every form adds the bias last (MlasActivation, after the GEMM: one rounding per output); a fused Relu
(FusedConv at ORT_ENABLE_ALL) is max(0, .) after it, as qsim's separate Relu node.
"""
from __future__ import annotations

import numpy as np

from qsim.ir.ops._attrs import pads, pair
from qsim.sim.float_mlas_gemm import (m1_kernel, m1_transb_kernel, session_threads, sgemm, sliced_fma, stride_k,
                                      thread_target)

f32 = np.float32
_THREAD_ALIGN = 16  # MLAS_SGEMM_STRIDEN_THREAD_ALIGN (mlasi.h)


def form(cin_g: int, kernel, stride, pad, dilation, in_hw, out_hw, filters: int) -> str:
    """MlasConvPrepare's algorithm for one group: 'direct', 'expand', 'segmented' or 'other' (the
    GemmDirect forms with a kernel spanning a one-channel input: not modelled)."""
    k = cin_g * kernel[0] * kernel[1]
    if all(s == 1 for s in stride) and not any(pad):
        if k == cin_g:
            return "direct"
        if cin_g == 1 and all(d == 1 for d in dilation) and (
                kernel[1] == in_hw[1] or (kernel[0] == in_hw[0] and kernel[1] == 1)):
            return "other"
    return "expand" if filters > out_hw[0] * out_hw[1] else "segmented"


def thread_stride_n(m: int, n: int, k: int, threads: int) -> int:
    """MlasConvPrepare's ThreadStrideN for the segmented algorithm (>= n: one thread)."""
    target = thread_target(float(m) * n * k, threads)
    stride = -(-n // target)
    if target > 1:
        stride = (stride + _THREAD_ALIGN - 1) & ~(_THREAD_ALIGN - 1)
    return stride


def _conv_segment(w, cols, out_size: int):
    """MlasConvOperation over the columns ``cols`` (K, count) of one segment: C (M, count)."""
    m, k = w.shape
    count = cols.shape[1]
    c = np.zeros((m, count), f32)
    if m == 1:  # MlasSgemmOperation's M == 1 kernel, slice after slice into the same C
        c[0] = m1_kernel(w[0], cols, c[0])
    elif count == 1 and out_size == 1:  # N == 1 with ldb == ldc == 1: the transposed-B M = 1 kernel, swapped
        sk = stride_k(count, k)
        for k0 in range(0, k, sk):
            c[:, 0] = m1_transb_kernel(np.ascontiguousarray(cols[k0:k0 + sk, 0]), np.ascontiguousarray(w[:, k0:k0 + sk]),
                                 np.ascontiguousarray(c[:, 0]))
    else:
        c = sliced_fma(w, cols, c, stride_k(count, k), False)
    return c


def _im2col(x, kernel, stride, pad, dilation):
    """(C * kh * kw, OH * OW) columns of one image's channels x (C, H, W), MlasConvIm2Col's order."""
    from qsim.sim.float_ops import windows  # here: float_ops imports this module lazily too

    v = windows(x[None], kernel, stride, pad, dilation)[0]  # (C, OH, OW, kh, kw)
    c, oh, ow, kh, kw = v.shape
    return np.ascontiguousarray(v.transpose(0, 3, 4, 1, 2).reshape(c * kh * kw, oh * ow), f32)


def conv2d(x, weight, bias=None, kernel=(1, 1), stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1),
           groups: int = 1, threads: int = 1) -> np.ndarray:
    """onnxruntime's float Conv of x (N, C, H, W) by weight (Cout, C / groups, kh, kw), pad (top,
    left, bottom, right), on ``threads`` intra-op threads (see the module doc)."""
    x = np.ascontiguousarray(x, f32)
    weight = np.ascontiguousarray(weight, f32)
    batch, cin, h, wd = x.shape
    cout = weight.shape[0]
    cg, mg = cin // groups, cout // groups
    wg = weight.reshape(groups, mg, -1)
    k = wg.shape[2]
    oh = (h + pad[0] + pad[2] - (dilation[0] * (kernel[0] - 1) + 1)) // stride[0] + 1
    ow = (wd + pad[1] + pad[3] - (dilation[1] * (kernel[1] - 1) + 1)) // stride[1] + 1
    n = oh * ow
    alg = form(cg, kernel, stride, pad, dilation, (h, wd), (oh, ow), mg)
    if alg == "other":
        raise ValueError("onnxruntime's GemmDirect conv with a transposed input is not modelled")
    many = batch > 1 or groups > 1
    y = np.empty((batch, groups, mg, n), f32)
    for b in range(batch):
        for g in range(groups):
            xg = x[b, g * cg:(g + 1) * cg]
            wgg = np.ascontiguousarray(wg[g])
            if alg == "direct":
                y[b, g] = sgemm(wgg, xg.reshape(cg, n), threads=1 if many else threads)
                continue
            cols = _im2col(xg, kernel, stride, pad, dilation)
            if alg == "expand":
                y[b, g] = sgemm(wgg, cols, threads=threads)
                continue
            step = n if many else thread_stride_n(mg, n, k, threads)
            for s0 in range(0, n, step):
                y[b, g, :, s0:s0 + step] = _conv_segment(wgg, np.ascontiguousarray(cols[:, s0:s0 + step]), n)
    y = y.reshape(batch, cout, oh, ow)
    if bias is not None:  # MlasActivation: the bias after the sums
        y = (y + np.asarray(bias, f32).reshape(1, -1, 1, 1)).astype(f32)
    return y


def ort_conv(x, w, attrs):
    """onnxruntime's float Conv of an int8 unit it leaves in float (``float_ops.conv``)."""
    threads = session_threads("Conv")
    return conv2d(x, w["weight"], w.get("bias"), pair(attrs["kernel"], "kernel"), pair(attrs.get("stride", 1), "stride"),
                  pads(attrs.get("pad", 0)), pair(attrs.get("dilation", 1), "dilation"), int(attrs.get("groups", 1)),
                  threads)
