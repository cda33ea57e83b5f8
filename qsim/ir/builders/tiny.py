"""The MLPerf Tiny v1.x models not covered elsewhere (reference: mlcommons/tiny
`benchmark/training/*/keras_model.py`; counts cross-checked against NXP eIQ model zoo cards).

* ``ds_cnn_kws``: DS-CNN keyword spotting on 49x10 MFCCs: a 10x4 stride-2 conv with 64 filters,
  four depthwise-separable blocks, average pool, 12 classes. NXP's card: 23,756 parameters (with
  BN scale/shift, 2 x 64 per BN, 9 BNs), "5 MOPS" (2.66 M MACs).
* ``fc_autoencoder``: anomaly detection on 5 x 128 log-mel frames (640 inputs): four dense 128,
  a dense 8 bottleneck, four dense 128, dense 640 (0.26 M parameters and MACs).
Keras "same" padding at stride 2 pads asymmetrically (more at the bottom/right): made explicit.
"""
from __future__ import annotations

from qsim.ir.builders.common import NetBuilder
from qsim.ir.graph import Graph


def ds_cnn_kws(batch: int = 1, num_classes: int = 12, filters: int = 64) -> Graph:
    b = NetBuilder("mlperf_tiny_kws", (batch, 1, 49, 10))
    # TF 'same' for 49x10, kernel 10x4, stride 2 -> 25x5: pad H 9 (4 top, 5 bottom), W 2 (1, 1).
    x = b.conv(b.x, filters, (10, 4), 2, pad=(4, 1, 5, 1), name="conv1")
    for i in range(1, 5):
        x = b.conv(x, filters, 3, 1, groups=filters, name=f"dw{i}")
        x = b.conv(x, filters, 1, 1, name=f"pw{i}")
    x = b.node("AvgPool", "avgpool", [x], kernel=(25, 5))
    x = b.node("Flatten", "flatten", [x])
    x = b.gemm(x, num_classes, name="fc")
    return b.finish(b.node("Softmax", "softmax", [x]))


def fc_autoencoder(batch: int = 1, inputs: int = 640, hidden: int = 128, bottleneck: int = 8) -> Graph:
    b = NetBuilder("mlperf_tiny_ad", (batch, inputs))
    x = b.x
    for i, width in enumerate([hidden] * 4 + [bottleneck] + [hidden] * 4, start=1):
        x = b.gemm(x, width, act="Relu", name=f"dense{i}")
    return b.finish(b.gemm(x, inputs, name="output"))
