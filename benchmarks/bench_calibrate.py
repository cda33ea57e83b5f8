"""`qsim calibrate` vs onnxruntime on this machine, fp32 and int8.

Calibrates a profile for this machine (or takes one with --profile): the profile is fitted on
microbenchmarks only (GEMMs, QLinearConv, copies, a chain of tiny nodes). Then, for the classic
models that the onnx package ships (onnx/backend/test/data/light, weightless: random weights are
filled in), it prints qsim's predicted latency with that profile next to onnxruntime's measured
latency (median of repeated runs) and the error: fp32 as shipped, int8 after onnxruntime's
quantize_static (QOperator format: QLinearConv / QLinearMatMul, u8 activations, s8 weights). The
fitted rows (the microbenchmarks the efficiencies were read from) and the held-out rows (whole
models, never used in fitting) are summarised apart. Timing on a loaded machine is noise: check
``uptime`` first.

    python benchmarks/bench_calibrate.py [--profile hw_profiles/local.yaml] [--models resnet50,squeezenet]
                                         [--precisions fp32,int8]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd

from qsim.cost import estimate_graph
from qsim.hw.calibrate import ort_qlinear_conv_macs_per_s, write_profile
from qsim.ir import Graph
from qsim.hw.profile import load_profile
from qsim.ir.onnx_import import load_onnx
from qsim.precision import PrecisionPlan

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


def fitted_rows(profile) -> list[dict]:
    """The microbenchmarks the profile's efficiencies were read from, predicted back."""
    g = Graph("qconv")
    g.add_input("x", (1, 64, 56, 56))
    g.add_node("Conv", "c", ["x"], {"out_channels": 64, "kernel": 3, "pad": 1, "bias": False})
    g.mark_output("c")
    g.validate()
    macs = 64 * 64 * 9 * 56 * 56
    measured = macs / ort_qlinear_conv_macs_per_s(56)
    predicted = estimate_graph(g, PrecisionPlan.uniform("int8"), profile).totals["latency_s"]
    return [{"row": "fitted", "precision": "int8", "model": "QLinearConv 3x3 64ch 56x56", "GMACs": macs / 1e9,
             "measured_ms": measured * 1e3, "predicted_ms": predicted * 1e3,
             "error_pct": 100 * (predicted - measured) / measured}]


def measure_ort(path: Path, repeats: int = 30) -> float:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {}
    for inp in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        feeds[inp.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess.run(None, feeds)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", help="use this profile instead of calibrating now")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--precisions", default="fp32,int8")
    args = ap.parse_args()
    if args.profile:
        profile = load_profile(args.profile)
    else:
        path = Path(tempfile.mkdtemp()) / "local.yaml"
        write_profile(path)
        profile = load_profile(path)
        print(f"calibrated: {path}")
    print(f"profile {profile.name}: fp32 {profile.compute.macs_per_cycle['fp32']} MACs/cycle x "
          f"{profile.clock_hz / 1e9:.2f} GHz x {profile.compute.efficiency['fp32']}, "
          f"DRAM {profile.memories['dram'].bandwidth_bytes_per_s / 1e9:.1f} GB/s, dispatch {profile.dispatch_s * 1e6:.2f} us")
    rows = fitted_rows(profile)
    work = Path(tempfile.mkdtemp())
    for precision in args.precisions.split(","):
        for name in args.models.split(","):
            path = LIGHT / f"light_{name}.onnx"
            graph = load_onnx(path)
            if precision == "int8":
                path = quantized(path, work)
                graph = load_onnx(path)
            predicted = estimate_graph(graph, PrecisionPlan.uniform(precision), profile).totals["latency_s"]
            measured = measure_ort(path)
            rows.append({"row": "held out", "precision": precision, "model": name,
                         "GMACs": graph.summary()["macs"] / 1e9, "measured_ms": measured * 1e3,
                         "predicted_ms": predicted * 1e3, "error_pct": 100 * (predicted - measured) / measured})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for (row, precision), part in table.groupby(["row", "precision"], sort=False):
        err = part.error_pct.abs()
        print(f"{row} {precision} ({len(part)} rows): median |error| {err.median():.1f} %, max {err.max():.1f} %")


if __name__ == "__main__":
    main()
