"""Speed and fidelity of qsim's integer executor against onnxruntime on int8 ResNet-50.

The float ResNet-50 is the light model the onnx package ships (``light_resnet50.onnx``: the graph
with every weight replaced by a ConstantOfShape); its weights become seeded random values (He
initialisation, sane BatchNorm statistics), its residual ``Sum`` nodes become ``Add`` (which
quantize_static quantizes), and onnxruntime's ``quantize_static`` makes it a QOperator model with
uint8 activations and per-channel int8 weights (after ``quant_pre_process``, which folds
BatchNorm into the convolutions), calibrated on a few random images. One 224x224
image then runs through onnxruntime and through ``qsim.sim.simulate.simulate`` (policy
``onnxruntime``) in this process; the script prints both times, the ratio (target: within 3x) and
whether the outputs are bit-identical.

    .venv/bin/python benchmarks/bench_simulate.py [--workdir DIR] [--repeats N] [--threads T]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter


def float_resnet50(path: Path, seed: int = 0) -> Path:
    src = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
    model = onnx.load(str(src))
    g = model.graph
    rng = np.random.default_rng(seed)
    shapes = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    inits = [t for t in g.initializer if not t.name.endswith("__SHAPE")]  # real values the file keeps
    wanted = [(n.output[0], tuple(int(d) for d in shapes[n.input[0]]))
              for n in g.node if n.op_type == "ConstantOfShape"]
    keep = [n for n in g.node if n.op_type != "ConstantOfShape"]
    data = g.input[0].name
    for name, shape in wanted:
        if name.endswith("_riv_0"):  # running variance
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("_bn_s_0"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif len(shape) > 1:  # conv / fc weights
            value = rng.standard_normal(shape) * np.sqrt((2.0 if len(shape) == 4 else 1.0) / np.prod(shape[1:]))
        else:  # BN shift, running mean, biases
            value = 0.1 * rng.standard_normal(shape)
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
    for node in keep:  # residual Sum of two inputs -> Add (quantize_static quantizes Add, not Sum)
        if node.op_type == "Sum" and len(node.input) == 2:
            node.op_type = "Add"
    inputs = [i for i in g.input if i.name == data]
    graph = helper.make_graph(keep, "resnet50", inputs, list(g.output), inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    m = version_converter.convert_version(m, 13)
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def quantized_resnet50(workdir: Path) -> Path:
    out = workdir / "resnet50_int8_qoperator.onnx"
    if out.exists():
        return out
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from onnxruntime.quantization.shape_inference import quant_pre_process

    fpath = float_resnet50(workdir / "resnet50_float.onnx")
    quant_pre_process(str(fpath), str(workdir / "resnet50_pre.onnx"))  # folds BatchNorm into Conv
    fpath = workdir / "resnet50_pre.onnx"
    name = onnx.load(str(fpath)).graph.input[0].name
    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{name: rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(str(fpath), str(out), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/qsim_bench_simulate")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import onnxruntime as ort

    from qsim.ir.onnx_import import load_onnx
    from qsim.numerics.quantize import dequantize
    from qsim.sim.simulate import simulate

    t0 = time.perf_counter()
    qpath = quantized_resnet50(workdir)
    print(f"model: {qpath} (built/quantized in {time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    g = load_onnx(qpath)
    print(f"qsim import: {(time.perf_counter() - t0) * 1e3:.0f} ms, {len(g)} nodes")
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    # onnxruntime's pool threads spin after each run and would steal the cores from qsim's numba
    # threads in this same process: spinning off keeps the two measurements independent.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(qpath), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x}
    ref = sess.run(None, feed)[0]
    t0 = time.perf_counter()
    simulate(g, x)  # warm-up: numba compilation (cached on disk after the first process)
    print(f"qsim first run (compile or cache load): {(time.perf_counter() - t0) * 1e3:.0f} ms")
    ort_ms, qsim_ms = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ref = sess.run(None, feed)[0]
        ort_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        out = simulate(g, x)
        qsim_ms.append((time.perf_counter() - t0) * 1e3)
    t = g.outputs[0]
    ours = dequantize(out[t], g.quant_params[t]) if t in g.quant_params else out[t]
    same = np.array_equal(ours, ref)
    o, q = min(ort_ms), min(qsim_ms)
    om, qm = float(np.median(ort_ms)), float(np.median(qsim_ms))
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    print(f"onnxruntime ({threads}): best {o:.1f} ms, median {om:.1f} ms")
    print(f"qsim simulate (numba kernels): best {q:.1f} ms, median {qm:.1f} ms")
    print(f"ratio qsim/onnxruntime: best/best {q / o:.2f}x, median/median {qm / om:.2f}x (target <= 3x)")
    print(f"outputs bit-identical: {same} ({ref.size} elements, {int(np.sum(ours != ref))} differ)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
