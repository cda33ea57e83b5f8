"""MobileNets as deployed (BN folded into conv biases).

* MobileNetV1 (Howard et al. 2017, Table 1) with width multiplier ``alpha``; the MLPerf Tiny
  visual-wake-words model is MobileNetV1-0.25 at 96x96 with 2 classes (mlcommons/tiny
  `benchmark/training/visual_wake_words`).
* MobileNetV2 (Sandler et al., CVPR 2018, Table 2): 300 M MACs, 3.4-3.5 M parameters at 224x224
  (torchvision: 3,504,872 parameters with BN; folding leaves one bias per channel).

The final Softmax (``softmax``) is on by default for MobileNetV1, whose reference models end with one
(TF-slim's ``MobilenetV1/Predictions/Softmax``, the MLPerf Tiny VWW Keras model's softmax Dense);
torchvision's MobileNetV2 ends at the logits, so it is off there unless asked (Keras' ``MobileNetV2``,
which the NXP eIQ zoo deploys, ends with a softmax).
"""
from __future__ import annotations

from qsim.ir.builders.common import NetBuilder
from qsim.ir.graph import Graph


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Channel rounding used by the reference implementations (keras/torchvision)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def mobilenet_v1(batch: int = 1, image_size: int = 224, num_classes: int = 1000, alpha: float = 1.0,
                 name: str = "mobilenet_v1", softmax: bool = True) -> Graph:
    b = NetBuilder(name, (batch, 3, image_size, image_size))
    x = b.conv(b.x, int(32 * alpha), 3, 2, name="conv0")
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (cout, stride) in enumerate(plan, start=1):
        cin = b.graph.tensor(x).shape[1]
        x = b.conv(x, cin, 3, stride, groups=cin, name=f"dw{i}")
        x = b.conv(x, int(cout * alpha), 1, 1, name=f"pw{i}")
    return b.classifier(x, num_classes, softmax)


def mobilenet_v2(batch: int = 1, image_size: int = 224, num_classes: int = 1000, width: float = 1.0,
                 softmax: bool = False) -> Graph:
    b = NetBuilder("mobilenet_v2", (batch, 3, image_size, image_size))
    x = b.conv(b.x, _make_divisible(32 * width), 3, 2, act="Relu6", name="conv0")
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    block = 0
    for t, c, n, s in settings:
        cout = _make_divisible(c * width)
        for i in range(n):
            block += 1
            cin = b.graph.tensor(x).shape[1]
            stride = s if i == 0 else 1
            y = b.conv(x, cin * t, 1, 1, act="Relu6", name=f"b{block}_expand") if t != 1 else x
            y = b.conv(y, cin * t, 3, stride, groups=cin * t, act="Relu6", name=f"b{block}_dw")
            y = b.conv(y, cout, 1, 1, act=None, name=f"b{block}_project")
            x = b.node("Add", f"b{block}_add", [x, y]) if stride == 1 and cin == cout else y
    x = b.conv(x, _make_divisible(1280 * max(1.0, width)), 1, 1, act="Relu6", name="conv_last")
    return b.classifier(x, num_classes, softmax)
