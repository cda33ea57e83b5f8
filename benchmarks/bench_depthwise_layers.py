"""Per-node times of MobileNetV2 u8/s8 QOperator at batch 1: qsim's planned nodes against
onnxruntime's kernels, at 1 and 2 threads, and the executor's own time per run.

* onnxruntime: its profiler (``enable_profiling``), the ``kernel_time`` events of each node, best
  of ``--repeats`` runs (the spinning of its pool off, as in bench_simulate.py);
* qsim: ``qsim.compile(path, threads=T)``; after the first run has planned every node, each planned
  node's closure (``plan.Bound.fn``: the kernel call with the transposes around it) is timed in
  place, best of ``--repeats`` runs. The whole run's best time is printed beside it; the run less the
  sum of the node times is the executor's own time (the loop, thread-count switches, statistics,
  the boundary quantize).
* a second qsim column: each planned node's closure again, back to back, on a channels-last
  copy of its input (``_warm_channels_last``): the depthwise kernel alone, without the copy of a
  channels-first input (the layout the per-node convolutions write) and with warm caches;
* ``--noop``: the executor with every planned node's closure replaced by one that returns its
  last outputs (no kernel runs): the executor's per-run overhead alone.

Depthwise nodes (group == channels) are printed one per line; the others summed by op.

    python benchmarks/bench_depthwise_layers.py [--workdir DIR] [--repeats N] [--threads 1 2] [--all]
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]


def depthwise_nodes(path: Path) -> dict[str, str]:
    """Node name -> a short description (kernel, stride, channels) of the depthwise QLinearConvs."""
    m = onnx.load(str(path), load_external_data=False)
    inits = {t.name: t for t in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        w = inits.get(n.input[3]) if n.op_type == "QLinearConv" else None
        if w is not None and attrs.get("group", 1) > 1 and attrs["group"] == w.dims[0]:
            out[n.name] = f"{w.dims[2]}x{w.dims[3]}/s{attrs.get('strides', [1])[0]} C={w.dims[0]}"
    return out


def ort_node_times(path: Path, feeds: dict, threads: int, repeats: int) -> dict[str, float]:
    """Best kernel time (ms) of each node over ``repeats`` profiled runs."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_profiling = True
    so.profile_file_prefix = str(Path("/tmp") / f"ort_dw_prof_{threads}")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    for _ in range(repeats + 1):
        sess.run(None, feeds)
    prof = sess.end_profiling()
    per_run: dict[str, list] = defaultdict(list)
    for ev in json.load(open(prof)):
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            # onnxruntime's layout transformer renames the nodes it moves to NHWC: NAME_token_K
            per_run[re.sub(r"_token_\d+$", "", ev["name"][:-len("_kernel_time")])].append(ev["dur"] / 1e3)
    Path(prof).unlink()
    runs = repeats + 1  # the first run warms up
    return {k: min(v[len(v) // runs:]) for k, v in per_run.items()}


def qsim_node_times(path: Path, feeds: dict, threads: int, repeats: int):
    """(best time of each planned node in ms, best whole run in ms, planned nodes, ops by name)."""
    import qsim

    model = qsim.compile(path, feeds, threads=threads)
    model.run(feeds)
    model.run(feeds)
    plan = next(p for p in model._plans.values() if p is not None)
    best: dict[str, float] = defaultdict(lambda: float("inf"))
    for node, bound in zip(plan.nodes, plan._bound):
        if bound is False:
            continue

        def timed(args, fresh, _fn=bound.fn, _name=node.name):
            t0 = time.perf_counter()
            r = _fn(args, fresh)
            best[_name] = min(best[_name], (time.perf_counter() - t0) * 1e3)
            calls[_name] = (_fn, list(args), fresh)
            return r
        bound.fn = timed
    calls: dict = {}
    whole = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.run(feeds)
        whole = min(whole, (time.perf_counter() - t0) * 1e3)
    ops = {n.name: n.op for n in plan.nodes}
    return dict(best), whole, sum(b is not False for b in plan._bound), ops, _warm_channels_last(calls, repeats)


def _warm_channels_last(calls: dict, repeats: int) -> dict[str, float]:
    """Each planned node's closure timed again, back to back (warm caches), on a channels-last copy
    of its first input (what a fused conv writes): for a depthwise node, the kernel without the
    channels-first -> channels-last copy the closure makes otherwise."""
    out = {}
    for name, (fn, args, fresh) in calls.items():
        x = args[0]
        if not isinstance(x, np.ndarray) or x.ndim != 4:
            continue
        args = [np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)] + args[1:]
        fn(args, fresh)
        t = float("inf")
        for _ in range(max(repeats, 20)):
            t0 = time.perf_counter()
            fn(args, fresh)
            t = min(t, (time.perf_counter() - t0) * 1e3)
        out[name] = t
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/qsim_bench_simulate")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--noop", action="store_true", help="also time the executor with no kernels")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    logging.getLogger().setLevel(logging.ERROR)
    import os

    from differential.networks import build

    path, feeds = build("onnx:mobilenet_v2:qoperator:uint8:channel:224", work)
    feeds = {"x": feeds["x"]}
    dw = depthwise_nodes(path)
    print(f"MobileNetV2 u8/s8 QOperator b1 ({path}); load average {os.getloadavg()[0]:.2f}")
    for t in args.threads:
        ort_t = ort_node_times(path, feeds, t, args.repeats)
        q_t, whole, planned, ops, warm = qsim_node_times(path, feeds, t, args.repeats)
        print(f"\n{t} thread(s): {'node':<28} {'shape':<18} {'ORT ms':>8} {'qsim ms':>8} {'ratio':>6} "
              f"{'qsim warm NHWC':>14} {'ratio':>6}")
        sums = defaultdict(lambda: [0.0, 0.0])
        warm_dw = 0.0
        for name, desc in dw.items():
            o, q = ort_t.get(name, float("nan")), q_t.get(name, float("nan"))
            k = warm.get(name, float("nan"))
            sums["depthwise"][0] += o
            sums["depthwise"][1] += q
            warm_dw += k
            print(f"  {name:<38} {desc:<18} {o:8.3f} {q:8.3f} {q / o:6.2f} {k:14.3f} {k / o:6.2f}")
        print(f"  depthwise total on warm channels-last inputs: qsim {warm_dw:.3f} ms  "
              f"ratio {warm_dw / sums['depthwise'][0]:.2f}")
        for name, q in q_t.items():
            if name not in dw:
                sums[ops[name]][1] += q
        ort_rest = sum(o for n, o in ort_t.items() if n not in dw)
        for name, o in ort_t.items():
            if name not in dw:
                sums[ops.get(name, name)][0] += o
        print(f"  depthwise total: ORT {sums['depthwise'][0]:.3f} ms  qsim {sums['depthwise'][1]:.3f} ms  "
              f"ratio {sums['depthwise'][1] / sums['depthwise'][0]:.2f}")
        for op in sorted(k for k in sums if k != "depthwise"):
            print(f"  {op} (not depthwise) total: ORT {sums[op][0]:.3f} ms  qsim {sums[op][1]:.3f} ms")
        print(f"  ORT nodes other than depthwise: {ort_rest:.3f} ms; ORT node sum {sum(ort_t.values()):.3f} ms")
        node_sum = sum(q_t.values())
        print(f"  qsim whole run {whole:.3f} ms, planned nodes {planned}, node sum {node_sum:.3f} ms, "
              f"executor's own {whole - node_sum:.3f} ms")
        if args.noop:
            noop_whole = _noop_run(path, feeds, t, args.repeats)
            print(f"  qsim executor with no-op nodes: {noop_whole:.3f} ms per run")
    return 0


def _noop_run(path: Path, feeds: dict, threads: int, repeats: int):
    """The best run time with every planned node replaced by a closure returning its outputs."""
    import qsim

    model = qsim.compile(path, feeds, threads=threads)
    model.run(feeds)
    model.run(feeds)
    plan = next(p for p in model._plans.values() if p is not None)
    for bound in plan._bound:
        if bound is False:
            continue
        bound.fn = _replay(bound.fn)
    model.run(feeds)
    whole = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.run(feeds)
        whole = min(whole, (time.perf_counter() - t0) * 1e3)
    return whole


def _replay(fn):
    """A closure that runs ``fn`` once and then returns that call's result without running it."""
    memo = []

    def replay(args, fresh):
        if not memo:
            memo.append(fn(args, fresh))
        return memo[0]
    return replay


if __name__ == "__main__":
    raise SystemExit(main())
