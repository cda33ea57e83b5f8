"""Writing onnxruntime's Q/DQ pairs into the ONNX graph once ``QDQWriter.place()`` has marked the
tensors (``qdq_quantizer.py``'s ``_quantize_normal_tensors``, its parameter sharing and its bias
quantization, 1.32): initializers for scales and zero points, QuantizeLinear / DequantizeLinear
nodes with onnxruntime's names, int32 biases, and the topological order onnxruntime leaves.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from qsim.errors import QsimError
from qsim.recipes import ort_qparams as P

_ONNX_TYPE = {"uint8": onnx.TensorProto.UINT8, "int8": onnx.TensorProto.INT8, "uint16": onnx.TensorProto.UINT16,
              "int16": onnx.TensorProto.INT16}


class QDQEmitter:
    """The graph edits of ``QDQWriter`` (its state: ``g``, ``inits``, ``o``, ``params``, ``to_quantize``,
    ``biases``, ``removed``, ``qvalues``)."""

    def add_init(self, tensor: onnx.TensorProto) -> None:
        self.g.initializer.append(tensor)
        self.inits[tensor.name] = tensor

    def add_scale_zp(self, t: str, zero, scale, dtype: str) -> tuple[str, str]:
        zp_name, scale_name = t + "_zero_point", t + "_scale"
        zero, scale = np.asarray(zero), np.asarray(scale)
        self.add_init(helper.make_tensor(zp_name, _ONNX_TYPE[dtype], zero.shape, zero.ravel().tolist()))
        self.add_init(helper.make_tensor(scale_name, onnx.TensorProto.FLOAT, scale.shape, scale.ravel().tolist()))
        return scale_name, zp_name

    def rename_inputs(self, old: str, new: str) -> None:
        for n in self.g.node:
            for i, name in enumerate(n.input):
                if name == old:
                    n.input[i] = new

    def add_weight(self, t: str, p: dict) -> None:
        w = numpy_helper.to_array(self.inits[t])
        scale_name, zp_name = self.add_scale_zp(t, p["zero_point"], p["scale"], p["dtype"])
        q = numpy_helper.from_array(P.quantize_initializer(w, p).reshape(w.shape), t + "_quantized")
        self.add_init(q)
        self.rename_inputs(t, t + "_DequantizeLinear_Output")
        self.g.node.append(helper.make_node("DequantizeLinear", [q.name, scale_name, zp_name],
                                            [t + "_DequantizeLinear_Output"], t + "_DequantizeLinear", axis=p["axis"]))
        self.qvalues[t] = (scale_name, zp_name)

    def add_pair(self, t: str, scale_name: str, zp_name: str) -> None:
        q_in, dq_out = t, t + "_DequantizeLinear_Output"
        if self.is_output(t):
            q_in, dq_out = t + "_QuantizeLinear_Input", t
            for n in self.g.node:
                for i, o in enumerate(n.output):
                    if o == t:
                        n.output[i] = q_in
        else:
            self.rename_inputs(t, dq_out)
        q_out = t + "_QuantizeLinear_Output"
        self.g.node.append(helper.make_node("QuantizeLinear", [q_in, scale_name, zp_name], [q_out],
                                            t + "_QuantizeLinear"))
        self.g.node.append(helper.make_node("DequantizeLinear", [q_out, scale_name, zp_name], [dq_out],
                                            t + "_DequantizeLinear"))
        self.qvalues[t] = (scale_name, zp_name)

    def add_bias(self, b: str, x: str, w: str, beta: float) -> None:
        for t in (w, x):
            if t not in self.qvalues:
                raise QsimError(f"bias {b!r}: its {'weight' if t == w else 'input'} {t!r} is not quantized, so the "
                                "int32 bias has no scale (onnxruntime refuses this too)")
        w_scale = numpy_helper.to_array(self.inits[self.qvalues[w][0]])
        x_scale = numpy_helper.to_array(self.inits[self.qvalues[x][0]])
        init = self.inits.pop(b)
        self.g.initializer.remove(init)
        data = numpy_helper.to_array(init)
        q, scale = P.quantize_bias(data, x_scale, w_scale, beta)
        name = b + "_quantized"
        self.add_init(numpy_helper.from_array(q.reshape(tuple(init.dims)), name))
        self.add_init(numpy_helper.from_array(scale, name + "_scale"))
        zp = (numpy_helper.from_array(np.zeros(scale.shape, np.int32), name + "_zero_point") if scale.size > 1
              else helper.make_tensor(name + "_zero_point", onnx.TensorProto.INT32, [], [0]))
        self.add_init(zp)
        self.g.node.append(helper.make_node("DequantizeLinear", [name, name + "_scale", name + "_zero_point"], [b],
                                            b + "_DequantizeLinear", axis=0 if scale.size > 1 else None))
        self.qvalues[b] = (name + "_scale", name + "_zero_point")

    def write(self) -> onnx.ModelProto:
        wparams = self.initializer_params()
        self.adjust_for_biases(wparams)
        for t, info in list(self.to_quantize.items()):
            if t in self.qvalues or info["share"] is not None:
                continue
            if t in self.inits:
                self.add_weight(t, wparams[t])
            elif t not in self.params:
                raise QsimError(f"tensor {t!r} is to be quantized but was not calibrated")
            else:
                zero, scale = self.params[t]
                self.add_pair(t, *self.add_scale_zp(t, zero, scale, self.o["activation"]))
            del self.to_quantize[t]
        while self.to_quantize:
            ready = [t for t, info in self.to_quantize.items() if info["share"][0] in self.qvalues]
            if not ready:
                raise QsimError(f"tensors {sorted(self.to_quantize)} share parameters with tensors that are not "
                                "quantized")
            for t in ready:
                src = self.to_quantize.pop(t)["share"][0]
                self.add_pair(t, *self.qvalues[src])
        if self.o["quantize_bias"]:
            for b, (_, x, w, beta) in self.biases.items():
                self.add_bias(b, x, w, beta)
        for node in self.removed:
            self.g.node.remove(node)
        used = {i for n in self.g.node for i in n.input}
        for init in [i for i in self.g.initializer if i.name not in used]:
            self.g.initializer.remove(init)
        _topological_sort(self.g)
        self.model.producer_name, self.model.producer_version = "onnx.quantize", "0.1.0"
        return self.model


def _topological_sort(g) -> None:
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    left, order = list(g.node), []
    while left:
        rest = []
        for n in left:
            if all(i in ready for i in n.input):
                order.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(left):
            raise QsimError(f"the quantized graph has a cycle or an unproduced input at node {rest[0].name!r}")
        left = rest
    copies = [onnx.NodeProto() for _ in order]
    for c, n in zip(copies, order):
        c.CopyFrom(n)
    del g.node[:]
    g.node.extend(copies)
