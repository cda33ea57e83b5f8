"""torchvision's ResNet-18 architecture (BasicBlock x [2, 2, 2, 2], 1,000 classes) with random
weights, written with onnx.helper (no download, no torchvision): BatchNorm folded into the convs, as
exported for deployment. Conv names follow torchvision (``layer2.0.conv1``, ``layer2.0.downsample.0``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def resnet18(path, seed: int = 0, size: int = 224) -> Path:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def conv(x, name, cin, cout, k, stride, relu):
        w = rng.standard_normal((cout, cin, k, k)).astype(np.float32) * np.float32(np.sqrt(2.0 / (cin * k * k)))
        b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
        inits.extend([numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")])
        nodes.append(helper.make_node("Conv", [x, f"{name}.weight", f"{name}.bias"], [name], name=name,
                                      kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4))
        if not relu:
            return name
        nodes.append(helper.make_node("Relu", [name], [f"{name}.relu"], name=f"{name}.relu"))
        return f"{name}.relu"

    x = conv("input", "conv1", 3, 64, 7, 2, True)
    nodes.append(helper.make_node("MaxPool", [x], ["maxpool"], name="maxpool", kernel_shape=[3, 3],
                                  strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = "maxpool", 64
    for layer, cout in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            name, stride = f"layer{layer}.{block}", 2 if block == 0 and layer > 1 else 1
            y = conv(x, f"{name}.conv1", cin, cout, 3, stride, True)
            y = conv(y, f"{name}.conv2", cout, cout, 3, 1, False)
            short = conv(x, f"{name}.downsample.0", cin, cout, 1, stride, False) if stride != 1 or cin != cout else x
            nodes += [helper.make_node("Add", [y, short], [f"{name}.add"], name=f"{name}.add"),
                      helper.make_node("Relu", [f"{name}.add"], [f"{name}.out"], name=f"{name}.relu")]
            x, cin = f"{name}.out", cout
    fc_w = (rng.standard_normal((1000, 512)) / np.sqrt(512)).astype(np.float32)
    inits += [numpy_helper.from_array(fc_w, "fc.weight"),
              numpy_helper.from_array((rng.standard_normal(1000) * 0.1).astype(np.float32), "fc.bias")]
    nodes += [helper.make_node("GlobalAveragePool", [x], ["avgpool"], name="avgpool"),
              helper.make_node("Flatten", ["avgpool"], ["flatten"], name="flatten"),
              helper.make_node("Gemm", ["flatten", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1)]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "resnet18", [vi("input", TensorProto.FLOAT, [1, 3, size, size])],
                              [vi("logits", TensorProto.FLOAT, [1, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Path(path)
