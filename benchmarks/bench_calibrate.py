"""`qsim calibrate` vs onnxruntime on this machine, fp32 and int8.

Calibrates a profile for this machine (or takes one with --profile): the profile is fitted on
microbenchmarks only (GEMMs, lone QLinearConv kernels, copies, a chain of tiny nodes, lone stack
kernels). Then, for the classic models that the onnx package ships (onnx/backend/test/data/light,
weightless: random weights are filled in), it prints qsim's predicted latency with that profile next
to onnxruntime's measured latency and the error: fp32 as shipped, int8 after onnxruntime's
quantize_static (QOperator format: QLinearConv / QLinearMatMul, u8 activations, s8 weights). The
fitted rows (the microbenchmarks the rates were read from) and the held-out rows (whole models, never
used in fitting) are summarised apart. A model's time is given twice: its fastest whole run, and the
sum over its nodes of each node's fastest kernel time (onnxruntime's profiler), which a shared
machine disturbs far less.

Measurement on a shared machine: ``--rounds`` (default 3) interleaves the calibration and the models'
runs; each calibrated number is the median over rounds of its fastest runs, each model kernel and each
lone conv its fastest over all rounds. Each round prints the CPU time other processes took meanwhile (in cores,
from /proc/stat) and the load average: figures from rounds where other processes held a core are not
quiet figures.

``--ablate`` also predicts the int8 models with the measured depthwise rate and the local stack's
mechanisms (float MaxPool islands, float Sum islands, NHWC layout transposes, composed channel-shuffle
transposes, im2col GEMM convolutions, 8-bit average pools, float BatchNorm islands and per-channel Mul /
Add, their cost per channel plane, 8-bit Concat lookup tables, each conv kernel's fixed cost) added one
at a time. ``--by-op`` prints
per model onnxruntime's kernel time per op type beside qsim's per op. Lone convolutions time one kernel
(the profiler's): the 3x3 convs the int8 conv rate was read from and the stems the im2col GEMM costs
were fitted on (fitted rows), and the held-out models' own stems and grouped convs (held-out rows).

    python benchmarks/bench_calibrate.py [--profile hw_profiles/local.yaml] [--models resnet50,squeezenet]
                                         [--precisions fp32,int8] [--rounds 3] [--ablate] [--by-op]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from qsim.cost import estimate_graph
from qsim.hw.calibrate import measure, median_results, profile_yaml, qlinear_conv_model
from qsim.hw.calibrate_stack import IM2COL_FIT_CONVS, ort_kernel_seconds
from qsim.ir import Graph
from qsim.hw.profile import build_profile, load_profile
from qsim.ir.onnx_import import load_onnx
from qsim.precision import PrecisionPlan
from qsim.yamlio import load_yaml

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = ["squeezenet", "shufflenet", "bvlc_alexnet", "inception_v1", "resnet50", "densenet121", "vgg19"]


def with_weights(path: Path) -> onnx.ModelProto:
    """The light model with random weights: its ConstantOfShape weight generators (a constant 0.02
    from a stored shape) become random initializers, so that calibration sees real ranges."""
    model = onnx.load(str(path))
    g, rng = model.graph, np.random.default_rng(0)
    shapes = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    # BatchNorm scales and variances must stay positive (a negative variance makes NaNs)
    positive = {n.input[i] for n in g.node if n.op_type == "BatchNormalization" for i in (1, 4)}
    nodes, weights = [], []
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in shapes:
            shape = [int(d) for d in shapes[node.input[0]]]
            values = rng.uniform(0.5, 1.5, shape) if node.output[0] in positive else rng.standard_normal(shape) * 0.05
            weights.append(onnx.numpy_helper.from_array(values.astype(np.float32), node.output[0]))
        else:
            nodes.append(node)
    used = {t for node in nodes for t in node.input}
    inits = [i for i in g.initializer if i.name in used] + weights
    inputs = [i for i in g.input if i.name not in shapes and i.name not in {w.name for w in weights}]
    del g.node[:], g.initializer[:], g.input[:]
    g.node.extend(nodes), g.initializer.extend(inits), g.input.extend(inputs)
    model.ir_version = max(model.ir_version, 7)  # initializers need not be graph inputs (IR >= 4)
    return model


def quantized(path: Path, out_dir: Path) -> Path:
    """onnxruntime quantize_static, QOperator format, u8 activations and s8 weights, per tensor."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = with_weights(path)
    inp = model.graph.input[0]
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.left = [{inp.name: np.random.default_rng(i).standard_normal(shape).astype(np.float32)} for i in range(2)]

        def get_next(self):
            return self.left.pop() if self.left else None

    src, pre, dst = (out_dir / f"{path.stem}_{tag}.onnx" for tag in ("f32", "pre", "int8"))
    onnx.save(model, str(src))
    # onnxruntime's recommended pre-processing: BatchNorm folded into the convs before quantizing
    # (otherwise every BatchNorm runs in float between a DequantizeLinear and a QuantizeLinear)
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return dst


