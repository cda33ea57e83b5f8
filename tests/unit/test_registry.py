"""The op registry: every op's entry is complete for every engine (or says it is unsupported there),
unknown ops are refused with the list of known ones, and one entry is all a new op needs."""
from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

from qsim.cost import estimate_graph
from qsim.errors import GraphError
from qsim.hw.profile import load_profile
from qsim.ir import OPS, Graph, get_op
from qsim.ir.registry import CostClass, Inferred, KernelRef, MatrixView, QuantRule, Support, per_output, register
from qsim.precision import PrecisionPlan


def _params(fn) -> int:
    return len(inspect.signature(fn).parameters)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_has_every_field(name):
    op = OPS[name]
    assert op.name == name
    assert isinstance(op.cost_class, CostClass)
    assert callable(op.infer) and callable(op.macs) and callable(op.vector_ops)
    assert isinstance(op.quant, QuantRule)
    # float: a kernel (inputs, weights, attrs) -> outputs, or explicitly unsupported
    if op.float_kernel is not Support.UNSUPPORTED:
        assert isinstance(op.float_kernel, KernelRef), f"{name}: float_kernel {op.float_kernel!r}"
        assert _params(op.float_kernel.load()) == 3
    # integer: a kernel (step) -> outputs, a float island, or explicitly unsupported; the first two
    # need the float kernel (a kernel may decline with Fallback, and then the island runs)
    assert isinstance(op.int_kernel, (KernelRef, Support)), f"{name}: int_kernel {op.int_kernel!r}"
    if isinstance(op.int_kernel, KernelRef):
        assert _params(op.int_kernel.load()) == 1
    if op.int_kernel is not Support.UNSUPPORTED:
        assert op.float_kernel is not Support.UNSUPPORTED, f"{name}: runs as a float island without a float kernel"
    # quantization and cost facts that must agree with each other
    assert op.quant.bias is None or op.quant.weights, f"{name}: an accumulator bias needs its weight"
    assert op.quant.bias is None or op.quant.bias in op.bias_roles, f"{name}: its int32 bias is costed narrow"
    assert all(isinstance(i, int) and i >= 0 for i in op.index_inputs)
    assert op.matrix is None or op.cost_class.matrix_like
    assert not op.fusable or op.cost_class is CostClass.ELEMENTWISE


def test_unknown_op_error_lists_every_known_op():
    with pytest.raises(GraphError) as err:
        get_op("Frobnicate")
    message = str(err.value)
    assert message.startswith("unknown op 'Frobnicate'; known ops: ")
    assert message.split("known ops: ")[1].split(", ") == sorted(OPS)


def test_engines_name_the_ops_they_run():
    from qsim.sim.float_ops import run_float_kernel

    with pytest.raises(GraphError, match=r"no float reference kernel for op 'LRN'; the simulator supports .*Conv"):
        run_float_kernel("LRN", [np.zeros((1, 4, 2, 2), np.float32)], {}, {})
    with pytest.raises(GraphError, match=r"unknown op 'Frobnicate'; known ops: .*Conv"):
        run_float_kernel("Frobnicate", [], {}, {})


def test_importing_the_ir_loads_no_simulator():
    code = ("import sys, qsim.ir; from qsim.ir import OPS; OPS['Conv'].float_kernel; "
            "bad = [m for m in sys.modules if m.startswith(('qsim.sim', 'numba', 'qsim.kernels'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cost_facts_per_node():
    conv = get_op("Conv")
    assert conv.cost_class_for([(1, 8, 4, 4)], {"out_channels": 8, "kernel": 3, "groups": 8}) is CostClass.DEPTHWISE
    assert conv.cost_class_for([(1, 8, 4, 4)], {"out_channels": 8, "kernel": 3, "groups": 2}) is CostClass.MATRIX
    assert get_op("Reshape").view and not get_op("Transpose").view
    assert get_op("Relu").fusable and not get_op("Add").fusable
    # a grouped 3x3 conv, 8 -> 16 channels in 2 groups, 4x4 output: 2 GEMMs of 16 x 8 over 36, each
    # reading its group's 4 x 4 x 4 input elements
    view = conv.matrix([(1, 8, 4, 4)], ((1, 16, 4, 4),), {"out_channels": 16, "kernel": 3, "groups": 2})
    assert view == MatrixView(1, 16, 16, 36, 2, 64) and view.gemms() == [(16, 8, 36)] * 2
    matmul = get_op("MatMul").matrix([(3, 5, 7), (3, 7, 2)], ((3, 5, 2),), {})
    assert matmul.gemms() == [(5, 2, 7)] * 3 and matmul.inputs_per_gemm() == 35


def square(inputs, weights, attrs):
    return [inputs[0] * inputs[0]]


@pytest.fixture
def square_op():
    """A new op defined by one registry entry only: an activation with a float kernel, run by the
    integer executor as a float island."""
    def infer(inputs, attrs):
        return Inferred(outputs=(tuple(inputs[0]),))

    register("Square", cost_class=CostClass.ELEMENTWISE, float_kernel=KernelRef(__name__, "square"),
             int_kernel=Support.FLOAT_ISLAND, vector_ops=per_output(1), fusable=True)(infer)
    try:
        yield
    finally:
        del OPS["Square"]


def test_one_entry_is_all_a_new_op_needs(square_op):
    from qsim.sim.executor import run_float
    from qsim.sim.integer import run_integer
    from qsim.sim.quantize_graph import quantize_graph

    g = Graph("sq")
    g.add_input("x", (4, 8))
    g.add_node("Gemm", "fc", ["x"], {"out_features": 3})
    g.add_node("Square", "sq", ["fc"])
    g.mark_output("sq")
    rng = np.random.default_rng(0)
    g.constants["fc.weight"] = rng.standard_normal((3, 8)).astype(np.float32)
    g.constants["fc.bias"] = rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    out = run_float(g, {"x": x})["sq"]
    assert np.array_equal(out, (x @ g.constants["fc.weight"].T + g.constants["fc.bias"]) ** 2)
    row = estimate_graph(g, PrecisionPlan.uniform("int8"), load_profile("iot")).layers.set_index("name").loc["sq"]
    assert row.fused and row.input_bytes == row.output_bytes == 0 and row.vector_ops == 12
    stats = run_integer(quantize_graph(g, "int8", [{"x": x}]), {"x": x}, "onnxruntime").stats.set_index("node")
    assert stats.loc["fc", "mode"] == "integer" and stats.loc["sq", "mode"] == "float"
