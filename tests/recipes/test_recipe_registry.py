"""The recipe registry: recipes from a workload file and from Python, one-line errors for unknown
names and bad parameters (file:line: key in a workload), and recipes applied end to end."""
import numpy as np
import pytest
from _recipe_graphs import tiny_decoder

from qsim import recipes
from qsim.errors import QsimError, WorkloadError
from qsim.precision import parse_plan, plan_spec
from qsim.workload import load_workload

WORKLOAD = """name: tiny
model:
  builder: llama
  params: {layers: 1, hidden: 64, heads: 2, ffn: 128, vocab: 100}
precision:
  plan: w4a16
  recipes:
    - {name: smoothquant, alpha: 0.5}
    - {name: gptq, group: 32}
"""


def test_a_workload_names_recipes_in_its_precision_section(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(WORKLOAD)
    plan = load_workload(path).plan
    assert [(r.name, r.params["alpha" if r.name == "smoothquant" else "group"]) for r in plan.recipes] == \
        [("smoothquant", 0.5), ("gptq", 32)]
    assert plan.default.weight.name == "int4" and parse_plan(plan_spec(plan)) == plan


@pytest.mark.parametrize("bad, line, key, what", [
    ("{name: gptqq, group: 32}", 9, "precision.recipes[1].name", "unknown recipe 'gptqq'; known recipes: awq"),
    ("{name: gptq, grup: 32}", 9, "precision.recipes[1].grup", "recipe 'gptq' has no parameter 'grup'"),
    ("{name: gptq, group: -4}", 9, "precision.recipes[1].group", "expected a group size >= 0"),
    ("{name: smoothquant, alpha: 2}", 9, "precision.recipes[1].alpha", "expected a number in [0, 1]"),
])
def test_bad_recipes_are_one_line_errors_at_their_line(tmp_path, bad, line, key, what):
    path = tmp_path / "w.yaml"
    path.write_text(WORKLOAD.replace("{name: gptq, group: 32}", bad))
    with pytest.raises(WorkloadError) as err:
        load_workload(path)
    text = str(err.value)
    assert len(text.splitlines()) == 1 and text.startswith(f"{path}:{line}: {key}: ") and what in text


def test_python_errors_name_the_recipe_and_its_parameters():
    with pytest.raises(WorkloadError, match=r"recipes\[0\]\.name: unknown recipe 'smooth'; known recipes: awq, "):
        recipes.parse_recipes(["smooth"])
    with pytest.raises(WorkloadError, match=r"recipes\[1\]\.granularity: recipe 'kv_cache': expected one of token"):
        recipes.parse_recipes(["rtn", {"name": "kv_cache", "granularity": "layer"}])
    with pytest.raises(WorkloadError, match="give the default precision once"):
        parse_plan({"plan": "w8a8", "default": "int8"})


def test_every_recipe_declares_its_cost_metadata():
    table = recipes.metadata_table()
    assert set(table["recipe"]) == set(recipes.RECIPES)
    assert set(table["stage"]) <= set(recipes.STAGES)
    dyn = table.set_index("recipe").loc["dynamic"]
    assert dyn["extra_inference_passes"] == 1 and "per token" in dyn["extra_scale_bytes"]


def test_decoder_fp32_graph_equals_torch():
    import torch

    g, calib, net = tiny_decoder()
    want = net(torch.from_numpy(calib[0]["ids"])).detach().numpy()
    got = recipes.apply(g, "fp32", calib).run(calib[0])["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _error(applied, calib, ref):
    return float(np.mean((applied.run(calib[0])["logits"] - ref) ** 2))


def test_recipes_compose_end_to_end_and_say_how_they_ran():
    g, calib, _ = tiny_decoder()
    ref = recipes.apply(g, "fp32", calib).run(calib[0])["logits"]
    rtn = recipes.apply(g, "w4a16", calib, [{"name": "rtn", "group": 16}])
    gptq = recipes.apply(g, "w4a16", calib, [{"name": "gptq", "group": 16}])
    assert _error(gptq, calib, ref) < _error(rtn, calib, ref)  # calibrated on the evaluated batch
    scales = [a.graph.quant_params["l0.q.weight"].scale for a in (rtn, gptq)]
    assert np.array_equal(*scales)  # GPTQ chooses codes on the quantizer's grid
    later = [{"name": "dynamic"}, {"name": "kv_cache", "format": "int4"}]
    w8 = recipes.apply(g, {"plan": "w8a8", "recipes": ["smoothquant"]}, calib, later)
    assert "value emulation" in w8.how and "per token" in w8.how and "KV cache int4" in w8.how
    assert 0 < _error(w8, calib, ref) < 0.1 * np.mean(ref ** 2)
    assert all(t not in w8.graph.quant_params for t in ("l0.q", "l0.ln1"))  # activations: dynamic, not static


def test_a_runtime_recipe_cannot_hide_in_a_static_plan():
    g, calib, _ = tiny_decoder()
    with pytest.raises(QsimError, match="quantizes no Gemm weight"):
        recipes.apply(g, "fp32", calib, [{"name": "gptq"}])


def test_the_simulators_flow_applies_a_plans_static_recipes_and_refuses_emulated_ones():
    from qsim.sim.pipeline import prepare
    from qsim.sim.quantize_graph import quantize_graph

    g, calib, _ = tiny_decoder()
    q = prepare(g, {"plan": "w4a16", "recipes": [{"name": "gptq", "group": 16}]}, calib)
    direct = recipes.apply(g, "w4a16", calib, [{"name": "gptq", "group": 16}]).graph
    assert np.array_equal(q.constants["l1.fc2.weight"], direct.constants["l1.fc2.weight"])
    with pytest.raises(QsimError, match="need value emulation at run time"):
        prepare(g, {"plan": "w8a8", "recipes": ["dynamic"]}, calib)
    with pytest.raises(QsimError, match=r"quantize_graph does not run recipes \(gptq\)"):
        quantize_graph(g, parse_plan({"plan": "w4a16", "recipes": ["gptq"]}), calib)


def test_a_sweep_spec_takes_recipes_and_reports_a_bad_one_at_its_line(tmp_path):
    from qsim.sweep import SweepError, load_spec

    spec = ("name: s\nworkloads: [llama7b_decode]\nprofiles: [mobile]\nprecisions:\n"
            "  - {label: gptq, default: w4a16, recipes: [{name: gptq, group: 128}]}\n")
    path = tmp_path / "s.yaml"
    path.write_text(spec)
    assert load_spec(path).plans["gptq"]["recipes"] == [{"name": "gptq", "group": 128}]
    path.write_text(spec.replace("group: 128", "groop: 128"))
    with pytest.raises(SweepError, match=r"s.yaml:5: precisions\[0\]: .*recipe 'gptq' has no parameter 'groop'"):
        load_spec(path)


def test_a_plain_module_registers_in_one_line(monkeypatch):
    from _recipe_graphs import norm_linear

    monkeypatch.setitem(recipes.RECIPES, "scale_bias", recipes.Recipe("_plain_recipe"))
    g, calib = norm_linear()
    applied = recipes.apply(g, "fp32", calib, [{"name": "scale_bias", "factor": 3.0}])
    np.testing.assert_array_equal(applied.graph.constants["q.bias"], g.constants["q.bias"] * 3.0)
    with pytest.raises(WorkloadError, match="recipe 'scale_bias' has no parameter 'alpha'"):
        recipes.parse_recipes([{"name": "scale_bias", "alpha": 1}])


def test_the_cnn_recipes_register_with_their_own_metadata():
    from _recipe_graphs import norm_linear

    meta = recipes.RECIPES["bias_correction"].metadata
    assert meta.stage == "float" and "weight" in meta.params and meta.calibration_passes == 1
    assert recipes.RECIPES["entropy"].metadata.stage == "quantizer"
    g, calib = norm_linear()
    applied = recipes.apply(g, "int8", calib, [{"name": "equalization"}, {"name": "entropy"}])
    assert applied.graph.quant_params and "integer executor" in applied.how
