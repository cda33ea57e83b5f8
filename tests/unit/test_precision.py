"""Precision spellings and plans."""
import pytest

from qsim.errors import WorkloadError
from qsim.precision import parse_plan, parse_precision


@pytest.mark.parametrize("text,weight,activation,acc,compute", [
    ("fp32", "fp32", "fp32", "fp32", "fp32"), ("tf32", "tf32", "tf32", "fp32", "tf32"),
    ("fp16", "fp16", "fp16", "fp32", "fp16"), ("bf16", "bf16", "bf16", "fp32", "bf16"),
    ("fp8", "fp8_e4m3", "fp8_e4m3", "fp32", "fp8"), ("int8", "int8", "int8", "int32", "int8"),
    ("int4", "int4", "int4", "int32", "int4"), ("w8a8", "int8", "int8", "int32", "int8"),
    ("w4a16", "int4", "fp16", "fp32", "fp16"), ("w8a16", "int8", "fp16", "fp32", "fp16"),
    ("w4a8", "int4", "int8", "int32", "int8"),
    ("weight=int4,activation=int16,accumulator=int32", "int4", "int16", "int32", "int16"),
])
def test_spellings(text, weight, activation, acc, compute):
    p = parse_precision(text)
    assert (p.weight.name, p.activation.name, p.accumulator.name, p.compute) == (weight, activation, acc, compute)


def test_unknown_precision_lists_choices():
    with pytest.raises(WorkloadError, match=r"unknown precision 'int1' \(unknown number format.*w4a16"):
        parse_precision("int1")
    with pytest.raises(WorkloadError, match=r"unknown number format 'int1'"):
        parse_precision("weight=int1,activation=int8")


def test_plan_overrides_validate():
    with pytest.raises(WorkloadError, match=r"overrides\[0\]: needs 'precision' and 'name' or 'op'"):
        parse_plan({"default": "int8", "overrides": [{"precision": "fp16"}]})
    with pytest.raises(WorkloadError, match=r"unknown keys \['defaults'\]"):
        parse_plan({"defaults": "int8"})


def test_plan_spec_round_trips():
    from qsim.precision import plan_spec

    for spec in ["int8", "w4a16", {"default": "w8a8", "overrides": [{"op": "Softmax", "precision": "fp16"},
                                                                   {"name": "fc", "precision": "w4a8"}]}]:
        plan = parse_plan(spec)
        assert parse_plan(plan_spec(plan)) == plan
