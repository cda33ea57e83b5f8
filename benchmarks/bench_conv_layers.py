"""Per-layer speed of qsim's VNNI convolution against onnxruntime's QLinearConv, inside whole networks.

(On x86 hosts without AVX-512 VNNI the planned convs run the AVX2 core, ``qsim.kernels.avx2``: the
header names the core. Its MLAS-like saturating sums need the runtime's ``u8s8_pairs16``.)

Both sides run the whole model (so each layer sees the caches and threads it sees in a real run):

* onnxruntime: its profiler's per-node kernel time (``<node>_kernel_time`` events) of every
  QLinearConv, best of ``--repeats`` runs;
* qsim: ``qsim.compile(model, threads=T)``, with ``vnni_ops.run_planned`` wrapped to time each
  call (the planned conv: input padding copy + fused kernel), best of the same runs.

Layers are grouped by shape (Cin, Cout, k, stride, H, W, groups: depthwise layers run another
kernel and are left out); each group prints its count, GMACs, both times, their ratio and qsim's
GOPS, then a split of qsim's time measured on the captured arguments, called alone:
``pad`` (``conv_input.padded_nhwc``, the channels-last padded copy of the input), ``tiles`` (the kernel's
register-tile loop over the same work items without the requantizing epilogue,
``vnni_fused.tiles_only``) and ``kernel`` (``vnni_fused.conv_rows_q``, tiles + epilogue; one
parallel region). The epilogue's share is roughly ``kernel - tiles``.

    python benchmarks/bench_conv_layers.py [--nets r18,r50,mnv2] [--batch 1] [--threads 2] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from bench_simulate import symbolic_batch  # noqa: E402
from resnet50_model import quantized_resnet50  # noqa: E402


def models(nets, work: Path) -> dict:
    from differential.networks import build

    out = {}
    cases = {"r18": "onnx:resnet18:qoperator:uint8:channel:224", "mnv2": "onnx:mobilenet_v2:qoperator:uint8:channel:224"}
    for net in nets:
        if net in cases:   # the file bench_simulate builds in the same workdir, built again only when missing
            done = work / (cases[net].replace(":", "_") + ".onnx")
            out[net] = done if done.exists() else build(cases[net], work)[0]
        elif net == "r50":
            out[net] = quantized_resnet50(work)
        else:
            raise SystemExit(f"unknown net {net!r} (r18, r50, mnv2)")
    return out


def conv_kernels(path: Path) -> dict:
    """node name -> (kernel size, groups) of every QLinearConv of the model file."""
    g = onnx.load(str(path), load_external_data=False).graph
    shapes = {t.name: tuple(t.dims) for t in g.initializer}
    res = {}
    for n in g.node:
        if n.op_type == "QLinearConv":
            group = [onnx.helper.get_attribute_value(a) for a in n.attribute if a.name == "group"]
            res[n.name] = (shapes[n.input[3]][2], group[0] if group else 1)
    return res


def ort_layers(path: Path, x: np.ndarray, threads: int, repeats: int) -> tuple[list, float]:
    """[(shape key, best us)] per QLinearConv in run order, and the best whole-run ms."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")   # as bench_simulate
    so.enable_profiling = True
    so.profile_file_prefix = str(Path(os.environ.get("TMPDIR", "/tmp")) / "bench_conv_layers_ort")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        walls.append(time.perf_counter() - t0)
    prof = sess.end_profiling()
    events = json.load(open(prof))
    os.unlink(prof)
    kernels = conv_kernels(path)
    per = defaultdict(list)
    shapes = {}
    for e in events:
        a = e.get("args", {})
        if e.get("cat") == "Node" and a.get("op_name") == "QLinearConv" and e["name"].endswith("_kernel_time"):
            node = e["name"][:-len("_kernel_time")]
            per[node].append(e["dur"])
            ins = [list(d.values())[0] for d in a["input_type_shape"]]
            # onnxruntime runs the node channels-last ([N, H, W, C]) under a new name: "<name>_token_<i>".
            xs, ys = ins[0], list(a["output_type_shape"][0].values())[0]
            k, groups = kernels[re.sub(r"_token_\d+$", "", node)]
            shapes[node] = (xs[3], ys[3], k, -(-xs[1] // ys[1]), xs[1], xs[2], groups)
    # The first run (warm-up) is in the profile too: the best of the rest.
    return [(shapes[n], min(v[1:])) for n, v in per.items()], min(walls) * 1e3


def qsim_layers(path: Path, x: np.ndarray, threads: int, repeats: int):
    """[(shape key, best us, captured call)] per planned VNNI conv in run order, best whole-run ms."""
    import qsim
    from qsim.kernels import vnni_ops

    in_name = onnx.load(str(path), load_external_data=False).graph.input[0].name
    model = qsim.compile(path, {in_name: x}, threads=threads)
    model.run({in_name: x})
    real = vnni_ops.run_planned
    calls: list = []

    def timed(plan, xx, requant, out=None, bufs=None):
        t0 = time.perf_counter()
        r = real(plan, xx, requant, out, bufs)
        calls.append((time.perf_counter() - t0, plan, xx, requant, out, bufs))
        return r

    vnni_ops.run_planned = timed
    walls = []
    try:
        per: list = []
        for _ in range(repeats):
            calls.clear()
            t0 = time.perf_counter()
            model.run({in_name: x})
            walls.append(time.perf_counter() - t0)
            per.append(list(calls))
    finally:
        vnni_ops.run_planned = real
    res = []
    for i, c in enumerate(per[0]):
        g = c[1].g
        key = (g.cg * g.groups, g.m, g.kh, g.stride[0], g.h, g.w, g.groups)
        res.append((key, min(p[i][0] for p in per) * 1e6, c))
    return res, min(walls) * 1e3


def best_us(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


def split(call, repeats: int) -> tuple[float, float, float]:
    """(pad, tiles, kernel) us of one captured planned conv, each called alone."""
    from qsim.kernels import conv_input, vnni_fused, vnni_ops

    _, plan, xx, requant, out, bufs = call
    g = plan.g
    pad = best_us(lambda: conv_input.planned_input(plan, xx, bufs), repeats)
    if g.groups != 1 or plan.need_sa:
        return pad, float("nan"), float("nan")
    xp = conv_input.planned_input(plan, xx, bufs)
    dst = (out if out is not None else np.empty((g.n, g.oh * g.ow, g.m), requant[1])).reshape(-1, g.m)
    w0g, const, fast = plan.group_terms[0]
    args = (xp, plan.packs[0][0], plan.taps, plan.cgp // 4, plan.offs, plan.run)
    tiles = best_us(lambda: vnni_fused.tiles_only(*args, g.n, xp[0].size), repeats)
    kernel = best_us(lambda: vnni_ops._conv_q(plan, xp, dst, requant), repeats)
    return pad, tiles, kernel


def report(net: str, path: Path, batch: int, threads: int, repeats: int) -> None:
    import numba

    from qsim.kernels import vnni_fused

    numba.set_num_threads(threads)
    x = np.random.default_rng(3).standard_normal((batch, 3, 224, 224)).astype(np.float32)
    ort_l, ort_ms = ort_layers(path, x, threads, repeats)
    q_l, q_ms = qsim_layers(path, x, threads, repeats)
    ort_by, q_by, calls, counts = defaultdict(float), defaultdict(float), {}, defaultdict(int)
    for k, us in ort_l:
        if k[6] == 1:
            ort_by[k] += us
            counts[k] += 1
    for k, us, c in q_l:
        q_by[k] += us
        calls.setdefault(k, c)
    print(f"\n{net} batch {batch}, {threads} threads: whole run onnxruntime {ort_ms:.2f} ms, qsim {q_ms:.2f} ms "
          f"({q_ms / ort_ms:.2f}x); QLinearConv (groups 1) onnxruntime {sum(ort_by.values()) / 1e3:.2f} ms, "
          f"qsim planned convs ({vnni_fused.CORE} core) {sum(q_by.values()) / 1e3:.2f} ms")
    print(f"{'Cin':>5} {'Cout':>5} {'k':>2} {'s':>2} {'HxW':>8} {'n':>3} {'GMAC':>6} {'ORT us':>8} {'qsim us':>8} "
          f"{'ratio':>6} {'GOPS':>5} | {'pad':>6} {'tiles':>7} {'kernel':>7}  (us, qsim alone, per layer)")
    tot_gmac = 0.0
    for k in sorted(q_by, key=lambda k: -q_by[k]):
        cin, cout, kk, s, h, w, _ = k
        c = calls[k][1].g
        gmac = counts[k] * batch * c.m * c.oh * c.ow * c.cg * c.kh * c.kw / 1e9
        tot_gmac += gmac
        pad, tiles, kern = split(calls[k], repeats)
        o = ort_by.get(k, float("nan"))
        print(f"{cin:5d} {cout:5d} {kk:2d} {s:2d} {f'{h}x{w}':>8} {counts[k]:3d} {gmac:6.3f} {o:8.0f} {q_by[k]:8.0f} "
              f"{q_by[k] / o:6.2f} {2 * gmac * 1e6 / q_by[k]:5.0f} | {pad:6.0f} {tiles:7.0f} {kern:7.0f}")
    print(f"total: {tot_gmac:.2f} GMAC in the planned convs: qsim {2 * tot_gmac * 1e6 / sum(q_by.values()):.0f} GOPS, "
          f"onnxruntime's QLinearConv {2 * tot_gmac * 1e6 / sum(ort_by.values()):.0f} GOPS")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/qsim_bench_simulate")
    ap.add_argument("--nets", default="r18,r50,mnv2")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    logging.getLogger().setLevel(logging.ERROR)
    paths = models(args.nets.split(","), work)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for net, path in paths.items():
        report(net, symbolic_batch(path) if args.batch > 1 else path, args.batch, args.threads, args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
