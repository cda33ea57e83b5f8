"""Speed of qsim's integer accumulation kernels against onnxruntime's integer ops, same process.

    .venv/bin/python benchmarks/bench_kernels.py [--repeat N] [--threads T]

Per shape: median ms of qsim.kernels.jit (wrap, 32-bit accumulator, weights read-only so their
packing is reused, as onnxruntime pre-packs initializers), onnxruntime ConvInteger/MatMulInteger
(int32 accumulators: compared for bit-exactness) and QLinearConv (uint8 activations, zero point 128;
requantizes, so it is timed only), the numpy reference (timed on a slice when marked '~'), and the
saturating 16-bit numba path (order-dependent, so sequential: no vpdpbusd).
Both runtimes get the same thread count (default: every core). Numbers are noisy on a shared
machine (a parallel region waits for its slowest thread): rerun, and compare with --threads 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# numba's OpenMP workers spin while waiting; on a shared 2-core machine a spinning worker takes
# the core its partner needs and 2-thread medians jump to tens of ms. Sleeping waiters keep the
# comparison about the kernels. Set before numba starts its pool; printed in the header.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "kernels"))
from _kernel_onnx import conv_integer, matmul_integer, qlinear_conv  # noqa: E402

from qsim.kernels import jit, reference, vnni  # noqa: E402

THREADS = os.cpu_count()
CONVS = {  # name: (x shape, w shape, stride, pads, groups)
    "resnet50 3x3 64->64 @56": ((1, 64, 56, 56), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1), 1),
    "stem 7x7/2 3->64 @224": ((1, 3, 224, 224), (64, 3, 7, 7), (2, 2), (3, 3, 3, 3), 1),
    "depthwise 3x3 144 @56": ((1, 144, 56, 56), (144, 1, 3, 3), (1, 1), (1, 1, 1, 1), 144),
}
GEMMS = {"gemm 128x4096x4096": (128, 4096, 4096), "gemv 1x4096x4096": (1, 4096, 4096)}


def median_ms(fn, repeat: int) -> float:
    fn()                                             # warm up: compile, pack, allocate
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def bench_conv(name, spec, repeat, rng):
    xs, ws, stride, pads, groups = spec
    x = rng.integers(0, 256, xs, dtype=np.uint8)
    w = rng.integers(-128, 128, ws, dtype=np.int8)
    w.flags.writeable = False
    args = (x, w, 128, 0, None, stride, pads, (1, 1), groups)
    t_jit = median_ms(lambda: jit.conv2d_acc(*args), repeat)
    sess, feeds = conv_integer(x, w, 128, 0, stride, pads, (1, 1), groups, threads=THREADS)
    t_ci = median_ms(lambda: sess.run(None, feeds), repeat)
    qsess, qfeeds = qlinear_conv(x, w, 128, 0, stride, pads, (1, 1), groups, threads=THREADS)
    t_qc = median_ms(lambda: qsess.run(None, qfeeds), repeat)
    got = jit.conv2d_acc(*args)[0]
    exact = np.array_equal(got, sess.run(None, feeds)[0])
    # The reference loops over C/groups * kh * kw taps in Python: small enough to run whole.
    t0 = time.perf_counter()
    ref = reference.conv2d_acc(*args)[0]
    t_ref = 1e3 * (time.perf_counter() - t0)
    exact &= np.array_equal(got, ref)
    macs = got.size * ws[1] * ws[2] * ws[3]
    t_sat = median_ms(lambda: jit.conv2d_acc(*args, acc_bits=16, overflow="saturate"), 3)
    return dict(name=name, jit=t_jit, ort=t_ci, qlinear=t_qc, ref=t_ref, ref_est=False, macs=macs,
                exact=exact, sat=t_sat, sat_est=False)


def bench_gemm(name, spec, repeat, rng):
    m, k, n = spec
    a = rng.integers(0, 256, (m, k), dtype=np.uint8)
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    b.flags.writeable = False
    t_jit = median_ms(lambda: jit.matmul_acc(a, b, 128, 0), repeat)
    sess, feeds = matmul_integer(a, b, 128, np.array(0, np.int8), threads=THREADS)
    t_mi = median_ms(lambda: sess.run(None, feeds), repeat)
    got = jit.matmul_acc(a, b, 128, 0)[0]
    exact = np.array_equal(got, sess.run(None, feeds)[0])
    rows = min(m, 4)                                   # int64 numpy matmul: time a slice, scale up
    t0 = time.perf_counter()
    ref = reference.matmul_acc(a[:rows], b, 128, 0)[0]
    t_ref = 1e3 * (time.perf_counter() - t0) * m / rows
    exact &= np.array_equal(got[:rows], ref)
    srows = min(m, 16)
    t_sat = median_ms(lambda: jit.matmul_acc(a[:srows], b, 128, 0, None, 16, "saturate"), 3) * m / srows
    return dict(name=name, jit=t_jit, ort=t_mi, qlinear=None, ref=t_ref, ref_est=rows < m,
                macs=m * k * n, exact=exact, sat=t_sat, sat_est=srows < m)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    import numba
    import onnxruntime
    global THREADS
    THREADS = args.threads
    numba.set_num_threads(args.threads)
    print(f"cores {os.cpu_count()}, threads {THREADS} each; numba {numba.__version__} "
          f"(OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), onnxruntime {onnxruntime.__version__}, avx512_vnni {'yes: vpdpbusd core' if vnni.HAS_VNNI else 'no'}")
    rows = [bench_conv(k, v, args.repeat, rng) for k, v in CONVS.items()]
    rows += [bench_gemm(k, v, args.repeat, rng) for k, v in GEMMS.items()]
    head = (f"{'shape':26} {'numba':>8} {'ORT int':>8} {'ORT QLin':>8} {'numpy ref':>10} "
            f"{'numba/bestORT':>13} {'ref/numba':>9} {'GOPS':>6}  {'exact':5} {'sat16 ms':>9}")
    print(head + "\n" + "-" * len(head))
    for r in rows:
        best = min(t for t in (r["ort"], r["qlinear"]) if t is not None)
        ql = f"{r['qlinear']:8.3f}" if r["qlinear"] is not None else f"{'-':>8}"
        ref = ("~" if r["ref_est"] else " ") + f"{r['ref']:9.1f}"
        print(f"{r['name']:26} {r['jit']:8.3f} {r['ort']:8.3f} {ql} {ref} {r['jit'] / best:13.2f} "
              f"{r['ref'] / r['jit']:9.0f} {2 * r['macs'] / r['jit'] / 1e6:6.0f}  {str(r['exact']):5} "
              f"{'~' if r['sat_est'] else ' '}{r['sat']:8.1f}")
    print("ms are medians; ORT int = ConvInteger / MatMulInteger (int32 out, compared bit for bit); "
          "ORT QLin = QLinearConv u8 zp 128 (timed only); sat16 = numba with a saturating 16-bit "
          "accumulator (sequential kernel); '~' = scaled from a slice of rows.")
    return 0 if all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
