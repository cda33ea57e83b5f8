"""CNN quantization recipes on the digits CNN: held-out accuracy per recipe x precision (the README table).

The CNN (qsim/evaluation/digits.py) is trained here on scikit-learn's digits; calibration uses 540
training images, evaluation the 540 held-out ones. Recipes (qsim/recipes/):

* static min/max, per-tensor or per-channel weights (``quantize_graph``), percentile 99.99 %;
* ``entropy``: TensorRT's KL calibration (2048 bins, 128 levels, symmetric activations);
* ``bias_correction`` (Nagel et al. 2019, empirical) and ``equalization`` (cross-layer equalization,
  same paper), composed in front of a calibration recipe;
* ``ort_static``: onnxruntime's quantize_static reproduced (QDQ, int8 weights, uint8 or int8
  activations) on the CNN written as ONNX (``ort_export.graph_to_onnx``); its rows also run
  onnxruntime on the file quantize_static writes and count the logits that differ from qsim's.

Each row says how it ran (the integer executor, bit-accurate for the onnxruntime policy, or fake
quantization). Nothing is downloaded.

    python benchmarks/cnn_recipes.py [--epochs 12]
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qsim.evaluation.evaluate import markdown
from qsim.recipes import bias_correction, entropy, equalization
from qsim.sim.metrics import accuracy, real_value, sqnr_db, topk_agreement
from qsim.sim.pipeline import run_model
from qsim.sim.quantize_graph import quantize_graph

# ort_static runs: (calibrate_method, per_channel, activation_type); weights QInt8
RUNS = [("MinMax", False, "QUInt8"), ("MinMax", True, "QUInt8"), ("Entropy", True, "QUInt8"),
        ("Percentile", True, "QUInt8"), ("Distribution", True, "QUInt8"), ("MinMax", True, "QInt8")]
PRECISIONS = {"int8 (w8a8)": "int8", "int4 weights (w4a8)": "w4a8"}


def _minmax(per_channel):
    return lambda g, calib, plan: quantize_graph(g, plan, calib, per_channel=per_channel)


def _percentile(g, calib, plan):
    return quantize_graph(g, plan, calib, observer="percentile", per_channel=False)


def _entropy(g, calib, plan):
    return entropy.apply(g, calib, plan, per_channel=False)


def _bc(g, calib, plan):
    return bias_correction.apply(g, calib, weight=_weight(plan), per_channel=False)


def _weight(plan: str) -> str:
    return {"int8": "int8", "w4a8": "int4"}[plan]


RECIPES = {
    "static min/max, per-tensor weights": lambda g, c, p: _minmax(False)(g, c, p),
    "static min/max, per-channel weights": lambda g, c, p: _minmax(True)(g, c, p),
    "percentile 99.99 %": _percentile,
    "entropy (TensorRT KL)": _entropy,
    "min/max + bias correction": lambda g, c, p: _minmax(False)(_bc(g, c, p), c, p),
    "min/max + CLE": lambda g, c, p: _minmax(False)(equalization.apply(g), c, p),
    "min/max + CLE + bias correction": lambda g, c, p: _minmax(False)(_bc(equalization.apply(g), c, p), c, p),
    "entropy + CLE + bias correction": lambda g, c, p: _entropy(_bc(equalization.apply(g), c, p), c, p),
}


def ort_static_rows(model, calib, feeds, ref_logits) -> list[dict]:
    """ort_static recipes: qsim's simulation, and onnxruntime on quantize_static's own file."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    import qsim
    from qsim.recipes.ort_export import graph_to_onnx
    from qsim.recipes.ort_static import quantize_static_model

    logging.getLogger().setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp())
    src = work / "digits.onnx"
    onnx.save(graph_to_onnx(model.graph(len(model.x_test))), str(src))
    rows = []
    for method, per_channel, act in RUNS:
        options = {"calibrate_method": method, "per_channel": per_channel, "activation_type": act,
                   "weight_type": "QInt8"}
        mine = work / f"mine_{method}_{per_channel}.onnx"
        onnx.save(quantize_static_model(src, calib, **options), str(mine))
        logits = qsim.simulate(mine, feeds)["fc"]

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(calib)

            def get_next(self):
                return next(self.it, None)

        from onnxruntime.quantization import CalibrationMethod

        theirs = work / f"ort_{method}_{per_channel}.onnx"
        quantize_static(str(src), str(theirs), Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=getattr(QuantType, act), weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method))
        want = ort.InferenceSession(str(theirs), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        bad = int(np.count_nonzero(logits != want))
        kind = "u8/s8" if act == "QUInt8" else "s8/s8"
        rows.append({"recipe": f"ort_static {method}{', per-channel' if per_channel else ''} ({kind} QDQ)",
                     "precision": "int8 (w8a8)", "accuracy": accuracy(logits, model.y_test),
                     "top-1 agreement": topk_agreement(ref_logits, logits),
                     "logits SQNR (dB)": sqnr_db(ref_logits, logits),
                     "executed by": f"integer executor; vs onnxruntime on quantize_static's file: {bad}/{want.size} "
                                    "logits differ"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args()
    from qsim.evaluation.digits import train_digits

    t0 = time.time()
    model = train_digits(epochs=args.epochs)
    n = len(model.x_test)
    graph = model.graph(n)
    calib, feeds = model.calib_feeds(n), {"x": model.x_test}
    ref = run_model(graph, feeds).outputs["fc"]
    rows = [{"recipe": "float", "precision": "fp32", "accuracy": accuracy(ref, model.y_test), "top-1 agreement": 1.0,
             "logits SQNR (dB)": float("inf"), "executed by": "float reference"}]
    for pname, plan in PRECISIONS.items():
        for rname, recipe in RECIPES.items():
            q = recipe(graph, calib, plan)
            run = run_model(q, feeds)
            logits = real_value(q, "fc", run.outputs["fc"])
            rows.append({"recipe": rname, "precision": pname, "accuracy": accuracy(logits, model.y_test),
                         "top-1 agreement": topk_agreement(ref, logits), "logits SQNR (dB)": sqnr_db(ref, logits),
                         "executed by": run.how})
    rows += ort_static_rows(model, calib, feeds, ref)
    print(f"### Digits CNN recipes ({len(model.x_train)} train / {n} held-out images; calibration: {n} training "
          "images)\n")
    print(markdown(pd.DataFrame(rows)))
    print(f"\n({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
