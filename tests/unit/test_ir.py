"""Graph IR: shape inference, counts and the errors that name the node."""
import pytest

from qsim.errors import GraphError
from qsim.ir import Graph, node_counts
from qsim.workload import build_model
from pathlib import Path


def test_conv_shapes_and_counts_strided_padded_dilated_grouped():
    g = Graph("t")
    g.add_input("x", (2, 8, 17, 17))
    n = g.add_node("Conv", "c", ["x"], dict(out_channels=16, kernel=3, stride=2, pad=(1, 1, 2, 2), dilation=2,
                                             groups=4))
    # H: (17 + 1 + 2 - (2*(3-1)+1)) // 2 + 1 = 15 // 2 + 1 = 8
    assert g.tensor("c").shape == (2, 16, 8, 8)
    c = node_counts(g, n)
    assert c.macs == 2 * 16 * 8 * 8 * (8 // 4) * 9
    assert c.params == 16 * 2 * 9 + 16


def test_depthwise_conv_counts():
    g = Graph("t")
    g.add_input("x", (1, 32, 10, 10))
    n = g.add_node("Conv", "dw", ["x"], dict(out_channels=32, kernel=3, pad=1, groups=32, bias=False))
    assert node_counts(g, n).macs == 32 * 10 * 10 * 9
    assert node_counts(g, n).params == 32 * 9


def test_batched_matmul_and_gemm():
    g = Graph("t")
    g.add_input("a", (4, 1, 8, 16))
    g.add_input("b", (3, 16, 5))
    n = g.add_node("MatMul", "mm", ["a", "b"])
    assert g.tensor("mm").shape == (4, 3, 8, 5)
    assert node_counts(g, n).macs == 4 * 3 * 8 * 5 * 16
    m = g.add_node("Gemm", "fc", ["mm"], dict(out_features=7))
    assert g.tensor("fc").shape == (4, 3, 8, 7)
    assert node_counts(g, m).macs == 4 * 3 * 8 * 7 * 5


def test_attention_with_kv_cache_counts():
    g = Graph("t")
    g.add_input("x", (1, 1, 64))
    n = g.add_node("Attention", "att", ["x"], dict(heads=4, kv_heads=2, past=9, kv_cache=True))
    hd = 16
    proj = 64 * (2 * 4 * hd + 2 * 2 * hd)
    sdpa = 2 * 4 * 1 * 10 * hd
    c = node_counts(g, n)
    assert c.macs == proj + sdpa
    assert g.tensor("att.k_cache").shape == (1, 2, 10, 16)
    assert c.state == 2 * 2 * 10 * 16


@pytest.mark.parametrize("op,shape,attrs,expect", [
    ("MaxPool", (1, 3, 112, 112), dict(kernel=3, stride=2, pad=1), (1, 3, 56, 56)),
    ("AvgPool", (1, 3, 7, 7), dict(kernel=2, stride=2, ceil_mode=True), (1, 3, 4, 4)),
    ("GlobalAvgPool", (1, 3, 7, 7), {}, (1, 3, 1, 1)),
    ("Flatten", (2, 3, 4, 5), {}, (2, 60)),
    ("Reshape", (2, 3, 4), dict(shape=[0, -1]), (2, 12)),
    ("Transpose", (2, 3, 4), dict(perm=[2, 0, 1]), (4, 2, 3)),
    ("Softmax", (2, 3), {}, (2, 3)),
    ("LayerNorm", (2, 3), {}, (2, 3)),
    ("HardSwish", (2, 3), {}, (2, 3)),
    ("Embedding", (1, 5), dict(num_embeddings=100, embedding_dim=8), (1, 5, 8)),
])
def test_shape_inference(op, shape, attrs, expect):
    g = Graph("t")
    g.add_input("x", shape)
    g.add_node(op, "n", ["x"], attrs)
    assert g.tensor("n").shape == expect


def test_concat_and_broadcast_add():
    g = Graph("t")
    g.add_input("a", (1, 3, 4, 4))
    g.add_input("b", (1, 5, 4, 4))
    g.add_node("Concat", "cat", ["a", "b"], dict(axis=1))
    assert g.tensor("cat").shape == (1, 8, 4, 4)
    g.add_input("s", (8, 1, 1))
    g.add_node("Add", "add", ["cat", "s"])
    assert g.tensor("add").shape == (1, 8, 4, 4)


def test_unknown_op_lists_known_ops():
    g = Graph("t")
    g.add_input("x", (1, 4))
    with pytest.raises(GraphError, match=r"unknown op 'Frobnicate'; known ops: .*Conv.*Gemm"):
        g.add_node("Frobnicate", "f", ["x"])


def test_shape_mismatch_names_node():
    g = Graph("t")
    g.add_input("a", (1, 3))
    g.add_input("b", (1, 4))
    with pytest.raises(GraphError, match=r"node 'add' \(Add\).*do not broadcast"):
        g.add_node("Add", "add", ["a", "b"])
    g.add_input("x", (1, 6, 8, 8))
    with pytest.raises(GraphError, match=r"node 'c' \(Conv\).*groups=4 must divide in_channels=6"):
        g.add_node("Conv", "c", ["x"], dict(out_channels=8, kernel=1, groups=4))


def test_undefined_input_and_dangling_output_name_the_node():
    g = Graph("t")
    g.add_input("x", (1, 4))
    with pytest.raises(GraphError, match=r"node 'r' \(Relu\): input tensor 'nope' is not defined"):
        g.add_node("Relu", "r", ["nope"])
    g.add_node("Relu", "r1", ["x"])
    g.add_node("Relu", "r2", ["x"])
    g.mark_output("r2")
    with pytest.raises(GraphError, match=r"node 'r1' \(Relu\): output 'r1' is dangling"):
        g.validate()


def test_cycle_in_layer_list_names_the_nodes():
    model = {"inputs": [{"name": "x", "shape": [1, 4]}],
             "layers": [{"name": "a", "op": "Add", "inputs": ["x", "b"]},
                        {"name": "b", "op": "Relu", "inputs": ["a"]}],
             "outputs": ["b"]}
    with pytest.raises(GraphError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        build_model(model, "cyc", Path("."), "w.yaml")


def test_layers_in_any_order_build_the_same_graph():
    model = {"inputs": [{"name": "x", "shape": [1, 3, 8, 8]}],
             "layers": [{"name": "fc", "op": "Gemm", "inputs": ["flat"], "out_features": 10},
                        {"name": "flat", "op": "Flatten", "inputs": ["conv"]},
                        {"name": "conv", "op": "Conv", "inputs": ["x"], "out_channels": 4, "kernel": 3, "pad": 1}],
             "outputs": ["fc"]}
    g = build_model(model, "m", Path("."), "w.yaml")
    assert [n.name for n in g.nodes()] == ["conv", "flat", "fc"]
    assert g.summary()["macs"] == 4 * 64 * 27 + 256 * 10


def test_unknown_attribute_in_an_explicit_layer_is_named():
    model = {"inputs": [{"name": "x", "shape": [1, 3, 8, 8]}],
             "layers": [{"name": "c", "op": "Conv", "inputs": ["x"], "out_channels": 4, "kernel": 3,
                         "padding": 1}],
             "outputs": ["c"]}
    with pytest.raises(GraphError, match=r"layer 'c' \(Conv\): unknown attribute\(s\) \['padding'\]; "
                                         r"Conv takes out_channels, kernel, stride, pad"):
        build_model(model, "m", Path("."), "w.yaml")


def _state(g):
    return dict(g.tensors), list(g.inputs), [n.name for n in g.nodes()]


@pytest.mark.parametrize("bad", [
    dict(outputs=["x"]),                                   # output name taken by the graph input
    dict(outputs=["y", "y"]),                              # two outputs... of a one-output op
    dict(weights={"weight": "w_wrong_shape"}),             # given weight with the wrong shape
    dict(weights={"weight": "w_ok", "gamma": "w_ok"}),     # a role the op does not have
    dict(outputs=["fc.bias"]),                             # output collides with the node's own bias tensor
])
def test_failed_add_node_leaves_the_graph_unchanged_and_a_retry_works(bad):
    g = Graph("g")
    g.add_input("x", (2, 8))
    g.add_input("w_ok", (4, 8))        # a weightless export: the weight arrives as a graph input
    g.add_weight("w_wrong_shape", (8, 4))
    before = _state(g)
    with pytest.raises(GraphError, match="node 'fc' \\(Gemm\\)"):
        g.add_node("Gemm", "fc", ["x"], {"out_features": 4}, **bad)
    assert _state(g) == before         # no stray output, bias or retyped input
    node = g.add_node("Gemm", "fc", ["x"], {"out_features": 4}, weights={"weight": "w_ok"})
    assert node.outputs == ("fc",) and node.weights == {"weight": "w_ok", "bias": "fc.bias"}
    assert g.tensor("w_ok").kind == "weight" and g.inputs == ["x"]
    assert g.tensor("fc").shape == (2, 4) and g.producer("fc").name == "fc"


def test_a_failed_shape_check_leaves_no_stray_tensor():
    g = Graph("g")
    g.add_input("a", (1, 4))
    g.add_input("b", (1, 5))
    with pytest.raises(GraphError):
        g.add_node("Add", "add", ["a", "b"])
    assert set(g.tensors) == {"a", "b"}
    g.add_input("c", (1, 4))
    assert g.add_node("Add", "add", ["a", "c"]).outputs == ("add",)
