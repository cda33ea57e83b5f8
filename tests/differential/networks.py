"""Whole-network differential cases: ResNet-18, MobileNetV2, MobileNetV3-small, ShuffleNetV2 x0.5 and
a DenseNet-style net (torchvision shapes, random weights; ``net_specs`` / ``net_graphs``) through onnxruntime's ``quantize_static`` (QOperator and QDQ, u8/s8 and s8/s8, per-tensor and
per-channel), a BERT-style encoder layer, and the same CNNs as int8 .tflite.

A network case is a name: ``onnx:NET:FMT:ACT:GRAN:SIZE[:ties]`` (FMT qdq|qoperator, ACT uint8|int8,
GRAN tensor|channel; ``ties`` rounds every scale to a power of two), ``bert:FMT:ACT:GRAN:SEQ:D``
or ``tflite:NET:SIZE``."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from . import _paths  # noqa: F401  (tests/ and tests/sim on sys.path)
from .net_graphs import NET_GRAPHS, onnx_graph
from .net_specs import NETS
from .net_writers import onnx_float, tflite_int8
from .runners import differential
from _int_onnx import encoder_block, pow2_scales  # noqa: E402
from _ort_quantize import quantize  # noqa: E402

# CI: small inputs (the whole-network cases are the heavy part of the budget); long mode adds the rest
CI_NETWORKS = ("onnx:resnet18:qoperator:uint8:channel:32", "onnx:resnet18:qdq:int8:tensor:32:ties",
               "onnx:mobilenet_v2:qdq:uint8:channel:32", "onnx:mobilenet_v2:qoperator:int8:tensor:32",
               "bert:qoperator:uint8:channel:16:64", "bert:qdq:int8:tensor:16:64",
               "tflite:resnet18:32", "tflite:mobilenet_v2:32",
               "onnx:mobilenet_v3_small:qdq:uint8:channel:32", "onnx:mobilenet_v3_small_hsig:qoperator:uint8:tensor:32",
               "onnx:shufflenet_v2_x0_5:qoperator:uint8:channel:32", "onnx:shufflenet_v2_x0_5_slice:qdq:uint8:tensor:32",
               "onnx:densenet_small:qdq:uint8:tensor:32", "onnx:densenet_small:qoperator:uint8:channel:32",
               # int8 QDQ units quantize_static leaves around the float HardSwish: their squeeze-excitation
               # GlobalAveragePool units run in float (were refused; equal at both levels since)
               "onnx:mobilenet_v3_small:qoperator:int8:tensor:32")


def all_networks(sizes=(32, 64, 224)) -> list[str]:
    names = [f"onnx:{net}:{fmt}:{act}:{gran}:{size}{tie}" for net in (*NETS, *NET_GRAPHS)
             for fmt in ("qoperator", "qdq")
             for act in ("uint8", "int8") for gran in ("tensor", "channel") for size in sizes for tie in ("", ":ties")]
    names += [f"bert:{fmt}:{act}:{gran}:{seq}:{d}" for fmt in ("qoperator", "qdq") for act in ("uint8", "int8")
              for gran in ("tensor", "channel") for seq, d in ((16, 64), (128, 768))]
    names += [f"tflite:{net}:{size}" for net in NETS for size in sizes]
    small = [n for n in names if not any(f":{s}" in n for s in (224, 128))]
    large = [n for n in names if n not in small]
    rng = np.random.default_rng(0)  # interleave kinds; the small inputs first
    return [small[i] for i in rng.permutation(len(small))] + [large[i] for i in rng.permutation(len(large))]


def build(name: str, workdir, seed: int = 0) -> tuple[Path, dict]:
    """The model file and feeds of a network case."""
    parts = name.split(":")
    work = Path(workdir)
    rng = np.random.default_rng(seed)
    stem = name.replace(":", "_")
    if parts[0] == "tflite":
        return tflite_int8(NETS[parts[1]](), work / f"{stem}.tflite", int(parts[2]), seed)
    if parts[0] == "bert":
        fmt, act, gran, seq, d = parts[1], parts[2], parts[3], int(parts[4]), int(parts[5])
        float_path = encoder_block(work / f"{stem}_float.onnx", seed=seed, seq=seq, d=d, heads=max(2, d // 64))
        shape = (1, seq, d)
    else:
        net, fmt, act, gran, size = parts[1], parts[2], parts[3], parts[4], int(parts[5])
        if net in NET_GRAPHS:
            float_path = onnx_graph(net, work / f"{stem}_float.onnx", size, seed)
        else:
            float_path = onnx_float(NETS[net](), work / f"{stem}_float.onnx", size, seed)
        shape = (1, 3, size, size)
    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice on pre-processing
    path = quantize(float_path, work / f"{stem}.onnx", fmt, gran == "channel", seed=seed, activations=act)
    if parts[-1] == "ties":
        pow2_scales(path)
    return path, {"x": rng.standard_normal(shape).astype(np.float32)}


def runtimes_of(name: str) -> tuple[str, ...]:
    if name.startswith("tflite"):
        return ("litert-reference", "litert-optimized", "litert-xnnpack")
    return ("ort-all", "ort-none")


def run_network(name: str, workdir, seed: int = 0):
    """[(runtime, Diff or refusal str)] for every runtime of the case."""
    path, feeds = build(name, workdir, seed)
    return path, feeds, [(rt, differential(path, feeds, rt)) for rt in runtimes_of(name)]
