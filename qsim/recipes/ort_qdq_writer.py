"""Where onnxruntime's ``QDQQuantizer`` (``qdq_quantizer.py`` and ``operators/``, 1.32) puts
QuantizeLinear / DequantizeLinear in a float ONNX model, reproduced on the ONNX graph.

Per node of an op type to quantize (in the model's node order, as onnxruntime walks it):

* Conv / ConvTranspose / Gemm: input 0 and output are activations; input 1 a weight (per channel
  along the output axis when ``per_channel``: Conv 0, ConvTranspose 1, Gemm 0 if ``transB`` else 1);
  input 2 an int32 bias at ``s_in * s_w`` (Gemm: times ``beta``, which is then reset to 1);
* MatMul: each initializer input a weight (per channel along axis 1), the others activations;
* Relu / Clip ("removable"): when the input is quantized and activations are asymmetric, the
  activation is folded into its producer (the producer writes the activation's output, which takes
  the activation's range); otherwise input and output are quantized;
* Reshape, Transpose, Squeeze, Unsqueeze, Flatten, AveragePool, Slice, TopK, MaxPool (opset >= 12),
  Resize (opset >= 11): when input 0 is quantized, the output shares its scale and zero point;
* Gather / GatherElements (a float table is quantized per tensor as an activation), Split: outputs
  share input 0's parameters; Pad: every input quantized, the output shares input 0's parameters
  when the padding is a copy or a constant 0; Where: the output quantized when both values are;
* Layer / Batch / InstanceNormalization: input 0 and outputs are activations, the scale a weight,
  the bias an int32 bias;
* every other op type to quantize (Add, Mul, Softmax, Concat, GlobalAveragePool, Sigmoid, ...): every
  float input and output is an activation (a float initializer is quantized per tensor as an
  activation).

Before that, ranges are adjusted (``adjust_tensor_ranges``): a Relu / Clip input with one consumer
takes its output's range; a Softmax output is ``[0, 1]``. Activations get per-tensor parameters from
their calibrated range; initializers from their values (``ort_qparams``). Weight scales grow where a
bias would overflow int32. Op types whose onnxruntime quantizer is not reproduced here (CumSum,
EmbedLayerNormalization, Attention, LSTM) are refused with the node's name rather than placed differently.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from qsim.errors import QsimError
from qsim.recipes import ort_qparams as P
from qsim.recipes.ort_qdq_emit import QDQEmitter

DEFAULT_OP_TYPES = frozenset(
    "ArgMax Conv Gemm MatMul Add Mul Relu Clip LeakyRelu Sigmoid MaxPool GlobalAveragePool Split Pad Reshape "
    "Squeeze Unsqueeze Flatten Resize AveragePool Concat Softmax Where Gather Transpose EmbedLayerNormalization "
    "ConvTranspose Slice GatherElements InstanceNormalization LayerNormalization BatchNormalization TopK "
    "CumSum".split())
DIRECT = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "AveragePool", "Slice", "TopK", "MaxPool",
          "Resize"}
NORMS = {"LayerNormalization", "BatchNormalization", "InstanceNormalization"}
NOT_REPRODUCED = {"CumSum", "EmbedLayerNormalization", "Attention", "LSTM"}
_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)


class QDQWriter(QDQEmitter):
    """One quantization of one model: ``place()`` marks tensors, ``write()`` edits the graph."""

    def __init__(self, model: onnx.ModelProto, ranges: dict, options: dict):
        self.model, self.o = model, options
        self.g = model.graph
        self.inits = {t.name: t for t in self.g.initializer}
        self.types = {v.name: v.type.tensor_type.elem_type for v in
                      list(self.g.value_info) + list(self.g.input) + list(self.g.output)}
        self.ranges = dict(ranges)
        self.to_quantize: dict[str, dict] = {}  # tensor -> {"weight": bool, "axis": int|None, "share": (src, node)}
        self.biases: dict[str, tuple] = {}      # bias -> (node name, input, weight, beta)
        self.removed: list = []
        self.qvalues: dict[str, tuple[str, str]] = {}  # tensor -> (scale name, zero point name)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)

    # ---- helpers over the live graph
    def consumers(self, t: str) -> list:
        return [n for n in self.g.node if t in n.input]

    def is_output(self, t: str) -> bool:
        return any(o.name == t for o in self.g.output)

    def is_input(self, t: str) -> bool:
        return any(i.name == t for i in self.g.input)

    def should_quantize(self, node) -> bool:
        o = self.o
        if o["nodes_to_quantize"] and node.name not in o["nodes_to_quantize"]:
            return False
        return node.op_type in o["op_types"] and node.name not in o["nodes_to_exclude"]

    def quantizable(self, t: str) -> bool:
        if t in self.inits:
            return self.inits[t].data_type in _FLOATS
        return self.types.get(t) in _FLOATS

    def mark(self, t: str, weight: bool = False, axis=None, share=None) -> None:
        if not t or not self.quantizable(t):
            return
        if share is not None or axis is not None:
            self.to_quantize[t] = {"weight": weight, "axis": axis, "share": share}
        elif t not in self.to_quantize:
            self.to_quantize[t] = {"weight": weight, "axis": None, "share": None}

    def per_channel_axis(self, t: str, axis: int):
        w = self.inits.get(t)
        if w is None or w.data_type not in _FLOATS or not self.o["per_channel"]:
            return None
        rank = len(w.dims)
        return axis % rank if -rank <= axis < rank else None

    def weight(self, t: str, axis: int) -> None:
        ch = self.per_channel_axis(t, axis)
        if ch is not None:
            self.to_quantize[t] = {"weight": True, "axis": ch, "share": None}
        else:
            self.mark(t, weight=True)

    def bias(self, node, b: str, x: str, w: str, beta: float = 1.0) -> None:
        init = self.inits.get(b)
        if init is None or init.data_type not in _FLOATS:
            return
        if b in self.biases:
            raise QsimError(f"node {node.name!r}: bias {b!r} is shared with node {self.biases[b][0]!r}; "
                            "onnxruntime duplicates it under a new name, which is not reproduced")
        self.biases[b] = (node.name, x, w, beta)

    # ---- step 1: ranges
    def adjust_ranges(self) -> None:
        for node in self.g.node:
            if not self.should_quantize(node):
                continue
            if node.op_type in ("Clip", "Relu"):
                if len(self.consumers(node.input[0])) == 1 and node.input[0] in self.ranges \
                        and node.output[0] in self.ranges:
                    self.ranges[node.input[0]] = self.ranges[node.output[0]]
            elif node.op_type == "Softmax":
                self.ranges[node.output[0]] = (np.float32(0.0), np.float32(1.0))

    def activation_params(self) -> dict:
        dtype = self.o["activation"]
        sym = self.o["activation_symmetric"]
        qmin, qmax = P.qmin_qmax(dtype, False, sym)
        out = {}
        for t, (lo, hi) in self.ranges.items():
            zero, scale = P.compute_scale_zp(np.asarray(lo), np.asarray(hi), qmin, qmax, sym, self.o["min_real_range"])
            out[t] = (zero.squeeze(), scale.squeeze())
        return out

    # ---- step 2: placement (QDQQuantizer.quantize_model's walk)
    def place(self) -> None:
        self.adjust_ranges()
        self.params = self.activation_params()
        for node in list(self.g.node):
            if not self.should_quantize(node):
                continue
            op = node.op_type
            out_ok = op not in self.o["exclude_output_ops"]
            if op in NOT_REPRODUCED:
                raise QsimError(f"node {node.name!r} ({op}): onnxruntime's quantizer for {op} is not reproduced; "
                                "exclude the node (nodes_to_exclude) or its op type (op_types_to_quantize)")
            if op in ("Conv", "ConvTranspose", "Gemm"):
                self.mark(node.input[0])
                if out_ok:
                    self.mark(node.output[0])
                trans_b = any(a.name == "transB" and a.i for a in node.attribute)
                axis = {"Conv": 0, "ConvTranspose": 1}.get(op, 0 if trans_b else 1)
                self.weight(node.input[1], axis)
                if len(node.input) == 3 and node.input[2]:
                    self.place_bias(node)
            elif op == "MatMul":
                for t in list(node.input) + (list(node.output) if out_ok else []):
                    if t in self.inits:
                        self.weight(t, 1)
                    else:
                        self.mark(t)
            elif op in ("Relu", "Clip"):
                self.removable(node, out_ok)
            elif op in DIRECT:
                if op == "MaxPool" and self.opset < 12 or op == "Resize" and self.opset < 11:
                    continue
                src = node.input[0]
                if self.o["force"]:
                    self.mark(src)
                if (self.o["force"] or self.quantized(src)) and out_ok:
                    self.mark(node.output[0], share=(src, node.name))
            elif op in ("Gather", "GatherElements", "Split", "Pad", "Where"):
                self.place_other(node, out_ok)
            elif op in NORMS:
                self.mark(node.input[0])
                if self.per_channel_axis(node.input[1], 1) is not None:
                    self.weight(node.input[1], 1)
                elif node.input[1] in self.inits:
                    self.mark(node.input[1], weight=True)
                else:
                    self.mark(node.input[1])
                if len(node.input) > 2 and node.input[2]:
                    self.bias(node, node.input[2], node.input[0], node.input[1])
                if out_ok:
                    for t in node.output:
                        self.mark(t)
            else:
                for t in list(node.input) + (list(node.output) if out_ok else []):
                    self.mark(t)

    def quantized(self, t: str) -> bool:
        return t in self.to_quantize or t in self.biases

    def place_other(self, node, out_ok: bool) -> None:
        """QDQGather, QDQSplit, QDQPad and QDQWhere (operators/gather.py, split.py, pad.py, where.py)."""
        op, src = node.op_type, node.input[0]
        if op in ("Gather", "GatherElements"):
            valid = src in self.inits and self.inits[src].data_type in _FLOATS
            if valid or self.o["force"]:
                self.mark(src)
                self.mark(node.output[0], share=(src, node.name))
            elif self.quantized(src):
                self.mark(node.output[0], share=(src, node.name))
        elif op == "Split":
            if not self.quantized(src):
                self.mark(src)
            for t in node.output if out_ok else ():
                self.mark(t, share=(src, node.name))
        elif op == "Pad":
            for t in node.input:
                self.mark(t)
            if out_ok:
                self.mark(node.output[0], share=(src, node.name) if self.pad_keeps_zero(node) else None)
        else:  # Where: the two value inputs, then the output
            values = node.input[1:3]
            if self.o["force"]:
                for t in values:
                    if not self.quantized(t):
                        self.mark(t)
            if out_ok and (self.o["force"] or all(self.quantized(t) for t in values)):
                for t in node.output:
                    self.mark(t)

    def pad_keeps_zero(self, node) -> bool:
        """QDQPad._should_quantize_output_same_as_input: reflect / edge / wrap, or a constant 0 pad."""
        mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
        if mode in (b"reflect", b"edge", b"wrap"):
            return True
        if mode != b"constant":
            return False
        if self.opset < 11:
            return float(next((a.f for a in node.attribute if a.name == "value"), 0.0)) == 0
        if len(node.input) >= 3 and node.input[2]:
            init = self.inits.get(node.input[2])
            if init is None or init.data_type not in _FLOATS:
                return False
            return float(numpy_helper.to_array(init).item()) == 0
        return True

    def place_bias(self, node) -> None:
        """A Conv / Gemm bias; a Gemm's ``beta`` moves into the bias scale and the attribute becomes 1
        (only for a constant bias, as onnxruntime's set_default_beta)."""
        if node.op_type != "Gemm":
            self.bias(node, node.input[2], node.input[0], node.input[1])
            return
        if node.input[2] not in self.inits:
            return
        beta = next((a.f for a in node.attribute if a.name == "beta"), 1.0)
        self.bias(node, node.input[2], node.input[0], node.input[1], beta)
        for a in node.attribute:
            if a.name == "beta":
                a.f = 1.0

    def removable(self, node, out_ok: bool) -> None:
        src, out = node.input[0], node.output[0]
        if not self.quantized(src):
            return
        if (not self.o["activation_symmetric"] and not self.o["keep_removable"] and out in self.params
                and src in self.params and len(self.consumers(src)) == 1
                and not self.is_output(src) and not self.is_input(src)):
            for n in self.g.node:
                for i, o in enumerate(n.output):
                    if o == src:
                        n.output[i] = out
            self.to_quantize.pop(src, None)
            self.removed.append(node)
        else:
            self.mark(src)
        if out_ok:
            self.mark(out)

    # ---- step 3: parameters and Q/DQ nodes (_quantize_normal_tensors, sharing, biases)
    def initializer_params(self) -> dict:
        out = {}
        for t, info in self.to_quantize.items():
            if t not in self.inits or info["share"] is not None:
                continue
            w = numpy_helper.to_array(self.inits[t])
            dtype = self.o["weight"] if info["weight"] else self.o["activation"]
            sym = info["axis"] is not None or (self.weight_symmetric(dtype) if info["weight"]
                                               else self.o["activation_symmetric"])
            out[t] = P.initializer_params(w, dtype, sym, self.o["reduce_range"], info["axis"], self.o["min_real_range"])
        return out

    def weight_symmetric(self, dtype: str) -> bool:
        given = self.o["weight_symmetric"]
        return given if given is not None else dtype in ("int8", "int16")

    def adjust_for_biases(self, wparams: dict) -> None:
        if self.o["disable_bias_adjust"]:
            return
        for b, (_, x, w, _) in self.biases.items():
            if x not in self.params or x not in self.to_quantize or w not in wparams:
                continue
            p = wparams[w]
            if p["dtype"] not in ("int8", "int16") or np.asarray(p["zero_point"]).any():
                continue
            x_scale = np.asarray(self.params[x][1], dtype=np.float32)
            bias = numpy_helper.to_array(self.inits[b])
            new = P.adjust_weight_scale(x_scale, p["scale"], bias, p["axis"] is not None)
            if new is not None:
                p["scale"] = new
