"""A real trained model: a small CNN trained here on scikit-learn's digits, then held-out accuracy
at float, int8, int4 weights, int4, fp8 and a mixed plan (int4 convs + int8 head)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")

from qsim.sim.executor import run_float  # noqa: E402
from qsim.sim.metrics import real_value  # noqa: E402
from qsim.evaluation.digits import train_digits  # noqa: E402
from qsim.evaluation.evaluate import classifier_table, execute  # noqa: E402
from qsim.sim.quantize_graph import quantize_graph, run_fake_quant  # noqa: E402

MIXED = {"default": "w4a8", "overrides": [{"name": "fc", "precision": "int8"}]}
PLANS = {"fp32": "fp32", "int8": "int8", "w4a8": "w4a8", "int4": "int4", "fp8": "fp8", "mixed": MIXED}


@pytest.fixture(scope="module")
def model():
    return train_digits(epochs=12)


@pytest.fixture(scope="module")
def table(model):
    n = len(model.x_test)
    t = classifier_table(model.graph(n), PLANS, model.calib_feeds(n), {"x": model.x_test}, model.y_test,
                         executor="fake")
    return t.set_index("precision")


def test_graph_matches_torch(model):
    from torch import nn

    w = model.weights
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(256, 10))
    state = {"0.weight": w["conv1.weight"], "0.bias": w["conv1.bias"], "2.weight": w["conv2.weight"],
             "2.bias": w["conv2.bias"], "6.weight": w["fc.weight"], "6.bias": w["fc.bias"]}
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = model.x_test[:64]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(model.graph(64), {"x": x})["fc"], want, atol=1e-5, rtol=1e-5)


def test_accuracy_relations(table):
    acc, agree, sqnr = table["accuracy"], table["top1_agreement"], table["logits_sqnr_db"]
    assert acc["fp32"] > 0.9
    assert abs(acc["int8"] - acc["fp32"]) <= 0.02 and agree["int8"] >= 0.98
    assert abs(acc["fp8"] - acc["fp32"]) <= 0.03
    # fewer bits, more noise: int8 > mixed (int8 head) > int4 weights > int4 weights and activations
    assert sqnr["int8"] > sqnr["mixed"] > sqnr["w4a8"] > sqnr["int4"]
    assert acc["int4"] <= acc["int8"] + 0.005 and agree["int4"] < agree["int8"]
    assert (table["executed_by"].drop("fp32") == "fake quantization (float kernels, QDQ)").all()


@pytest.mark.parametrize("plan", ["int8", "w4a8", "fp8", "mixed"])
def test_integer_executor_agrees_with_fake_quant(model, table, plan):
    n = len(model.x_test)
    q = quantize_graph(model.graph(n), PLANS[plan], model.calib_feeds(n))
    outs, how, stats = execute(q, {"x": model.x_test}, "integer")
    assert how.startswith("integer executor") and stats is not None
    logits = outs["fc"]
    fake = real_value(q, "fc", run_fake_quant(q, {"x": model.x_test})["fc"])
    assert np.mean(np.argmax(logits, 1) == model.y_test) == pytest.approx(table["accuracy"][plan], abs=0.005)
    assert np.mean(np.argmax(fake, 1) == np.argmax(logits, 1)) >= 0.99
