"""What the CI run covers and what it tolerates, in one place.

``CI_SEEDS``: seeds 0..N-1 of every (family, op) unit, each run on every runtime of the family
(onnx/qdq: onnxruntime at ORT_ENABLE_ALL and ORT_DISABLE_ALL; tflite: LiteRT's reference,
optimized and XNNPACK kernel sets). The same seeds give the same models on every machine.

``QSIM_REFUSES``: units qsim may refuse (wholly or for some parameters); each of their cases is
equal or refused with a QsimError (never a crash, never a different answer). ``KNOWN``: open mismatch classes (ids of
the findings list), expected to fail until fixed; a unit listed here is reported as xfail.
"""
from __future__ import annotations

CI_SEEDS = {"onnx": 60, "qdq": 40, "tflite": 40}

# seeds of long runs that once differed, run in CI on top of CI_SEEDS: each one plants the exact
# model (scales, zero points, shapes, values) of a fixed class, so a regression fails here
REGRESSION_SEEDS: dict[tuple[str, str], tuple[int, ...]] = {
    # QLinearAveragePool past the int32 range (100016) and whole-image windows (MLAS global pool)
    ("onnx", "QLinearAveragePool"): (100016, 100040, 100343, 101930, 102082),
    ("qdq", "AveragePool"): (100131, 100240, 100612, 100658),
    # multipliers >= 2^31: x86 ``shl`` takes the left shift mod 32 (reference kernels)
    ("tflite", "CONV_2D"): (100737,),
    # ... and a depthwise convolution of one input channel runs LiteRT's depthwise kernel
    ("tflite", "DEPTHWISE_CONV_2D"): (100985, 101578, 301445),
    # XNNPACK's qs8-vcvt takes input/output scale ratios in [2^-8, 2^7] only
    ("tflite", "QUANTIZE"): (101814, 101931),
    # XNNPACK's int8 LOGISTIC table evaluates the logistic in double (an fp32 tie at 125.5 / 256)
    ("tflite", "LOGISTIC"): (600191,),
    # XNNPACK's int8 TANH table rounds ties to even (tanhf lands exactly on -122.5 / 128)
    ("tflite", "TANH"): (704271,),
    # refused: an int8 SOFTMAX quotient within an ulp of a tie (71.49999; the reference kernels give 72)
    ("tflite", "SOFTMAX"): (601981,),
    # QLinearSigmoid's table is MLAS's logistic approximation
    ("onnx", "QLinearSigmoid"): (101509, 300156),
    # QLinearSoftmax: the table's shift uses glibc's logf of an fp32 FLT_MAX / D (one ulp off the
    # correctly rounded log moves every entry by ~8 ulps: 800762, 3.5000002 vs 3.4999988), and the
    # quotient is taken in fp64, ties to even (100073: 0.50000003, not a tie)
    ("onnx", "QLinearSoftmax"): (100073, 800762),
    # int16 ADD with a rank-0 constant and power-of-two scales: LiteRT aborts (its power-of-two int16
    # path does not broadcast), so the generator moves the output scale off a power of two
    ("tflite", "ADD"): (800508,),
    # int8 MUL with a multiplier >= 1 under the optimized kernels (once refused), int16 MUL; 901511: the
    # multiplier's real value s1 * s2 / s_out is float arithmetic in LiteRT's mul.cc (not double)
    ("tflite", "MUL"): (100047, 100261, 100769, 100792, 100831, 100958, 101369, 901511),
}

