"""Speed of qsim's integer executor against the runtimes it reproduces, measured in one run.

Each case is a model file run by its runtime and by ``qsim.compile(path, threads=T).run`` (the
compiled path ``qsim.simulate`` uses; import, quantization parameters and weight packing paid once)
on the same inputs and the same thread count T, alternately, ``--repeats`` times; the script prints
both best times, their ratio against the issue's target and whether the outputs are bit-identical:

* ResNet-18 and ResNet-50 u8/s8 QOperator (onnxruntime ``quantize_static``, per-channel int8
  weights, uint8 activations), batch 1 and 32 (the batch axis made symbolic): target <= 1.2x;
* ResNet-18 s8/s8 QDQ (int8 activations: onnxruntime's slow path): target < 1x;
* MobileNetV2 u8/s8 QOperator (depthwise), batch 1 and 32: target <= 1.5x;
* an int8 MobileNetV2 .tflite under LiteRT's optimized builtin kernels (policy tflite-optimized):
  target <= 1x;
* cold start: the first ``qsim.simulate`` of ResNet-18 in a fresh process (numba's disk cache warm),
  imports included, with qsim's runtime dependencies (scipy not importable): target < 1 s; and again
  with scipy importable, as the search and test extras install it;
* the VNNI conv kernel's throughput on ResNet-18's 3x3 layers against the machine's int8 peak
  (~920 GOPS on 2 cores, ``../shared/DESIGN.md``; scaled by T / 2);
* with ``--profile``: where a compiled run's time goes, for ResNet-18 and MobileNetV2 at batch 1:
  the time in the numba kernels (each kernel dispatch timed) against the rest (the executor's own
  Python), and the functions that take most of the rest under cProfile.

ResNet-50 is the light model the onnx package ships with seeded random weights; ResNet-18 and
MobileNetV2 are torchvision's architectures with random weights (tests/differential/net_specs.py).
On a shared machine the ratios are what counts (both sides see the same load); say how loaded it was.

    .venv/bin/python benchmarks/bench_simulate.py [--workdir DIR] [--repeats N] [--threads T] [--quick] [--profile]
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from resnet50_model import quantized_resnet50  # noqa: E402

PEAK_GOPS_2_CORES = 920.0  # AVX-512 VNNI vpdpbusd, 64 MACs/cycle/core, 2 cores (../shared/DESIGN.md, "Speed")


def symbolic_batch(path: Path) -> Path:
    """A copy of an ONNX model whose first input and outputs take any batch (dim_param "N")."""
    out = path.with_name(path.stem + "_batchN.onnx")
    if out.exists():
        return out
    m = onnx.load(str(path))
    for v in list(m.graph.input[:1]) + list(m.graph.output):
        v.type.tensor_type.shape.dim[0].dim_param = "N"
    del m.graph.value_info[:]
    shapes = {n.input[1] for n in m.graph.node if n.op_type == "Reshape"}
    for t in m.graph.initializer:  # a Reshape to a fixed (1, C) (ResNet-50's head) takes any batch
        if t.name in shapes:
            v = onnx.numpy_helper.to_array(t).copy()
            if v.size and v[0] == 1:
                v[0] = -1
                t.CopyFrom(onnx.numpy_helper.from_array(v, t.name))
    onnx.save(m, str(out))
    return out


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    # Pool threads spinning after each run would steal the cores from qsim's kernel threads in this
    # same process: spinning off keeps the two measurements independent.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return lambda feeds: sess.run(None, feeds)


def litert_runner(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), num_threads=threads,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()

    def run(feeds):
        for d in ins:
            it.set_tensor(d["index"], feeds[d["name"]])
        it.invoke()
        return [it.get_tensor(d["index"]).copy() for d in outs]

    return run


def race(peer, ours, feeds, repeats: int) -> tuple[float, float, float, bool]:
    """Best times (ms) of the peer and of qsim, alternating, the median of the ratios of the
    alternated pairs (a second reading on a machine whose speed drifts: each pair ran back to back),
    and whether the outputs are equal."""
    ref, got = peer(feeds), ours(feeds)  # warm both (numba loads its cache on the first run)
    tp, tq = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ref = peer(feeds)
        tp.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = ours(feeds)
        tq.append(time.perf_counter() - t0)
    same = len(ref) == len(got) and all(np.array_equal(r, g) and r.dtype == g.dtype for r, g in zip(ref, got.values()))
    return min(tp) * 1e3, min(tq) * 1e3, float(np.median(np.array(tq) / np.array(tp))), same


def line(name: str, peer: str, tp: float, tq: float, paired: float, same: bool, target: str) -> str:
    return (f"{name:<44} {peer:<12} {tp:9.1f} ms  qsim {tq:9.1f} ms  ratio {tq / tp:5.2f}x  "
            f"(pairs' median {paired:4.2f}x; target {target})  bit-identical: {same}")


def cold_start(path: Path, x: np.ndarray, workdir: Path, hide_scipy: bool) -> float:
    """Seconds from a fresh interpreter's ``import qsim`` to the end of its first simulate (best of
    5, after one process that warms the caches). The caches are warm as in an installed package:
    numba's, and Python's bytecode (pip writes it at install time; a PYTHONDONTWRITEBYTECODE in the
    caller's environment, as in some containers, made every run compile qsim's ~85 modules from
    source, ~0.13 s more).

    ``hide_scipy``: the process cannot import scipy, as in an install of qsim's runtime dependencies
    (scipy comes only with the ``search`` and ``test`` extras). Where scipy is importable, numba's
    first-call set-up probes for BLAS by importing ``scipy.linalg`` (``numba.np.arraymath``'s
    ``_check_blas``), which pulls in numpy.f2py and numpy.testing: ~0.15 s that qsim's kernels, which
    call no BLAS, never use."""
    np.save(workdir / "cold_x.npy", x)
    code = ("import time; t0 = time.perf_counter(); import numpy as np, qsim; "
            f"qsim.simulate({str(path)!r}, {{'x': np.load({str(workdir / 'cold_x.npy')!r})}}); "
            "print(time.perf_counter() - t0)")
    if hide_scipy:
        code = "import sys; sys.modules['scipy'] = None; " + code  # before the clock starts: no cost of its own
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    runs = [float(subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout.split()[-1]) for _ in range(6)]
    return min(runs[1:])


def conv_peak(threads: int, repeats: int) -> str:
    """GOPS of the fused VNNI conv (the vpdpbusd core with onnxruntime's requantization in its
    epilogue, planned once as the executor plans it: ``vnni_ops.plan_conv`` / ``run_planned``) on
    ResNet-18's 3x3 layers, against the peak. (Timing ``jit.conv2d_requant`` instead would time the
    per-call planning too: 139-323 GOPS.)"""
    import numba

    from qsim.kernels import vnni_fused, vnni_ops
    from qsim.kernels._common import acc_range, conv_geometry
    from qsim.numerics.requant_jit import requant_spec
    from qsim.numerics.policies import PolicyName

    avx2 = vnni_fused.CORE == "avx2"  # no VNNI: the AVX2 tiles, with MLAS's saturating int16 pairs
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    rng = np.random.default_rng(0)
    total_ops, total_s = 0, 0.0
    for c, hw in ((64, 56), (128, 28), (256, 14), (512, 7)):
        x = rng.integers(0, 256, (1, c, hw, hw)).astype(np.uint8)
        w = rng.integers(-128, 128, (c, c, 3, 3)).astype(np.int8)
        w.setflags(write=False)
        spec = requant_spec(PolicyName.ONNXRUNTIME, np.float32(0.02), np.float32(0.01), np.float32(0.5), 128, 0, 255, c)

        g = conv_geometry(x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
        lo, hi = acc_range(32)
        plan = vnni_ops.plan_conv(w, x.dtype, 128, np.zeros(c, np.int64), np.zeros(c, np.int64), g, 32, lo, hi,
                                  False, (spec, np.uint8), pairs16=avx2)
        out = np.empty((1, hw * hw, c), np.uint8)

        def conv():
            return vnni_ops.run_planned(plan, x, (spec, np.uint8), out)

        conv()
        best = min(_timed(conv) for _ in range(repeats))
        total_ops += 2 * c * hw * hw * c * 9
        total_s += best
    gops = total_ops / total_s / 1e9
    if avx2:  # no stated peak for this clock: bench_conv_layers.py sets it beside onnxruntime's QLinearConv
        return (f"conv kernel (fused AVX2 vpmaddubsw conv + requantization, ResNet-18 3x3 layers): {gops:.0f} GOPS "
                "(per layer against onnxruntime: benchmarks/bench_conv_layers.py)")
    peak = PEAK_GOPS_2_CORES * threads / 2
    return (f"conv kernel (fused vpdpbusd conv + requantization, ResNet-18 3x3 layers): {gops:.0f} GOPS = "
            f"{100 * gops / peak:.0f} % of the {peak:.0f} GOPS int8 peak")


def _kernel_dispatchers() -> list:
    """(module, name) of every numba kernel a compiled run may call from Python: each numba
    dispatcher bound to a name in any loaded qsim module (a list of modules missed
    ``vnni_fused.conv_rows_q``, the conv kernel, and reported 0.6 ms of kernels for ResNet-18)."""
    import numba.core.registry

    mods = [m for k, m in list(sys.modules.items()) if k == "qsim" or k.startswith("qsim.")]
    return [(m, n) for m in mods for n, v in list(vars(m).items())
            if isinstance(v, numba.core.registry.CPUDispatcher)]


def profile(name: str, model, feeds, repeats: int) -> str:
    """Kernel time and executor time of one compiled run (best of ``repeats``), and the executor's
    top functions under cProfile."""
    import cProfile
    import io
    import pstats

    spent = [0.0]

    def timed(fn):
        def call(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[0] += time.perf_counter() - t0
        return call

    patched = [(m, n, getattr(m, n)) for m, n in _kernel_dispatchers()]
    for m, n, fn in patched:
        setattr(m, n, timed(fn))
    try:
        model.run(feeds)
        best = (float("inf"), 0.0)
        for _ in range(repeats):
            spent[0] = 0.0
            total = _timed(lambda: model.run(feeds))
            best = min(best, (total, spent[0]))
    finally:
        for m, n, fn in patched:
            setattr(m, n, fn)
    prof = cProfile.Profile()
    prof.runcall(lambda: [model.run(feeds) for _ in range(repeats)])
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
    top = "\n".join("    " + ln for ln in out.getvalue().splitlines() if ".py:" in ln or "{" in ln)
    return (f"{name}: {best[0] * 1e3:.1f} ms per run, kernels {best[1] * 1e3:.1f} ms, executor (the rest) "
            f"{(best[0] - best[1]) * 1e3:.1f} ms over {len(list(model.graph.nodes()))} nodes; top functions "
            f"(cProfile, {repeats} runs: calls, own s, own s/call, cum s, cum s/call):\n{top}")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    from qsim.sim.compiled import physical_cores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/qsim_bench_simulate")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=physical_cores(), help="threads of every runtime and of qsim "
                    "(default: the physical cores, onnxruntime's default)")
    ap.add_argument("--quick", action="store_true", help="batch 1 only, no ResNet-50")
    ap.add_argument("--profile", action="store_true", help="kernel vs executor time and a cProfile of "
                    "ResNet-18 and MobileNetV2 at batch 1")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice on pre-processing
    import qsim
    from differential.networks import build

    t0 = time.perf_counter()
    r18, feeds = build("onnx:resnet18:qoperator:uint8:channel:224", work)
    x1 = feeds["x"]
    r18_s8, _ = build("onnx:resnet18:qoperator:int8:channel:224", work)
    mnv2, _ = build("onnx:mobilenet_v2:qoperator:uint8:channel:224", work)
    lite, lite_feeds = build("tflite:mobilenet_v2:224", work)
    r50 = None if args.quick else quantized_resnet50(work)
    print(f"models in {work} (built in {time.perf_counter() - t0:.1f} s); threads {args.threads}; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    # Timed first: the runtimes' pools spin after their runs and hold the cores (right after an
    # onnxruntime run this line read 331 GOPS, alone 730; after the LiteRT case, 270).
    peak = conv_peak(args.threads, args.repeats)
    x32 = np.random.default_rng(3).standard_normal((32, 3, 224, 224)).astype(np.float32)
    cases = [("ResNet-18 u8/s8 QOperator, batch 1", r18, x1, "<= 1.2x"),
             ("ResNet-18 s8/s8 QOperator, batch 1", r18_s8, x1, "< 1x"),
             ("MobileNetV2 u8/s8 QOperator, batch 1", mnv2, x1, "<= 1.5x")]
    if not args.quick:
        cases += [("ResNet-18 u8/s8 QOperator, batch 32", symbolic_batch(r18), x32, "<= 1.2x"),
                  ("MobileNetV2 u8/s8 QOperator, batch 32", symbolic_batch(mnv2), x32, "<= 1.5x"),
                  ("ResNet-50 u8/s8 QOperator, batch 1", r50, x1, "<= 1.2x"),
                  ("ResNet-50 u8/s8 QOperator, batch 32", symbolic_batch(r50), x32, "<= 1.2x")]
    for name, path, x, target in cases:
        in_name = onnx.load(str(path), load_external_data=False).graph.input[0].name
        model = qsim.compile(path, {in_name: x}, threads=args.threads)
        tp, tq, paired, same = race(ort_session(path, args.threads), model.run, {in_name: x}, args.repeats)
        print(line(name, "onnxruntime", tp, tq, paired, same, target), flush=True)
        if args.profile and path in (r18, mnv2):
            print(profile(name, model, {in_name: x}, args.repeats), flush=True)
    model = qsim.compile(lite, lite_feeds, policy="tflite-optimized", threads=args.threads)
    tp, tq, paired, same = race(litert_runner(lite, args.threads), model.run, lite_feeds, args.repeats)
    print(line("MobileNetV2 int8 .tflite, batch 1", "LiteRT opt.", tp, tq, paired, same, "<= 1x"), flush=True)
    print(f"cold start (fresh process, warm numba cache, imports included): first qsim.simulate of ResNet-18 in "
          f"{cold_start(r18, x1, work, hide_scipy=True):.2f} s with qsim's runtime dependencies (target < 1 s); "
          f"{cold_start(r18, x1, work, hide_scipy=False):.2f} s with scipy importable (numba imports "
          f"scipy.linalg to probe for BLAS)")
    print(peak)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