def _conv_graph(cin: int, cout: int, size: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> Graph:
    g = Graph("qconv")
    g.add_input("x", (1, cin, size, size))
    g.add_node("Conv", "c", ["x"], {"out_channels": cout, "kernel": kernel, "pad": kernel // 2, "stride": stride,
                                    "groups": groups, "bias": False})
    g.mark_output("c")
    return g.validate()


# The held-out models' stems and grouped convs as lone kernels: (label, cin, cout, input size, kernel, stride, groups)
MODEL_CONVS = [("ResNet-50/Inception/DenseNet stem", 3, 64, 224, 7, 2, 1), ("SqueezeNet stem", 3, 96, 224, 7, 2, 1),
               ("AlexNet stem", 3, 96, 224, 11, 4, 1), ("ShuffleNet stem", 3, 24, 224, 3, 2, 1),
               ("AlexNet conv2 (2 groups)", 96, 256, 27, 5, 1, 2), ("ShuffleNet 1x1 (4 groups)", 136, 136, 28, 1, 1, 4)]


def lone_convs() -> list[tuple]:
    """The stems the im2col GEMM costs were fitted on (fitted rows) and the held-out models' own stems and
    grouped convs (held-out rows): (row, label, cin, cout, size, kernel, stride, groups)."""
    lone = [("fitted", f"stem {k}x{k} 3->{c} 56x56", 3, c, 56, k, 1, 1) for c, k in IM2COL_FIT_CONVS]
    return lone + [("held out", f"lone {label}", *spec) for label, *spec in MODEL_CONVS]


def measure_lone_convs() -> dict[str, float]:
    """Each lone conv's fastest kernel time (onnxruntime's profiler), by label."""
    rng = np.random.default_rng(0)
    out = {}
    for _, label, cin, cout, size, kernel, stride, groups in lone_convs():
        x = rng.integers(0, 255, (1, cin, size, size), dtype=np.uint8)
        out[label] = ort_kernel_seconds(qlinear_conv_model(size, cout, cin, kernel, stride, groups), {"x": x},
                                        "QLinearConv")
    return out


def fitted_rows(results, lone_seconds, conv_profile, conv_before) -> list[dict]:
    """The microbenchmarks the profile's int8 conv rates were read from, predicted back: the lone 3x3 and
    1x1 convs of the conv rate (their kernel times from the calibration, ``results``: None when the profile
    was given), and the lone convs of ``lone_convs`` with their kernel times ``lone_seconds``
    (``conv_profile``: the stack without layout transposes, so that the prediction is the conv kernel's
    alone; ``conv_before``: also without the im2col GEMM costs)."""
    rows = []
    for label, macs, seconds, (cin, cout, size, kernel) in (results or {}).get("int8_qconv_fit", {}).get("rows", ()):
        graph = _conv_graph(int(cin), int(cout), int(size), int(kernel))
        predicted = estimate_graph(graph, PrecisionPlan.uniform("int8"), conv_profile)
        rows.append({"row": "fitted", "precision": "int8 conv", "model": f"QLinearConv {label}",
                     "GMACs": macs / 1e9, "measured_ms": float("nan"), "kernels_ms": seconds * 1e3,
                     "predicted_ms": predicted.totals["latency_s"] * 1e3})
    for row, label, cin, cout, size, kernel, stride, groups in lone_convs():
        graph = _conv_graph(cin, cout, size, kernel, stride, groups)
        predicted, before = (estimate_graph(graph, PrecisionPlan.uniform("int8"), p).totals["latency_s"]
                             for p in (conv_profile, conv_before))
        rows.append({"row": row, "precision": "int8 conv", "model": label, "GMACs": graph.summary()["macs"] / 1e9,
                     "measured_ms": float("nan"), "kernels_ms": lone_seconds[label] * 1e3,
                     "predicted_ms": predicted * 1e3, "without im2col GEMM": before * 1e3})
    return rows


def measure_ort(path: Path, repeats: int = 30) -> tuple[float, dict[tuple[str, str], float]]:
    """(fastest whole run, per (node, op type) its fastest kernel time) over ``repeats`` runs each.
    On a shared machine a whole run is rarely undisturbed; a single kernel often is, so the kernel sum
    (onnxruntime's profiler, kernel times only: no time between nodes) is the steadier figure. Whole
    runs are timed on a session without the profiler (which adds its own work to every node)."""
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in plain.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[inp.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    plain.run(None, feeds)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        plain.run(None, feeds)
        best = min(best, time.perf_counter() - t0)
    del plain
    opts = ort.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(repeats + 1):
        sess.run(None, feeds)
    kernel: dict[tuple[str, str], float] = {}
    for event in json.loads(Path(sess.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            key = (event["name"], event["args"].get("op_name", ""))
            kernel[key] = min(kernel.get(key, float("inf")), event["dur"] * 1e-6)
    return best, kernel


class ForeignCpu:
    """CPU time other processes took while this one measured (from /proc/stat less this process's own
    /proc/self/stat), in cores: on 2 cores, 1.0 means another process held a whole core meanwhile."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0, 0.0, time.time()
        tick = os.sysconf("SC_CLK_TCK")
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
        return busy / tick, (int(own[11]) + int(own[12])) / tick, time.time()

    def cores(self) -> float:
        (b0, o0, t0), (b1, o1, t1) = self.start, self._sample()
        return max((b1 - b0) - (o1 - o0), 0.0) / max(t1 - t0, 1e-9)


def stages(profile_path: Path) -> dict[str, object]:
    """The calibrated profile with its onnxruntime stack's mechanisms added one at a time (an ablation)."""
    data = load_yaml(profile_path)
    if "stacks" not in data:
        return {"as calibrated": load_profile(profile_path)}
    name = data["stack"]
    full = copy.deepcopy(data["stacks"][name])
    islands = full.get("float_islands", {})
    layout = {k: full[k] for k in ("channels_last_int8", "layout_transpose_ns_per_element") if k in full}
    sums = {"float_islands": {k: v for k, v in islands.items() if k != "BatchNorm"},
            "dequantize_ns_per_element": full.get("dequantize_ns_per_element", 0.001)}
    composed = {k: full[k] for k in ("composed_transpose_ns_per_element",) if k in full}
    gemm = {k: full[k] for k in ("im2col_gemm", "conv_output_ns_per_element") if k in full}
    pools = {k: full[k] for k in ("average_pool_ns_per_tap",) if k in full}
    islands_bn = {"float_islands": islands, **{k: full[k] for k in ("broadcast_ns_per_element",) if k in full}}
    planes = {k: full[k] for k in ("broadcast_ns_per_channel",) if k in full}
    steps = [("no stack, no depthwise rate", None), ("no stack", None),
             ("+ float MaxPool islands", {"float_islands": {k: v for k, v in islands.items() if k == "MaxPool"}}),
             ("+ float Sum islands", sums),
             ("+ NHWC layout transposes", {**sums, **layout}),
             ("+ composed shuffle transposes", {**sums, **layout, **composed}),
             ("+ im2col GEMM convs, direct convs' cost per output", {**sums, **layout, **composed, **gemm}),
             ("+ 8-bit average pools", {**sums, **layout, **composed, **gemm, **pools}),
             ("+ float BatchNorm islands, per-channel Mul / Add",
              {**sums, **layout, **composed, **gemm, **pools, **islands_bn}),
             ("+ per-channel Mul / Add cost per plane", {**sums, **layout, **composed, **gemm, **pools, **islands_bn,
                                                         **planes}),
             ("+ 8-bit Concat lookup tables", {k: v for k, v in full.items() if k != "conv_kernel_us"}),
             ("+ each 8-bit conv kernel's fixed cost (full stack)", full)]
    out = {}
    for label, keys in steps:
        variant = copy.deepcopy(data)
        if keys is None:
            del variant["stack"], variant["stacks"]
            if label.endswith("no depthwise rate"):
                variant["compute"].pop("depthwise_efficiency", None)
        else:
            base = {k: full[k] for k in ("runtime", "fold_batchnorm", "fuse_activation", "fuse_residual_add", "launch")}
            variant["stacks"][name] = {**base, **{k: v for k, v in keys.items() if v != {}}}
        out[label] = build_profile(variant, f"{profile_path} ({label})")
    return out


def _without_layout(profile_path: Path, *also: str):
    """The calibrated profile with its stack but no layout transposes (a lone conv's kernel alone), nor
    the stack keys ``also``."""
    data = load_yaml(profile_path)
    if "stacks" in data:
        for key in ("channels_last_int8", *also):
            data["stacks"][data["stack"]].pop(key, None)
    return build_profile(data, f"{profile_path} (no layout transposes)")


def _uptime() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _by_op(name: str, precision: str, kernels: dict, layers) -> None:
    """Where a model's time goes: onnxruntime's kernel sum per op type against qsim's per op."""
    ort_ops: dict[str, float] = {}
    for (_, op), seconds in kernels.items():
        ort_ops[op] = ort_ops.get(op, 0.0) + seconds
    qsim_ops = layers.groupby("op").latency_s.sum().sort_values(ascending=False)
    print(f"  {precision} {name}: onnxruntime " + ", ".join(f"{op} {t * 1e3:.2f}" for op, t in
                                                      sorted(ort_ops.items(), key=lambda kv: -kv[1]) if t > 1e-5))
    print(f"  {' ' * len(precision)} {name}: qsim        "
          + ", ".join(f"{op} {t * 1e3:.2f}" for op, t in qsim_ops.items() if t > 1e-5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", help="use this profile instead of calibrating now")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default="fp32,int8")
    ap.add_argument("--rounds", type=int, default=3, help="calibration and model runs, interleaved (default 3)")
    ap.add_argument("--ablate", action="store_true", help="also predict int8 with the stack's mechanisms added one by one")
    ap.add_argument("--by-op", action="store_true", help="per model, onnxruntime's and qsim's time per op type")
    args = ap.parse_args()
    print(f"load average {_uptime()} at the start; {args.rounds} rounds")
    work = Path(tempfile.mkdtemp())
    runs = [(precision, name) for precision in args.precisions.split(",") for name in args.models.split(",")]
    paths = {(p, n): quantized(LIGHT / f"light_{n}.onnx", work) if p == "int8" else LIGHT / f"light_{n}.onnx"
             for p, n in runs}
    # Rounds interleave the calibration's microbenchmarks and the models' runs, so both see the same
    # spells of other work; each keeps its fastest runs (see median_results, and per kernel the minimum)
    rounds, whole, kernels, lone = [], {}, {}, {}
    for r in range(args.rounds):
        foreign = ForeignCpu()
        if not args.profile:
            rounds.append(measure())
        calibrated = foreign.cores()
        for label, seconds in measure_lone_convs().items():
            lone[label] = min(lone.get(label, float("inf")), seconds)
        for key in runs:
            best, per_kernel = measure_ort(paths[key])
            whole[key] = min(whole.get(key, float("inf")), best)
            into = kernels.setdefault(key, {})
            for k, t in per_kernel.items():
                into[k] = min(into.get(k, float("inf")), t)
        print(f"round {r + 1}: other processes used {calibrated:.2f} cores during the calibration, "
              f"{foreign.cores():.2f} over the round; load average {_uptime()}")
    results = median_results(rounds) if rounds else None
    if args.profile:
        path = Path(args.profile)
    else:
        path = work / "local.yaml"
        path.write_text(profile_yaml(results, name="local"))
        print(f"calibrated: {path} (median of {len(rounds)} rounds)")
    profile = load_profile(path)
    print(f"profile {profile.name}: fp32 {profile.compute.macs_per_cycle['fp32']} MACs/cycle x "
          f"{profile.clock_hz / 1e9:.2f} GHz x {profile.compute.efficiency['fp32']}, "
          f"int8 {profile.compute.macs_per_cycle['int8']} x {profile.compute.efficiency['int8']}, "
          f"DRAM {profile.memories['dram'].bandwidth_bytes_per_s / 1e9:.1f} GB/s, dispatch {profile.dispatch_s * 1e6:.2f} us")
    variants = stages(path) if args.ablate else {}
    rows = fitted_rows(results, lone, _without_layout(path), _without_layout(path, "im2col_gemm"))
    for precision, name in runs:
        graph = load_onnx(paths[(precision, name)])
        plan = PrecisionPlan.uniform(precision)
        est = estimate_graph(graph, plan, profile)
        row = {"row": "held out", "precision": precision, "model": name, "GMACs": graph.summary()["macs"] / 1e9,
               "measured_ms": whole[(precision, name)] * 1e3,
               "kernels_ms": sum(kernels[(precision, name)].values()) * 1e3,
               "predicted_ms": est.totals["latency_s"] * 1e3}
        if precision == "int8":
            for label, variant in variants.items():
                row[label] = estimate_graph(graph, plan, variant).totals["latency_s"] * 1e3
        rows.append(row)
        if args.by_op:
            _by_op(name, precision, kernels[(precision, name)], est.layers)
    table = pd.DataFrame(rows)
    table["error_pct"] = 100 * (table.predicted_ms - table.measured_ms) / table.measured_ms
    table["error_vs_kernels_pct"] = 100 * (table.predicted_ms - table.kernels_ms) / table.kernels_ms
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for (row, precision), part in table.groupby(["row", "precision"], sort=False):
        for column, what in (("error_pct", "fastest whole run"), ("error_vs_kernels_pct", "sum of fastest kernels")):
            err = part[column].abs().dropna()
            if len(err):
                print(f"{row} {precision} ({len(err)} rows) vs {what}: median |error| {err.median():.1f} %, "
                      f"max {err.max():.1f} %")
    for row, part in table[table.precision == "int8 conv"].groupby("row", sort=False):
        err = (100 * (part["without im2col GEMM"] - part.kernels_ms) / part.kernels_ms).abs().dropna()
        print(f"{row} int8 conv without the im2col GEMM costs: median |error| {err.median():.1f} %, max {err.max():.1f} %")
    held = table[(table.row == "held out") & (table.precision == "int8")]
    for label in variants:  # the ablation, against the load-robust kernel sums
        err = (100 * (held[label] - held.kernels_ms) / held.kernels_ms).abs()
        print(f"held out int8, {label}: vs sum of fastest kernels median |error| {err.median():.1f} %, "
              f"max {err.max():.1f} % ({', '.join(f'{m} {e:+.0f}' for m, e in zip(held.model, 100 * (held[label] - held.kernels_ms) / held.kernels_ms))})")


if __name__ == "__main__":
    main()
