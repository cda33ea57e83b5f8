"""Float ONNX networks written node by node, for the op patterns the layer lists of ``net_specs``
cannot say: MobileNetV3-small (HardSwish, squeeze-excitation: GlobalAveragePool -> 1x1 conv -> Relu
-> 1x1 conv -> HardSigmoid -> Mul broadcast over H, W), ShuffleNetV2 x0.5 (channel split by Split or
Slice, channel shuffle Reshape -> Transpose -> Reshape) and a DenseNet-style net (BatchNormalization
after Concat, which ``quantize_static`` leaves as a float island). torchvision's layer shapes, random
weights, batch norms folded into the convolutions they follow (as torch.onnx.export does), so the
only BatchNormalization nodes are DenseNet's pre-activations. Each architecture is a function
``(OnnxNet) -> output tensor``; ``NET_GRAPHS`` names its variants."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class OnnxNet:
    """A float NCHW graph under construction: random He-initialised weights from ``seed``, the shape
    (channels, height = width) of every tensor, nodes named after their outputs."""

    def __init__(self, size: int, seed: int, hswish: str = "op", split: str = "split"):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.shape = {"x": (3, size)}
        self.hswish_form, self.split_form = hswish, split

    def _init(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def _node(self, op: str, ins: list, out: str, shape, **attrs) -> str:
        self.nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        self.shape[out] = shape
        return out

    def conv(self, src: str, out: str, cout: int, k: int, stride: int = 1, groups: int = 1, bias: bool = True,
             act: str | None = None) -> str:
        cin, s = self.shape[src]
        fan = cin // groups * k * k
        w = self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan)
        ins = [src, self._init(f"{out}.weight", w.astype(np.float32))]
        if bias:  # a folded batch norm
            ins.append(self._init(f"{out}.bias", (self.rng.standard_normal(cout) * 0.1).astype(np.float32)))
        y = self._node("Conv", ins, f"{out}_pre" if act else out, (cout, -(-s // stride)), kernel_shape=[k, k],
                       strides=[stride, stride], pads=[k // 2] * 4, group=groups)
        return self.act(y, out, act) if act else y

    def act(self, src: str, out: str, kind: str) -> str:
        if kind == "relu":
            return self._node("Relu", [src], out, self.shape[src])
        if kind == "hswish":
            return self.hswish(src, out)
        raise ValueError(kind)

    def hswish(self, src: str, out: str) -> str:
        if self.hswish_form == "op":  # torch.onnx.export at opset >= 14
            return self._node("HardSwish", [src], out, self.shape[src])
        gate = self.hsigmoid(src, f"{out}.gate")  # ... and below opset 14: x * HardSigmoid(x)
        return self._node("Mul", [src, gate], out, self.shape[src])

    def hsigmoid(self, src: str, out: str) -> str:
        return self._node("HardSigmoid", [src], out, self.shape[src], alpha=1.0 / 6, beta=0.5)

    def bn(self, src: str, out: str) -> str:
        c, _ = self.shape[src]
        r = self.rng
        params = [(r.uniform(0.5, 1.5, c)), r.standard_normal(c) * 0.1, r.standard_normal(c) * 0.1,
                  r.uniform(0.5, 2.0, c)]
        ins = [self._init(f"{out}.{p}", v.astype(np.float32)) for p, v in zip(("weight", "bias", "mean", "var"), params)]
        return self._node("BatchNormalization", [src] + ins, out, self.shape[src], epsilon=1e-5)

    def add(self, a: str, b: str, out: str) -> str:
        return self._node("Add", [a, b], out, self.shape[a])

    def mul(self, a: str, b: str, out: str) -> str:
        return self._node("Mul", [a, b], out, self.shape[a])

    def concat(self, srcs: list, out: str) -> str:
        c = sum(self.shape[s][0] for s in srcs)
        return self._node("Concat", srcs, out, (c, self.shape[srcs[0]][1]), axis=1)

    def halves(self, src: str, out: str) -> tuple[str, str]:
        """torch's ``x.chunk(2, dim=1)``: one Split, or two Slices (the form older exports give)."""
        c, s = self.shape[src]
        a, b = f"{out}.0", f"{out}.1"
        if self.split_form == "split":
            sizes = self._init(f"{out}.sizes", np.array([c // 2, c // 2], np.int64))
            self.nodes.append(helper.make_node("Split", [src, sizes], [a, b], name=out, axis=1))
            self.shape[a] = self.shape[b] = (c // 2, s)
            return a, b
        for name, lo, hi in ((a, 0, c // 2), (b, c // 2, c)):
            ins = [self._init(f"{name}.{k}", np.array([v], np.int64)) for k, v in (("starts", lo), ("ends", hi),
                                                                                   ("axes", 1))]
            self._node("Slice", [src] + ins, name, (c // 2, s))
        return a, b

    def shuffle(self, src: str, out: str, groups: int = 2) -> str:
        """torchvision's channel_shuffle: view(N, g, C/g, H, W) -> transpose(1, 2) -> view(N, C, H, W)."""
        c, s = self.shape[src]
        five = self._init(f"{out}.shape5", np.array([-1, groups, c // groups, s, s], np.int64))
        four = self._init(f"{out}.shape4", np.array([-1, c, s, s], np.int64))
        self._node("Reshape", [src, five], f"{out}.5d", (c, s))
        self._node("Transpose", [f"{out}.5d"], f"{out}.t", (c, s), perm=[0, 2, 1, 3, 4])
        return self._node("Reshape", [f"{out}.t", four], out, (c, s))

    def maxpool(self, src: str, out: str, k: int, stride: int) -> str:
        c, s = self.shape[src]
        return self._node("MaxPool", [src], out, (c, -(-s // stride)), kernel_shape=[k, k], strides=[stride] * 2,
                          pads=[k // 2] * 4)

    def avgpool(self, src: str, out: str, k: int) -> str:
        c, s = self.shape[src]
        return self._node("AveragePool", [src], out, (c, s // k), kernel_shape=[k, k], strides=[k, k])

    def gap(self, src: str, out: str) -> str:
        return self._node("GlobalAveragePool", [src], out, (self.shape[src][0], 1))

    def fc(self, src: str, out: str, n: int, flatten: bool = True, act: str | None = None) -> str:
        if flatten:
            src = self._node("Flatten", [src], f"{out}.flat", self.shape[src])
        cin = self.shape[src][0]
        w = self.rng.standard_normal((n, cin)) / np.sqrt(cin / 2)
        ins = [src, self._init(f"{out}.weight", w.astype(np.float32)),
               self._init(f"{out}.bias", (self.rng.standard_normal(n) * 0.1).astype(np.float32))]
        y = self._node("Gemm", ins, f"{out}_pre" if act else out, (n, 0), transB=1)
        return self.act(y, out, act) if act else y

    def save(self, path, last: str) -> Path:
        size = self.shape["x"][1]
        graph = helper.make_graph(self.nodes, Path(path).stem,
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
                                  [helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, self.shape[last][0]])],
                                  self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return Path(path)


def _divisible(v: float, d: int = 8) -> int:
    """torchvision's _make_divisible."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


# (kernel, expanded, out, squeeze-excitation, activation, stride) of torchvision's mobilenet_v3_small
MOBILENET_V3_SMALL = ((3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
                      (5, 96, 40, True, "hswish", 2), (5, 240, 40, True, "hswish", 1), (5, 240, 40, True, "hswish", 1),
                      (5, 120, 48, True, "hswish", 1), (5, 144, 48, True, "hswish", 1), (5, 288, 96, True, "hswish", 2),
                      (5, 576, 96, True, "hswish", 1), (5, 576, 96, True, "hswish", 1))


def mobilenet_v3_small(g: OnnxNet, classes: int = 1000) -> str:
    x = g.conv("x", "stem", 16, 3, 2, act="hswish")
    cin = 16
    for i, (k, exp, cout, se, act, stride) in enumerate(MOBILENET_V3_SMALL, start=1):
        p = f"features.{i}"
        h = g.conv(x, f"{p}.expand", exp, 1, act=act) if exp != cin else x
        h = g.conv(h, f"{p}.dw", exp, k, stride, groups=exp, act=act)
        if se:  # SqueezeExcitation: scale = hardsigmoid(fc2(relu(fc1(avgpool(h))))); h * scale
            s = g.conv(g.gap(h, f"{p}.se.pool"), f"{p}.se.fc1", _divisible(exp // 4), 1, act="relu")
            h = g.mul(h, g.hsigmoid(g.conv(s, f"{p}.se.fc2", exp, 1), f"{p}.se.scale"), f"{p}.se")
        h = g.conv(h, f"{p}.project", cout, 1)
        x = g.add(h, x, f"{p}.out") if stride == 1 and cin == cout else h
        cin = cout
    x = g.gap(g.conv(x, "last", 576, 1, act="hswish"), "pool")
    return g.fc(g.fc(x, "classifier.0", 1024, act="hswish"), "logits", classes, flatten=False)


def shufflenet_v2_x0_5(g: OnnxNet, classes: int = 1000) -> str:
    """stages_repeats (4, 8, 4), stages_out_channels (24, 48, 96, 192, 1024)."""
    x = g.maxpool(g.conv("x", "conv1", 24, 3, 2, act="relu"), "maxpool", 3, 2)
    cin = 24
    for stage, (repeats, cout) in enumerate(zip((4, 8, 4), (48, 96, 192)), start=2):
        half = cout // 2
        for i in range(repeats):
            p = f"stage{stage}.{i}"
            if i == 0:  # stride 2: both branches read x
                b1 = g.conv(g.conv(x, f"{p}.b1.dw", cin, 3, 2, groups=cin), f"{p}.b1.pw", half, 1, act="relu")
                src = x
            else:
                b1, src = g.halves(x, f"{p}.split")
            b2 = g.conv(src, f"{p}.b2.pw1", half, 1, act="relu")
            b2 = g.conv(b2, f"{p}.b2.dw", half, 3, 2 if i == 0 else 1, groups=half)
            b2 = g.conv(b2, f"{p}.b2.pw2", half, 1, act="relu")
            x = g.shuffle(g.concat([b1, b2], f"{p}.cat"), f"{p}.out")
        cin = cout
    x = g.gap(g.conv(x, "conv5", 1024, 1, act="relu"), "pool")
    return g.fc(x, "logits", classes)


def densenet_small(g: OnnxNet, classes: int = 1000, growth: int = 32, blocks=(3, 2)) -> str:
    """DenseNet-121's layers (bn_size 4, growth 32, transitions halving the channels) with fewer
    of them: dense layer = BN -> Relu -> 1x1 conv (its BN folded) -> Relu -> 3x3 conv, Concat."""
    x = g.maxpool(g.conv("x", "conv0", 64, 7, 2, act="relu"), "pool0", 3, 2)
    for b, n in enumerate(blocks, start=1):
        feats = [x]
        for i in range(1, n + 1):
            p = f"denseblock{b}.layer{i}"
            src = feats[0] if len(feats) == 1 else g.concat(feats, f"{p}.cat")
            h = g.act(g.bn(src, f"{p}.norm1"), f"{p}.relu1", "relu")
            h = g.conv(h, f"{p}.conv1", 4 * growth, 1, act="relu")
            feats.append(g.conv(h, f"{p}.conv2", growth, 3, bias=False))
        x = g.concat(feats, f"denseblock{b}.out")
        if b < len(blocks):
            p = f"transition{b}"
            h = g.act(g.bn(x, f"{p}.norm"), f"{p}.relu", "relu")
            x = g.avgpool(g.conv(h, f"{p}.conv", g.shape[x][0] // 2, 1, bias=False), f"{p}.pool", 2)
    x = g.act(g.bn(x, "norm5"), "relu5", "relu")
    return g.fc(g.gap(x, "pool"), "logits", classes)


# name -> (architecture, OnnxNet options)
NET_GRAPHS = {"mobilenet_v3_small": (mobilenet_v3_small, {}),
              "mobilenet_v3_small_hsig": (mobilenet_v3_small, {"hswish": "hsigmoid_mul"}),
              "shufflenet_v2_x0_5": (shufflenet_v2_x0_5, {}),
              "shufflenet_v2_x0_5_slice": (shufflenet_v2_x0_5, {"split": "slice"}),
              "densenet_small": (densenet_small, {})}


def onnx_graph(net: str, path, size: int, seed: int = 0) -> Path:
    arch, opts = NET_GRAPHS[net]
    g = OnnxNet(size, seed, **opts)
    return g.save(path, arch(g))
