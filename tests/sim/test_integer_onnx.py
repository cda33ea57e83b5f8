"""Integer executor vs onnxruntime, end to end: models quantized by onnxruntime's quantize_static
(QDQ and QOperator, per-tensor and per-channel, with and without planted ties), simulated with the
``onnxruntime`` policy; every compared element must be equal. Besides the file's own outputs, a
copy of each model exposes every quantized intermediate tensor (QOperator: the integer tensors;
QDQ: the QuantizeLinear outputs), so every layer is compared, not only the output."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime")

import _int_onnx as M  # noqa: E402
from _int_ties import count_ties  # noqa: E402

from qsim.ir.onnx_import import load_onnx  # noqa: E402
from qsim.numerics.quantize import dequantize  # noqa: E402
from qsim.sim.integer import run_integer  # noqa: E402

CASES = [(fmt, pc, ties, "uint8") for fmt in ("qdq", "qoperator") for pc in (False, True) for ties in (False, True)]
# Signed activations, QOperator only: with int8 QDQ, onnxruntime 1.32 leaves MatMul/Add node units
# unfused (DQ -> float op -> Q), a per-node choice the graph does not record (see the report).
CASES += [("qoperator", True, False, "int8"), ("qoperator", False, True, "int8")]
_SEEN: dict[str, tuple[int, int]] = {}


def _build(tmp_path_factory, model: str, fmt: str, per_channel: bool, ties: bool, activations: str = "uint8"):
    """(model file, a copy exposing quantized intermediates, graph, {exposed name: IR tensor})."""
    d = tmp_path_factory.mktemp(f"{model}_{fmt}_{per_channel}_{ties}_{activations}")
    build = {"cnn": M.resnet_cnn, "encoder": M.encoder_block, "concat": M.concat_cnn}[model]
    path = M.quantize(build(d / "float.onnx"), d / "quant.onnx", fmt, per_channel, activations=activations)
    if ties:
        M.pow2_scales(path)
    g = load_onnx(path)
    quantized = {t for n in g.nodes() for t in n.outputs
                 if t not in g.outputs and getattr(g.quant_params.get(t), "dtype", None) in ("uint8", "int8")}
    if fmt == "qoperator":  # the IR keeps the names of the stored integer tensors
        pairs = {t: t for t in quantized}
    else:  # QDQ: the integers are the outputs of the QuantizeLinear nodes that read our tensors
        pairs = {n.output[0]: n.input[0] for n in onnx.load(str(path)).graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] in quantized}
    exposed = d / "exposed.onnx"
    exposed.write_bytes(path.read_bytes())
    M.expose(exposed, list(pairs), {name: (g.tensor(t).dtype, g.tensor(t).shape) for name, t in pairs.items()})
    return path, exposed, g, pairs


def _compare(g, path, exposed, pairs, feeds, impl):
    """Outputs of the unmodified file (the node units onnxruntime fuses there), then every exposed
    intermediate of the copy; returns (elements compared, mismatches, SimResult)."""
    ref = M.ort_run(path, feeds)
    names = list(ref)
    r = run_integer(g, feeds, "onnxruntime", trace=True, impl=impl)
    compared = bad = 0
    for i, t in enumerate(g.outputs):  # the file's outputs are DequantizeLinear of ours
        q = g.quant_params.get(t)
        ours = dequantize(r.outputs[t], q) if q is not None else r.outputs[t]
        # LayerNorm runs as a float island whose fp32 kernel mirrors onnxruntime's bit for bit
        # (qsim.sim.float_ops.layernorm), so its output is compared exactly like the others.
        bad += int(np.sum(ours != ref[names[i]]))
        compared += ref[names[i]].size
    inner = M.ort_run(exposed, feeds)
    for name, t in pairs.items():
        if name in inner and np.issubdtype(inner[name].dtype, np.integer):
            assert r.trace[t].dtype == inner[name].dtype, t
            bad += int(np.sum(r.trace[t] != inner[name]))
            compared += inner[name].size
    return compared, bad, r


@pytest.mark.parametrize("model", ["cnn", "encoder"])
@pytest.mark.parametrize("fmt,per_channel,ties,activations", CASES)
def test_matches_onnxruntime(tmp_path_factory, model, fmt, per_channel, ties, activations):
    path, exposed, g, pairs = _build(tmp_path_factory, model, fmt, per_channel, ties, activations)
    shape = g.tensor(g.inputs[0]).shape
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    total = bad_all = 0
    runs = {}
    for impl in ("numba", "numpy"):
        compared, bad, runs[impl] = _compare(g, path, exposed, pairs, {g.inputs[0]: x}, impl)
        total += compared
        bad_all += bad
    r = runs["numpy"]
    for t, v in r.trace.items():  # the numba and numpy paths agree on every tensor, bit for bit
        assert v.dtype == runs["numba"].trace[t].dtype and np.array_equal(v, runs["numba"].trace[t]), t
    planted = count_ties(g, r.trace, "onnxruntime", r.stats)
    print(f"[int-onnx] {model} {fmt} {activations} per_channel={per_channel} ties={ties}: {total} elements compared "
          f"(numba + numpy), {planted} matrix outputs on exact .5, {bad_all} mismatches")
    assert bad_all == 0
    assert not ties or planted > 0
    assert (r.stats["op"] == "LayerNorm").sum() == (r.stats["mode"] == "float").sum()  # only LN in float


@pytest.mark.parametrize("fmt", ["qdq", "qoperator"])
def test_concat_with_rescaling_matches_onnxruntime(tmp_path_factory, fmt):
    path, exposed, g, pairs = _build(tmp_path_factory, "concat", fmt, False, False)
    cat = g.outputs[1]
    qs = [g.quant_params[t] for t in g.producer(cat).inputs + (cat,)]
    assert len({float(q.scale) for q in qs}) > 1, "the planted scales should differ"
    x = np.random.default_rng(8).standard_normal(g.tensor("x").shape).astype(np.float32)
    compared, bad, r = _compare(g, path, exposed, pairs, {"x": x}, "numba")
    print(f"[int-onnx] concat {fmt}: {compared} elements compared, {bad} mismatches")
    assert bad == 0


@pytest.mark.parametrize("params", [(0.05, 128, 1 / 256, 0), (0.1, 100, 1 / 255, 0), (0.031, 140, 0.0039, 3)])
def test_sigmoid_every_code_matches_onnxruntime(tmp_path, params):
    """QLinearSigmoid (a table from MLAS's logistic) against the float island, on all 256 codes."""
    path = M.qlinear_unary(tmp_path / "sigmoid.onnx", "QLinearSigmoid", *params)
    g = load_onnx(path)
    x = np.arange(256, dtype=np.uint8)
    ours = run_integer(g, {"x": x}, "onnxruntime").outputs[g.outputs[0]]
    ref = M.ort_run(path, {"x": x})["y"]
    assert ours.dtype == ref.dtype == np.uint8
    assert int(np.sum(ours != ref)) == 0
