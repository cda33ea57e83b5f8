"""The cost model sees a plan's recipes: ``keep`` changes formats, ``dynamic`` adds the min/max pass."""
from qsim.cost.estimate import estimate_graph
from qsim.hw.profile import load_profile
from qsim.ir.builders import build
from qsim.precision import parse_plan


def _layers(plan):
    g = build("mlperf_tiny_ad")  # fully connected layers (Gemm): weights and activations per node
    return g, estimate_graph(g, parse_plan(plan), load_profile("mobile")).layers.set_index("name")


def test_dynamic_recipe_costs_as_the_dynamic_plan_hand_checked():
    g, static = _layers("w8a8")
    _, recipe = _layers({"plan": "w8a8", "recipes": [{"name": "dynamic", "granularity": "token"}]})
    _, plan = _layers("w8a8-dynamic-per-token")
    first = g.nodes()[0]
    elems = g.tensor(first.inputs[0]).numel
    row, base = recipe.loc[first.name], static.loc[first.name]
    assert row.vector_ops == base.vector_ops + 2 * elems  # a min and a max compare per input element
    assert row.input_bytes == 2 * base.input_bytes  # the int8 input read twice
    assert recipe[["vector_ops", "input_bytes"]].equals(plan[["vector_ops", "input_bytes"]])


def test_keep_recipe_stores_the_kept_layer_at_its_precision():
    g, static = _layers("int8")
    node = g.nodes()[0]
    _, kept = _layers({"plan": "int8", "recipes": [{"name": "keep", "names": [node.name], "precision": "fp16"}]})
    w, b = (g.tensor(node.weights[r]).numel for r in ("weight", "bias"))
    assert static.loc[node.name, "weight_bytes"] == w + 4 * b  # int8 weights, int32 bias
    assert kept.loc[node.name, "weight_bytes"] == 2 * w + 2 * b  # fp16 both
    later = g.nodes()[1].name
    assert kept.loc[later, "weight_bytes"] == static.loc[later, "weight_bytes"]  # only the named layer
