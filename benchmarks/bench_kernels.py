"""Speed of qsim's integer accumulation kernels against onnxruntime's integer ops, same process.

    .venv/bin/python benchmarks/bench_kernels.py [--repeat N] [--threads T] [--layers-only]

Per shape: median ms of qsim.kernels.jit (wrap, 32-bit accumulator, weights read-only so their
packing is reused, as onnxruntime pre-packs initializers), onnxruntime ConvInteger/MatMulInteger
(int32 accumulators: compared for bit-exactness) and QLinearConv (uint8 activations, zero point 128;
requantizes, so it is timed only), the numpy reference (timed on a slice when marked '~'), and the
saturating 16-bit numba path (order-dependent, so sequential: no vpdpbusd). Then, per ResNet-18 /
ResNet-50 / MobileNetV2 layer, the fused conv with its requantization: GOPS, share of the int8 peak
and ratio to QLinearConv.
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
# ResNet-18 / ResNet-50 layers (batch 1): (C, H=W, M, k, stride), run by ``jit.conv2d_requant`` (the
# fused path the executor runs: accumulation and float32 requantization into uint8).
LAYERS = {
    "r18 3x3 64->64 @56": (64, 56, 64, 3, 1), "r18 3x3 128->128 @28": (128, 28, 128, 3, 1),
    "r18 3x3 256->256 @14": (256, 14, 256, 3, 1), "r18 3x3 512->512 @7": (512, 7, 512, 3, 1),
    "r18 3x3/2 64->128 @56": (64, 56, 128, 3, 2),
    "r50 1x1 256->64 @56": (256, 56, 64, 1, 1), "r50 1x1 64->256 @56": (64, 56, 256, 1, 1),
    "r50 1x1 512->128 @28": (512, 28, 128, 1, 1), "r50 1x1 1024->256 @14": (1024, 14, 256, 1, 1),
    "r50 1x1 2048->512 @7": (2048, 7, 512, 1, 1), "r50 1x1 512->2048 @7": (512, 7, 2048, 1, 1),
    "mnv2 dw 3x3 144 @56": (144, 56, 144, 3, 1), "mnv2 dw 3x3/2 96 @112": (96, 112, 96, 3, 2),
}


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


def bench_layers(repeat: int, rng) -> None:
    """GOPS of the fused conv (``jit.conv2d_requant``) per layer, against the int8 peak, and the
    ratio to onnxruntime's QLinearConv on the same layer (u8 activations, zero point 128). qsim reads
    the input channels-last (an NCHW view of NHWC memory), as the executor passes a fused conv's
    output to the next; onnxruntime gets the NCHW array it is given in its graphs."""
    from qsim.numerics.requant_jit import requant_spec

    peak = 460.0 * THREADS   # ~920 GOPS on 2 cores (vpdpbusd, ../shared/DESIGN.md "Speed")
    print(f"\n{'fused layer (conv2d_requant)':30} {'ms':>8} {'GOPS':>6} {'% peak':>7} {'ORT QLin':>9} {'ratio':>6}")
    for name, (c, hw, m, k, s) in LAYERS.items():
        groups = c if name.startswith("mnv2 dw") else 1
        x = rng.integers(0, 256, (1, c, hw, hw), dtype=np.uint8)
        w = rng.integers(-128, 128, (m, c // groups, k, k), dtype=np.int8)
        w.flags.writeable = False
        p = k // 2
        spec = requant_spec("onnxruntime", np.float32(0.02), np.full(m, 0.01, np.float32), np.float32(0.05), 3, 0,
                            255, m)
        xv = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        args = (xv, w, 128, 0, None, (s, s), (p, p, p, p), (1, 1), groups)
        t = median_ms(lambda: jit.conv2d_requant(*args, acc_bits=32, requant=(spec, np.uint8)), repeat)
        qsess, qfeeds = qlinear_conv(x, w, 128, 0, (s, s), (p, p, p, p), (1, 1), groups, threads=THREADS)
        t_qc = median_ms(lambda: qsess.run(None, qfeeds), repeat)
        oh = (hw + 2 * p - k) // s + 1
        gops = 2 * m * oh * oh * (c // groups) * k * k / t / 1e6
        print(f"{name:30} {t:8.3f} {gops:6.0f} {100 * gops / peak:6.0f}% {t_qc:9.3f} {t / t_qc:6.2f}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--layers-only", action="store_true", help="only the per-layer table of the fused conv")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    import numba
    import onnxruntime
    global THREADS
    THREADS = args.threads
    numba.set_num_threads(args.threads)
    print(f"cores {os.cpu_count()}, threads {THREADS} each; numba {numba.__version__} "
          f"(OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), onnxruntime {onnxruntime.__version__}, avx512_vnni {'yes: vpdpbusd core' if vnni.HAS_VNNI else 'no'}")
    if args.layers_only:
        bench_layers(args.repeat, rng)
        return 0
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
    bench_layers(args.repeat, rng)
    return 0 if all(r["exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
