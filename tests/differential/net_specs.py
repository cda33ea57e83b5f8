"""Whole-network architectures as layer lists, with torchvision's shapes (no weights, no download):
ResNet-18 (BasicBlock x [2, 2, 2, 2]) and MobileNetV2 (inverted residuals, width 1.0). One list
feeds two writers: a float ONNX model for onnxruntime's ``quantize_static`` and an int8 .tflite.

A layer is a tuple: ("conv", out, in, cout, k, stride, groups, act) with act None/"relu"/"relu6",
("add", out, a, b, act), ("maxpool", out, in, k, stride), ("gap", out, in), ("fc", out, in, n).
"""
from __future__ import annotations


def resnet18(classes: int = 1000) -> list[tuple]:
    layers = [("conv", "stem", "x", 64, 7, 2, 1, "relu"), ("maxpool", "pool", "stem", 3, 2)]
    x, cin = "pool", 64
    for stage, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            stride = 2 if stage > 1 and block == 0 else 1
            p = f"layer{stage}.{block}"
            layers += [("conv", f"{p}.conv1", x, cout, 3, stride, 1, "relu"),
                       ("conv", f"{p}.conv2", f"{p}.conv1", cout, 3, 1, 1, None)]
            short = x
            if stride != 1 or cin != cout:
                layers.append(("conv", f"{p}.downsample", x, cout, 1, stride, 1, None))
                short = f"{p}.downsample"
            layers.append(("add", f"{p}.out", f"{p}.conv2", short, "relu"))
            x, cin = f"{p}.out", cout
    return layers + [("gap", "gap", x), ("fc", "logits", "gap", classes)]


MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))  # (expansion t, channels c, repeats n, stride s)


def mobilenet_v2(classes: int = 1000) -> list[tuple]:
    layers = [("conv", "stem", "x", 32, 3, 2, 1, "relu6")]
    x, cin, i = "stem", 32, 0
    for t, c, n, s in MOBILENET_V2:
        for r in range(n):
            p, stride, hidden = f"features.{i}", s if r == 0 else 1, cin * t
            h = x
            if t != 1:
                layers.append(("conv", f"{p}.expand", h, hidden, 1, 1, 1, "relu6"))
                h = f"{p}.expand"
            layers += [("conv", f"{p}.dw", h, hidden, 3, stride, hidden, "relu6"),
                       ("conv", f"{p}.project", f"{p}.dw", c, 1, 1, 1, None)]
            out = f"{p}.project"
            if stride == 1 and cin == c:
                layers.append(("add", f"{p}.out", out, x, None))
                out = f"{p}.out"
            x, cin, i = out, c, i + 1
    layers.append(("conv", "last", x, 1280, 1, 1, 1, "relu6"))
    return layers + [("gap", "gap", "last"), ("fc", "logits", "gap", classes)]


NETS = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}
