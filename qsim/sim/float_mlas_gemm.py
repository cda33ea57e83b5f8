"""Float Gemm / MatMul as onnxruntime 1.32's MLAS SGEMM sums them on x86-64 with FMA3 (AVX2 hosts,
8 float lanes), bit for bit: an int8 QDQ unit that onnxruntime leaves in float (``onnx_s8_units``)
feeds the next QuantizeLinear, so a last-bit difference from numpy's blocked BLAS sums becomes a
code difference. Measured equal on AVX2 at ORT_DISABLE_ALL and ORT_ENABLE_ALL (tests/golden/
test_s8s8_float_units.py); the AVX-512F kernels are not measured and not claimed (``supported``).

MlasSgemmOperation (core/mlas/lib/sgemm.cpp), C = A (M x K) . B (K x N), alpha 1:
* M == 1 (A not transposed, beta 0 or 1): the AVX kernels, products rounded (vmulps, no FMA):
  - B not transposed: MlasSgemmKernelM1Avx (x86_64/SgemmKernelM1Avx.S): rows of B in blocks of four,
    each block's ((p0 + p1) + p2) + p3 added to C; then a pair (p0 + p1), then a single p0;
  - B transposed (Gemm transB=1): MlasSgemmKernelM1TransposeBAvx (SgemmKernelM1TransposeBAvx.S):
    each output is 8 lanes, lane j summing p[8i + j] from 0 (the tail's missing lanes add +0), the
    lanes reduced by the output's place: columns in groups of four take ((l0 + l1) + l2) + l3 +
    (((l4 + l5) + l6) + l7), a pair after them ((l0 + l2) + (l4 + l6)) + ((l1 + l3) + (l5 + l7)),
    a last single ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)); then + C.
* N == 1 with ldb == ldc == 1 (MatMul by a column): the same transposed-B kernel with A and B swapped.
* else: K in slices of StrideK (128, halved while StrideK / 2 >= K when N >= K, doubled while
  StrideN (128) > 16 and StrideN / 2 >= N otherwise); the FMA3 kernel (SgemmKernelFma3.S,
  FgemmKernelFma3Common.h) runs one fused multiply-add chain from 0 per output over the slice, and
  adds it to C (vfmadd213ps with alpha 1: one rounding) except in the first slice with beta 0.
onnxruntime's Gemm (providers/cpu/math/gemm.cc) copies the bias into C first and calls MLAS with
beta 1: the bias is the first addend.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from qsim.errors import GraphError
from qsim.kernels.fma_jit import fma32

f32 = np.float32
STRIDE_N = STRIDE_K = 128  # MLAS_SGEMM_STRIDEN / MLAS_SGEMM_STRIDEK (core/mlas/lib/mlasi.h)
_THREAD_WORK = 64 * 1024  # MLAS_SGEMM_THREAD_COMPLEXITY (mlasi.h)
_MAX_THREADS = 16  # MLAS_MAXIMUM_THREAD_COUNT (mlasi.h)


def thread_target(work: float, threads: int) -> int:
    """MLAS's thread count for ``work`` multiply-adds: one per 64K, at most 16 and the pool's ``threads``."""
    target = int(work / _THREAD_WORK) + 1 if work < _THREAD_WORK * _MAX_THREADS else _MAX_THREADS
    return max(1, min(target, threads))


def stride_k(n: int, k: int) -> int:
    """MlasSgemmOperation's K slice for N columns (A not transposed)."""
    sn, sk = STRIDE_N, STRIDE_K
    if n >= k:
        while sk // 2 >= k:
            sk //= 2
    else:
        while sn > 16 and sn // 2 >= n:
            sk *= 2
            sn //= 2
    return sk


@njit(cache=True)
def sliced_fma(a, b, c, sk, add_first):
    """c (+)= each K slice's FMA chain from 0, slice after slice: a (M, K), b (K, N)."""
    m_rows, k_all = a.shape
    n_cols = b.shape[1]
    acc = np.empty(n_cols, np.float32)
    for m in range(m_rows):
        for k0 in range(0, k_all, sk):
            acc[:] = 0
            for k in range(k0, min(k0 + sk, k_all)):
                av = a[m, k]
                for n in range(n_cols):
                    acc[n] = fma32(av, b[k, n], acc[n])
            if k0 == 0 and not add_first:
                c[m, :] = acc
            else:
                for n in range(n_cols):
                    c[m, n] = c[m, n] + acc[n]
    return c


