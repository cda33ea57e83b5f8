"""A small helper for writing model builders: keeps the current tensor and names nodes."""
from __future__ import annotations

from qsim.ir.graph import Graph


class NetBuilder:
    """Wraps a ``Graph`` with layer helpers. Deployed (inference) form: BatchNorm is folded into
    the preceding conv's bias; such convs carry ``folded_batchnorm=True``, so that a software stack
    that runs BatchNorm as a kernel of its own (PyTorch eager) can unfold it (qsim.cost.stack)."""

    def __init__(self, name: str, input_shape, input_name: str = "input", dtype: str = "float32"):
        self.graph = Graph(name)
        self.graph.add_input(input_name, input_shape, dtype)
        self._used: dict[str, int] = {}
        self.x = input_name

    def _name(self, base: str) -> str:
        n = self._used.get(base, 0)
        self._used[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def node(self, op: str, name: str, inputs, **attrs) -> str:
        node = self.graph.add_node(op, self._name(name), inputs, attrs)
        return node.outputs[0]

    def conv(self, x: str, cout: int, kernel, stride=1, pad=None, groups=1, act: str | None = "Relu",
             name: str = "conv", bias: bool = True, dilation=1, batchnorm: bool = True) -> str:
        if pad is None:  # "same" padding for odd kernels
            kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
            pad = (dilation * (kh - 1) // 2, dilation * (kw - 1) // 2)
        y = self.node("Conv", name, [x], out_channels=cout, kernel=kernel, stride=stride, pad=pad,
                      groups=groups, bias=bias, dilation=dilation, **({"folded_batchnorm": True} if batchnorm else {}))
        return self.node(act, f"{name}_{act.lower()}", [y]) if act else y

    def gemm(self, x: str, out_features: int, act: str | None = None, name: str = "fc", bias: bool = True) -> str:
        y = self.node("Gemm", name, [x], out_features=out_features, bias=bias)
        return self.node(act, f"{name}_{act.lower()}", [y]) if act else y

    def classifier(self, x: str, num_classes: int, softmax: bool) -> Graph:
        """Global average pool, flatten, the fully-connected classifier and, for a model whose reference
        ends with one, its Softmax; returns the finished graph."""
        x = self.node("GlobalAvgPool", "avgpool", [x])
        x = self.node("Flatten", "flatten", [x])
        x = self.gemm(x, num_classes, name="fc")
        return self.finish(self.node("Softmax", "softmax", [x]) if softmax else x)

    def finish(self, *outputs: str) -> Graph:
        for out in outputs or (self.x,):
            self.graph.mark_output(out)
        return self.graph.validate()