QSIM_REFUSES: dict[tuple[str, str], str] = {
    ("tflite", "MEAN"): "quantized MEAN is refused under LiteRT policies",
    ("tflite", "SUB"): "quantized SUB is not reproduced",
    ("tflite", "LOGISTIC"): "int16 LOGISTIC is not reproduced (int8 must be equal)",
    ("tflite", "TANH"): "int16 TANH is not reproduced (int8 must be equal)",
    ("tflite", "SOFTMAX"): "int16 SOFTMAX is not reproduced; int8 outputs within 2^-20 of a tie are refused",
    ("tflite", "CONV_2D"): "the int16x8 scheme is not reproduced (int8 must be equal)",
    ("tflite", "DEPTHWISE_CONV_2D"): "the int16x8 scheme is not reproduced (int8 must be equal)",
    ("tflite", "FULLY_CONNECTED"): "the int16x8 scheme is not reproduced (int8 must be equal)",
    ("tflite", "MUL"): "int16 MUL is refused (its rounding of a few products is not reproduced)",
}

# refusals that hold for every unit of a family on one runtime: (family, runtime) -> why; such a
# case is equal or refused with a QsimError
QSIM_REFUSES_RUNTIME: dict[tuple[str, str], str] = {
    ("qdq", "ort-none"): "ORT_DISABLE_ALL runs QDQ units in float; qsim.simulate(ort_level='disable_all') refuses them",
}

# open mismatch classes that hold for every unit of a family on one runtime: (family, runtime) -> finding
KNOWN_RUNTIME: dict[tuple[str, str], str] = {}

# (family, op) -> finding
KNOWN: dict[tuple[str, str], str] = {}

# networks: int8-activation QDQ models whose units onnxruntime leaves unfused are refused where qsim does
# not reproduce the float unit (issue 11 item 6) ...
NETWORK_REFUSALS = {":qdq:int8:": "S8S8 QDQ units onnxruntime runs in float are refused (issue 11 item 6)"}
# ... except these, whose unfused units (Conv, Add: the residual branch points) qsim runs in MLAS's order
# (float_mlas_conv): at enable_all they must equal onnxruntime, a refusal there is a failure (0 of 1,000
# logits differed, per-channel and per-tensor, 32x32 and 64x64); and the BERT-style encoder layer
# ("bert:qdq:int8:...": its q/k/v projection and FFN MatMul units run in MLAS's SGEMM order,
# float_mlas_gemm.batched; 0 of 208,896 outputs differed per thread count (1, 2), per-channel and
# per-tensor, 16x64 (seeds 0, 1) and 128x768 (seed 0))
S8S8_EQUAL_NETWORKS = ("resnet18", "mobilenet_v2", "bert")


def s8s8_must_equal(name: str) -> bool:
    """Whether a network case (its name, or its model file's name) is an S8S8 QDQ network of
    ``S8S8_EQUAL_NETWORKS``."""
    key = str(name).replace("_", ":")
    prefix = {"bert": "bert:"}  # the encoder layer's cases are "bert:FMT:ACT:...", not "onnx:NET:..."
    return any(f"{prefix.get(n, 'onnx:' + n.replace('_', ':') + ':')}qdq:int8:" in key for n in S8S8_EQUAL_NETWORKS)


# refusals accepted in any network, by the words of qsim's message: the S8S8 refusal above also
# holds for the QDQ units quantize_static leaves in an int8-activation QOperator model around float
# ops it cannot quantize (MobileNetV3's squeeze-excitation GlobalAveragePool, which reads a HardSwish
# output that feeds the Mul as well, now runs as a float island: equal). QLinearSoftmax ties (once
# refused in nearly every uint8 128x768 encoder layer) are reproduced, and every encoder layer of the
# suite equals onnxruntime
NETWORK_REFUSAL_MESSAGES: tuple[str, ...] = ("int8 activations whose QuantizeLinear feeds several nodes",)


def accepted_refusal(family: str, op: str, runtime: str) -> bool:
    """A qsim refusal that the budget accepts for this unit on this runtime."""
    return (family, op) in QSIM_REFUSES or (family, runtime) in QSIM_REFUSES_RUNTIME


def accepted_network_refusal(text: str) -> bool:
    return text.startswith("qsim refused") and any(m in text for m in NETWORK_REFUSAL_MESSAGES)

MAX_RUNTIME_REFUSED = 0.5  # a unit whose cases the runtime mostly rejects tests nothing: fail it