@njit(cache=True)
def m1_kernel(a, b, c):
    """SgemmKernelM1Avx: c (N,) += a (K,) . b (K, N), rows of B four at a time."""
    k_all = a.shape[0]
    k4 = k_all // 4 * 4
    for k in range(0, k4, 4):
        for n in range(b.shape[1]):
            t = np.float32(a[k] * b[k, n]) + np.float32(a[k + 1] * b[k + 1, n])
            t = np.float32(t + np.float32(a[k + 2] * b[k + 2, n])) + np.float32(a[k + 3] * b[k + 3, n])
            c[n] = t + c[n]
    k = k4
    if (k_all - k4) & 2:
        for n in range(b.shape[1]):
            c[n] = np.float32(np.float32(a[k] * b[k, n]) + np.float32(a[k + 1] * b[k + 1, n])) + c[n]
        k += 2
    if (k_all - k4) & 1:
        for n in range(b.shape[1]):
            c[n] = np.float32(a[k] * b[k, n]) + c[n]
    return c


@njit(cache=True)
def m1_transb_kernel(a, bt, c):
    """SgemmKernelM1TransposeBAvx: c (N,) += a (K,) . bt (N, K)^T, 8 lanes per output."""
    n_all, k_all = bt.shape
    n4 = n_all // 4 * 4
    pair_at = n4 if (n_all - n4) & 2 else -1
    lanes = np.zeros(8, np.float32)
    for n in range(n_all):
        lanes[:] = 0
        for k in range(k_all):
            lanes[k % 8] = lanes[k % 8] + np.float32(a[k] * bt[n, k])
        l0, l1, l2, l3, l4, l5, l6, l7 = lanes[0], lanes[1], lanes[2], lanes[3], lanes[4], lanes[5], lanes[6], lanes[7]
        if n < n4:
            s = np.float32(np.float32(np.float32(l0 + l1) + l2) + l3) + np.float32(np.float32(np.float32(l4 + l5) + l6) + l7)
        elif pair_at >= 0 and n < pair_at + 2:
            s = np.float32(np.float32(l0 + l2) + np.float32(l4 + l6)) + np.float32(np.float32(l1 + l3) + np.float32(l5 + l7))
        else:
            s = np.float32(np.float32(l0 + l1) + np.float32(l2 + l3)) + np.float32(np.float32(l4 + l5) + np.float32(l6 + l7))
        c[n] = s + c[n]
    return c


def _partition(index: int, count: int, total: int) -> tuple[int, int]:
    """MlasPartitionWork (core/mlas/lib/threading.cpp): (start, count) of part ``index``."""
    per, extra = divmod(total, count)
    if index < extra:
        return (per + 1) * index, per + 1
    return per * index + extra, per


