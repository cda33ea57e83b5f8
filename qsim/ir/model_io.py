"""A model file's own inputs and outputs, and how they map onto the IR graph.

The IR may rename tensors (a QOperator output ``191`` is the stored ``191_quantized``; a final
DequantizeLinear disappears into the quantization parameters of the tensor it reads) and keeps
rank-4 activations NCHW (TFLite files are NHWC). ``ModelIO`` records, per model input and output,
the model's name, dtype and shape (the runtime's layout), the IR tensor behind it and the axis
permutation between the two layouts, so that a simulation is fed and answers exactly as the runtime
(onnxruntime for .onnx, LiteRT for .tflite) is fed and answers:

* ``ir_feeds``: feeds keyed by the model's input names, in its dtype and layout, checked (missing,
  unknown, wrong dtype or shape: a QsimError naming the input) and moved to the IR layout (a
  transposed view of the caller's array: no copy);
* ``model_outputs``: the IR outputs as the model's outputs: renamed, moved back to the model's
  layout, and in the model's dtype (integer codes where the model returns integers; where it
  returns float32 from quantized codes, ``(q - zero_point) * scale`` in fp32, as DequantizeLinear).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from qsim.errors import QsimError


def _convert(v: np.ndarray, want: np.dtype) -> np.ndarray:
    """To the model's output type as onnxruntime's Cast converts (float16: rounded to nearest even,
    a NaN made quiet: ``qsim.sim.ort_cast``)."""
    from qsim.sim.ort_cast import CAST_TYPES, ort_cast

    if want.name in CAST_TYPES and v.dtype.name in CAST_TYPES:
        return ort_cast(v, want.name)
    return v.astype(want)


@dataclass(frozen=True)
class Port:
    name: str                          # the model's tensor name
    tensor: str                        # the IR tensor behind it
    dtype: str                         # numpy dtype the runtime takes / returns
    shape: tuple[int | None, ...]      # the model's shape in its own layout (None: symbolic axis)
    perm: tuple[int, ...] | None = None  # IR axis i holds model axis perm[i]; None: same layout


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    refusal: str | None = None  # why the runtime's answer for this file is not reproduced (None: it is)
    ort_uint8: tuple[str, ...] = ()  # int8 IR tensors onnxruntime converts to uint8 before fusing
    ort_float_units: tuple[str, ...] = ()  # IR nodes onnxruntime leaves unfused (run_integer's float_nodes)
    float_qdq_units: tuple[str, ...] = ()  # file nodes onnxruntime runs in float at ORT_DISABLE_ALL

    def for_onnxruntime(self, graph) -> None:
        """Give ``graph`` (loaded from this file) onnxruntime's own view of its int8 QDQ pairs: the
        tensors it converts to uint8 (codes + 128, zero point + 128) before fusing, so that the
        fused units round as its uint8 kernels do (``qsim.ir.onnx_s8_units``)."""
        from qsim.numerics.tensor_quant import TensorQuant

        for t in self.ort_uint8:
            q = graph.quant_params.get(t)
            if q is not None and q.fmt.element_type == "int8":
                zp = (np.asarray(q.zero_point).astype(np.int16) + 128).astype(np.uint8)
                graph.quant_params[t] = TensorQuant(q.scale, zp, "uint8", q.axis, q.block_size)

    @property
    def output_names(self) -> dict[str, str]:
        """Model output name -> IR tensor (the trace keeps IR names)."""
        return {p.name: p.tensor for p in self.outputs}

    def ir_feeds(self, feeds, path: str) -> dict[str, np.ndarray]:
        if not isinstance(feeds, Mapping):
            if len(self.inputs) != 1:
                raise QsimError(f"{path}: the model has inputs {[p.name for p in self.inputs]}; "
                                "give a dict name -> array")
            feeds = {self.inputs[0].name: feeds}
        known = {p.name for p in self.inputs}
        unknown = sorted(map(repr, set(feeds) - known))
        if unknown:
            raise QsimError(f"{path}: no model input named {', '.join(unknown)}; "
                            f"the inputs are {sorted(known)}")
        out = {}
        for p in self.inputs:
            if p.name not in feeds:
                raise QsimError(f"{path}: no array given for input {p.name!r} ({p.dtype} {list(p.shape)})")
            try:
                v = np.asarray(feeds[p.name])
            except (ValueError, TypeError) as exc:  # ragged nested lists, objects numpy cannot hold
                raise QsimError(f"{path}: input {p.name!r} is not an array: {exc}") from None
            if v.dtype != np.dtype(p.dtype):
                raise QsimError(f"{path}: input {p.name!r} takes {p.dtype} (the model's own dtype), got {v.dtype}")
            if v.ndim != len(p.shape) or any(d is not None and d != s for d, s in zip(p.shape, v.shape)):
                want = ["?" if d is None else d for d in p.shape]
                raise QsimError(f"{path}: input {p.name!r} has shape {list(v.shape)}; the model takes {want}"
                                + (" (NHWC, the file's own layout)" if p.perm else ""))
            # A view, not a copy: an NHWC (TFLite) input reaches the graph as an NCHW view of its own
            # channels-last memory, which the channels-last kernels read without converting it.
            out[p.tensor] = v.transpose(p.perm) if p.perm else v
        return out

    def feed_batch(self, feeds) -> int | None:
        """The batch of the feeds where the model's batch axis is symbolic (None otherwise)."""
        for p in self.inputs:
            v = feeds.get(p.name) if isinstance(feeds, Mapping) else feeds
            if v is not None and p.shape and p.shape[0] is None and np.ndim(v) == len(p.shape):
                return int(np.shape(v)[0])
        return None

    def model_outputs(self, graph, outputs: Mapping[str, np.ndarray], dequantize_variant=None) -> dict[str, np.ndarray]:
        """``dequantize_variant``: the runtime's DEQUANTIZE formula (``qsim.numerics.quantize``),
        applied in the model's layout."""
        from qsim.numerics.quantize import dequantize

        result = {}
        for p in self.outputs:
            v = np.asarray(outputs[p.tensor])
            want = np.dtype(p.dtype)
            q = graph.quant_params.get(p.tensor)
            if want.kind == "f" and v.dtype.kind in "iu" and q is not None:
                if p.perm and q.axis is None:
                    v = dequantize(v.transpose(np.argsort(p.perm)), q, dequantize_variant).transpose(p.perm)
                else:
                    v = dequantize(v, q, dequantize_variant if q.axis is None else None)
            if v.dtype != want:
                if want.kind in "iu" and v.dtype.kind == "f":
                    raise QsimError(f"output {p.name!r}: the model returns {want}, the simulation holds "
                                    f"{v.dtype} values (no quantization parameters for {p.tensor!r})")
                v = _convert(v, want)
            if p.perm:
                v = v.transpose(np.argsort(p.perm))
            result[p.name] = np.ascontiguousarray(v).reshape(v.shape)  # a 0-d output stays 0-d
        return result
