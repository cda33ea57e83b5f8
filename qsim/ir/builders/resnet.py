"""ResNets (He et al., CVPR 2016, Table 1) as deployed: conv + folded BN + ReLU.

Published counts (torchvision model cards, 224x224): ResNet-18 1.82 GMACs / 11.69 M parameters,
ResNet-50 4.09 GMACs / 25.56 M (torchvision counts BN scale/shift; folding replaces them by a conv
bias of one value per channel, so qsim's parameter count is ~0.1 % lower).
ResNet-8 is the MLPerf Tiny image-classification model (CIFAR-10, 32x32): the reference Keras model
in mlcommons/tiny `benchmark/training/image_classification/keras_model.py` — a 16-channel stem and
three stacks of one basic block (16, 32, 64 filters) with 1x1 projection shortcuts on the strided stacks.

The final Softmax: ``softmax=True`` ends the graph with a Softmax over the classes, as a deployed
classifier does. It is on by default where the reference model has it: ResNet-8 (the MLPerf Tiny
Keras model's last layer is ``Dense(num_classes, activation='softmax')``). torchvision's ResNets end
at the logits, so ``resnet18/34/50`` leave it off unless asked (Keras' ``ResNet50`` / ``ResNet50V2``,
which the NXP eIQ zoo deploys, end with a softmax: ``softmax=True``). The Softmax has no weights or
MACs; on a stack that lowers it (Vela on Ethos-U) it is a chain of NPU operations of its own.
"""
from __future__ import annotations

from qsim.ir.builders.common import NetBuilder
from qsim.ir.graph import Graph


def _basic(b: NetBuilder, x: str, cout: int, stride: int, name: str) -> str:
    cin = b.graph.tensor(x).shape[1]
    y = b.conv(x, cout, 3, stride, name=f"{name}_conv1")
    y = b.conv(y, cout, 3, 1, act=None, name=f"{name}_conv2")
    short = b.conv(x, cout, 1, stride, act=None, name=f"{name}_down") if stride != 1 or cin != cout else x
    return b.node("Relu", f"{name}_relu", [b.node("Add", f"{name}_add", [y, short])])


def _bottleneck(b: NetBuilder, x: str, width: int, stride: int, name: str) -> str:
    cin, cout = b.graph.tensor(x).shape[1], width * 4
    y = b.conv(x, width, 1, 1, name=f"{name}_conv1")
    y = b.conv(y, width, 3, stride, name=f"{name}_conv2")  # stride on the 3x3 (torchvision v1.5)
    y = b.conv(y, cout, 1, 1, act=None, name=f"{name}_conv3")
    short = b.conv(x, cout, 1, stride, act=None, name=f"{name}_down") if stride != 1 or cin != cout else x
    return b.node("Relu", f"{name}_relu", [b.node("Add", f"{name}_add", [y, short])])


def _imagenet_resnet(name: str, block, layers, widths, batch: int, image_size: int, num_classes: int,
                     softmax: bool) -> Graph:
    b = NetBuilder(name, (batch, 3, image_size, image_size))
    x = b.conv(b.x, 64, 7, 2, pad=3, name="stem")
    x = b.node("MaxPool", "stem_pool", [x], kernel=3, stride=2, pad=1)
    for stage, (count, width) in enumerate(zip(layers, widths), start=1):
        for i in range(count):
            x = block(b, x, width, 2 if i == 0 and stage > 1 else 1, f"layer{stage}_{i}")
    return b.classifier(x, num_classes, softmax)


def resnet18(batch: int = 1, image_size: int = 224, num_classes: int = 1000, softmax: bool = False) -> Graph:
    return _imagenet_resnet("resnet18", _basic, (2, 2, 2, 2), (64, 128, 256, 512), batch, image_size, num_classes,
                            softmax)


def resnet34(batch: int = 1, image_size: int = 224, num_classes: int = 1000, softmax: bool = False) -> Graph:
    return _imagenet_resnet("resnet34", _basic, (3, 4, 6, 3), (64, 128, 256, 512), batch, image_size, num_classes,
                            softmax)


def resnet50(batch: int = 1, image_size: int = 224, num_classes: int = 1000, softmax: bool = False) -> Graph:
    return _imagenet_resnet("resnet50", _bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), batch, image_size,
                            num_classes, softmax)


def resnet8(batch: int = 1, image_size: int = 32, num_classes: int = 10, softmax: bool = True) -> Graph:
    b = NetBuilder("mlperf_tiny_ic", (batch, 3, image_size, image_size))
    x = b.conv(b.x, 16, 3, 1, name="stem")
    for stage, (width, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        x = _basic(b, x, width, stride, f"stack{stage}")
    return b.classifier(x, num_classes, softmax)