def segments(m: int, n: int, k: int, threads: int, batch: int = 1) -> list[tuple[int, int, int, int]]:
    """(m0, m_count, n0, n_count) of the SGEMM calls MlasGemmBatch (sgemm.cpp) runs on ``threads``
    threads: its thread count grows with M * N * K (one per 64K multiply-adds, at most 16 and the pool's
    count) and splits N in 16-column blocks where N > M, else M. Each part is a MlasSgemmOperation of
    its own shape: its K slices (``stride_k``) and M == 1 kernel follow the part, not the whole.
    ``batch``: the GEMMs of one MlasGemmBatch call (MatMul's batch slices), which share the threads:
    ThreadsPerGemm = ceil(target / batch), the target still from one GEMM's M * N * K."""
    work = m * n * k
    target = -(-thread_target(work, threads) // batch)
    if target == 1:
        return [(0, m, 0, n)]
    out = []
    if n > m:
        blocks = -(-n // 16)
        count = min(target, blocks)
        for t in range(count):
            b0, bc = _partition(t, count, blocks)
            n0 = b0 * 16
            if n0 < n:
                out.append((0, m, n0, min(n - n0, bc * 16)))
    else:
        count = min(target, m)
        for t in range(count):
            m0, mc = _partition(t, count, m)
            out.append((m0, mc, 0, n))
    return [s for s in out if s[1] > 0 and s[3] > 0]


def _sgemm_part(a, b, c, trans_b: bool, add_first: bool, column: bool = False):
    """One MlasSgemmOperation into c (M, N) (already holding the bias where ``add_first``); ``column``:
    the whole B and C are one column (ldb == ldc == 1), not just this part."""
    m, k = a.shape
    n = c.shape[1]
    if m == 1:
        c[0] = m1_transb_kernel(a[0], b, c[0]) if trans_b else m1_kernel(a[0], b, c[0])
    elif n == 1 and column:  # ldb == ldc == 1: the M = 1 kernel on (B^T, A)
        c[:, 0] = m1_transb_kernel(np.ascontiguousarray(b[:, 0]), a, np.ascontiguousarray(c[:, 0]))
    else:
        bt = np.ascontiguousarray(b.T) if trans_b else np.ascontiguousarray(b)
        c[:] = sliced_fma(a, bt, np.ascontiguousarray(c), stride_k(n, k), add_first)


def sgemm(a: np.ndarray, b: np.ndarray, bias=None, trans_b: bool = False, threads: int = 1,
          batch: int = 1) -> np.ndarray:
    """MLAS's C = A . B (+ bias first), fp32: a (M, K); b (K, N), or (N, K) with ``trans_b``;
    ``threads``: the session's intra-op threads (they change the parts, ``segments``); ``batch``: the
    GEMMs of the MlasGemmBatch call this one belongs to (``batched``)."""
    a = np.ascontiguousarray(a, f32)
    b = np.ascontiguousarray(b, f32)
    m, k = a.shape
    n = b.shape[0] if trans_b else b.shape[1]
    c = np.zeros((m, n), f32) if bias is None else np.array(np.broadcast_to(np.asarray(bias, f32), (m, n)), f32)
    for m0, mc, n0, nc in segments(m, n, k, threads, batch):
        part = np.ascontiguousarray(c[m0:m0 + mc, n0:n0 + nc])
        bp = b[n0:n0 + nc] if trans_b else b[:, n0:n0 + nc]
        _sgemm_part(np.ascontiguousarray(a[m0:m0 + mc]), np.ascontiguousarray(bp), part, trans_b, bias is not None,
                   not trans_b and n == 1)
        c[m0:m0 + mc, n0:n0 + nc] = part
    return c


def batched(a: np.ndarray, b: np.ndarray, threads: int = 1) -> np.ndarray:
    """onnxruntime's float MatMul (providers/cpu/math/matmul.cc, B not transposed): a (..., M, K) by
    b (..., K, N), both of rank >= 2. MatMulComputeHelper (matmul_helper.h) folds A's leading axes into M
    where B's are all 1 and B's rank is at most A's (one GEMM: measured, a (2, 1, 40) A by a (1, 40, 30) B
    runs as M = 2, while a (1, 1, 100, 64) B under a (3, 1, 100) A runs per slice); otherwise each
    broadcast batch slice is one GEMM of a single MlasGemmBatch call, ldb = N (so N == 1 takes the column
    kernel), the threads shared out per GEMM (``segments``)."""
    a = np.asarray(a, f32)
    b = np.asarray(b, f32)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError("onnxruntime's float MatMul order is reproduced for inputs of rank >= 2 only")
    if b.ndim <= a.ndim and int(np.prod(b.shape[:-2])) == 1:
        y = sgemm(a.reshape(-1, a.shape[-1]), b.reshape(b.shape[-2:]), threads=threads)
        return y.reshape(a.shape[:-1] + (b.shape[-1],))
    lead = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3 = np.broadcast_to(a, lead + a.shape[-2:]).reshape((-1,) + a.shape[-2:])
    b3 = np.broadcast_to(b, lead + b.shape[-2:]).reshape((-1,) + b.shape[-2:])
    out = np.stack([sgemm(a3[i], b3[i], threads=threads, batch=len(a3)) for i in range(len(a3))])
    return out.reshape(lead + out.shape[-2:])


def session_threads(op: str) -> int:
    """onnxruntime's default intra-op threads (the physical cores), which split MLAS's work, where MLAS
    runs its x86-64 FMA3 (8-lane, AVX2) kernels, the only ones measured; a GraphError naming ``op``
    elsewhere (AVX-512F, arm64)."""
    from qsim.sim.compiled import physical_cores  # here: compiled imports the executors, which import this
    from qsim.sim.int_runtime import ort_cpu, ort_float_lanes

    if ort_float_lanes() != 8 or ort_cpu() == "arm64":
        raise GraphError(f"onnxruntime's float {op} order is reproduced for its x86-64 FMA3 (8-lane, AVX2) kernels "
                         "only; its AVX-512F and arm64 kernels are not measured")
    return physical_cores()


def ort_gemm(x, w, attrs):
    """onnxruntime's float Gemm (transB=1) or MatMul by a constant (K, N) weight (the importer's
    ``kn_weight``: the IR holds it as (N, K)) of an int8 unit it leaves in float (``float_ops.gemm``)."""
    threads = session_threads("Gemm")
    a = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    kn = bool(attrs.get("kn_weight"))  # MatMul's B is not transposed: MLAS's other M = 1 kernel
    y = sgemm(a, w["weight"].T if kn else w["weight"], w.get("bias"), trans_b=not kn, threads=threads)
    return y.reshape(x.shape[:-1] + (y.shape[-1],))
