"""An int8 .tflite CNN for the integer-executor tests, written at test time with LiteRT's flatbuffer
schema (``TfliteWriter`` from tests/unit/_model_files.py), and a runner for LiteRT's three kernel
sets (``RESOLVERS`` from tests/golden/_tflite_models.py) that returns every subgraph output."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

_TESTS = Path(__file__).resolve().parents[1]
for _sub in ("unit", "golden"):
    if str(_TESTS / _sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / _sub))

from _model_files import TfliteWriter  # noqa: E402
from _tflite_models import RESOLVERS  # noqa: E402

# (s_in, s_w0, s_conv, s_dw, s_add, s_fc): "ties" makes every multiplier odd / 2^k with small k, so
# many accumulators land on .5 after right shifts of 1..3; "random" has arbitrary scales.
SCALES = {"ties": (0.25, 0.125, 0.5, 0.5, 1.0, 0.5),
          "random": (0.0417, 0.0123, 0.0731, 0.0612, 0.0958, 0.1173)}


def int8_cnn(path, scales: str = "ties", seed: int = 3) -> Path:
    """int8 in, int8 out, NHWC: CONV_2D 3x3 (RELU6, per-channel) -> DEPTHWISE_CONV_2D 3x3
    (per-channel) -> ADD with the conv output (RELU) -> MAX_POOL_2D 2x2 -> RELU6 -> AVERAGE_POOL_2D 2x2 ->
    RESHAPE -> FULLY_CONNECTED (per-channel) -> SOFTMAX, and LOGISTIC and TANH of the logits. Every
    intermediate is a subgraph output."""
    rng = np.random.default_rng(seed)
    s_in, s_w0, s_c, s_d, s_a, s_f = SCALES[scales]
    tie = scales == "ties"
    w = TfliteWriter()
    c, n = 8, 4
    x = w.tensor("x", (n, 8, 8, 3), np.int8, (s_in, -3))
    sw1 = (s_w0 * 2.0 ** -rng.integers(0, 3, c)).astype(np.float32) if tie else \
        (rng.random(c) * 0.02 + 0.005).astype(np.float32)
    w1 = w.tensor("conv.w", (c, 3, 3, 3), np.int8, (sw1, np.zeros(c, int), 0), rng.integers(-6, 7, (c, 3, 3, 3)))
    b1 = w.tensor("conv.b", (c,), np.int32, ((s_in * sw1).astype(np.float32), np.zeros(c, int), 0),
                  rng.integers(-40, 41, c))
    conv = w.tensor("conv", (n, 8, 8, c), np.int8, (s_c, -128 if not tie else -120))
    sw2 = (s_w0 * 2.0 ** -rng.integers(0, 3, c)).astype(np.float32) if tie else \
        (rng.random(c) * 0.02 + 0.005).astype(np.float32)
    w2 = w.tensor("dw.w", (1, 3, 3, c), np.int8, (sw2, np.zeros(c, int), 3), rng.integers(-6, 7, (1, 3, 3, c)))
    b2 = w.tensor("dw.b", (c,), np.int32, ((s_c * sw2).astype(np.float32), np.zeros(c, int), 0),
                  rng.integers(-40, 41, c))
    dw = w.tensor("dw", (n, 8, 8, c), np.int8, (s_d, 3))
    add = w.tensor("add", (n, 8, 8, c), np.int8, (s_a, -128 if not tie else -125))
    mp = w.tensor("maxpool", (n, 4, 4, c), np.int8, (s_a, -128 if not tie else -125))
    r6 = w.tensor("relu6", (n, 4, 4, c), np.int8, (s_a, -128 if not tie else -125))
    ap = w.tensor("avgpool", (n, 2, 2, c), np.int8, (s_a, -128 if not tie else -125))
    shape = w.tensor("shape", (2,), np.int32, None, np.array([n, 4 * c]))
    flat = w.tensor("flat", (n, 4 * c), np.int8, (s_a, -128 if not tie else -125))
    k = 10
    sw3 = (s_w0 * 2.0 ** -rng.integers(0, 3, k)).astype(np.float32) if tie else \
        (rng.random(k) * 0.02 + 0.005).astype(np.float32)
    w3 = w.tensor("fc.w", (k, 4 * c), np.int8, (sw3, np.zeros(k, int), 0), rng.integers(-6, 7, (k, 4 * c)))
    b3 = w.tensor("fc.b", (k,), np.int32, ((s_a * sw3).astype(np.float32), np.zeros(k, int), 0),
                  rng.integers(-40, 41, k))
    fc = w.tensor("fc", (n, k), np.int8, (s_f, 2))
    sm = w.tensor("softmax", (n, k), np.int8, (1 / 256, -128))
    sg = w.tensor("logistic", (n, k), np.int8, (1 / 256, -128))
    th = w.tensor("tanh", (n, k), np.int8, (1 / 128, 0))
    P = w.s.Padding
    w.op("CONV_2D", [x, w1, b1], [conv], w.options("Conv2DOptionsT", padding=P.SAME, strideH=1, strideW=1,
                                                   fusedActivationFunction=3), "Conv2DOptions")
    w.op("DEPTHWISE_CONV_2D", [conv, w2, b2], [dw],
         w.options("DepthwiseConv2DOptionsT", padding=P.SAME, strideH=1, strideW=1, depthMultiplier=1),
         "DepthwiseConv2DOptions")
    w.op("ADD", [dw, conv], [add], w.options("AddOptionsT", fusedActivationFunction=1), "AddOptions")
    w.op("MAX_POOL_2D", [add], [mp], w.options("Pool2DOptionsT", padding=P.VALID, strideH=2, strideW=2,
                                               filterHeight=2, filterWidth=2), "Pool2DOptions")
    w.op("RELU6", [mp], [r6])
    w.op("AVERAGE_POOL_2D", [r6], [ap], w.options("Pool2DOptionsT", padding=P.VALID, strideH=2, strideW=2,
                                                  filterHeight=2, filterWidth=2), "Pool2DOptions")
    w.op("RESHAPE", [ap, shape], [flat])
    w.op("FULLY_CONNECTED", [flat, w3, b3], [fc], w.options("FullyConnectedOptionsT"), "FullyConnectedOptions")
    w.op("SOFTMAX", [fc], [sm], w.options("SoftmaxOptionsT", beta=1.0), "SoftmaxOptions")
    w.op("LOGISTIC", [fc], [sg])
    w.op("TANH", [fc], [th])
    return w.save(path, [x], [sm, conv, dw, add, mp, r6, ap, fc, sg, th])


def run_all(path, x: np.ndarray, kernels: str) -> dict[str, np.ndarray]:
    """Every subgraph output by tensor name, with LiteRT's kernel set ``kernels``."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(path), num_threads=1,
                     experimental_op_resolver_type=getattr(OpResolverType, RESOLVERS[kernels]))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return {d["name"]: it.get_tensor(d["index"]).copy() for d in it.get_output_details()}
