"""Sweep spec validation: every problem at once, each with file:line: key."""
import re

import pytest

from qsim.sweep import SweepError, generate_points, load_spec

BAD = """\
name: bad
workloads: [resnet50, resnt50]
precisions: [int8, int99, {label: mixed, default: int8, overrides: [{op: Gemm}]}]
profiles: [mobile, nosuch_chip]
overrides:
  memories.sram.capacity_kib: [256, -1]
  memories.sram.bandwidth: [10]
batch: [0, 2]
colour: blue
"""


def problems(exc) -> list[str]:
    return [line.strip() for line in str(exc).splitlines()[1:] if re.match(r"\s+\S+:\d+: ", line)]


def test_all_structural_problems_at_once_with_lines(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    with pytest.raises(SweepError) as info:
        load_spec(path)
    msg = str(info.value)
    assert f"{path}:8: batch[0]: must be >= 1" in msg
    assert f"{path}:9: colour: unknown key" in msg
    assert len(problems(info.value)) == 2  # structure first: names are checked once the shape is right


def test_all_semantic_problems_at_once_with_lines(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD.replace("batch: [0, 2]\ncolour: blue\n", ""))
    with pytest.raises(SweepError) as info:
        load_spec(path)
    msg = str(info.value)
    assert f"{path}:2: workloads[1]: no workload file 'resnt50'" in msg
    assert f"{path}:3: precisions[1]: unknown precision 'int99'" in msg
    assert f"{path}:3: precisions[2]: precisions[2].overrides[0]: needs 'precision'" in msg
    assert f"{path}:4: profiles[1]: profile 'nosuch_chip'" in msg
    assert (f"{path}:6: overrides.memories.sram.capacity_kib[1]: profile 'mobile' with "
            "memories.sram.capacity_kib = -1: memories.sram.capacity_kib: must be > 0, got -1") in msg
    assert (f"{path}:7: overrides.memories.sram.bandwidth: no profile of this sweep has this key "
            "(did you mean 'memories.sram.bandwidth_gbps'?)") in msg
    assert len(problems(info.value)) == 6, msg


def test_duplicate_keys_and_wrong_types(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: x\nname: y\n")
    with pytest.raises(SweepError, match=r"dup.yaml:2: name: duplicate key \(first at line 1\)"):
        load_spec(path)
    path.write_text("name: x\nworkloads: resnet50\nprecisions: [int8]\nprofiles: [{a: 1}]\nmode: grid\n")
    with pytest.raises(SweepError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "dup.yaml:2: workloads: expected a list, got 'resnet50'" in msg
    assert "dup.yaml:4: profiles[0]: expected a non-empty string" in msg
    assert "dup.yaml:5: mode: 'grid' is not one of product, points" in msg


def test_mode_specific_keys(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nmode: points\nworkloads: [resnet50]\npoints:\n"
                    "  - {workload: resnet50, precision: int8, profile: mobile, overrides: {nope.x: 1}}\n")
    with pytest.raises(SweepError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "p.yaml:3: workloads: only in mode: product" in msg
    assert "p.yaml:5: points[0].overrides.nope.x: profile 'mobile' has no key 'nope.x'" in msg
    path.write_text("name: p\nprecisions: [int8]\n")
    with pytest.raises(SweepError) as info:
        load_spec(path)
    assert "workloads: missing required key (mode: product)" in str(info.value)
    assert "profiles: missing required key (mode: product)" in str(info.value)


def test_override_key_missing_from_a_profile_unless_filtered(tmp_path):
    spec = {"name": "s", "workloads": ["mlperf_tiny_kws"], "precisions": ["int8"], "profiles": ["mobile", "systolic"],
            "overrides": {"systolic.rows": [64, 128]}}
    with pytest.raises(SweepError, match="overrides.systolic.rows: profile 'mobile' has no such key"):
        load_spec(spec)
    spec["filters"] = [{"skip": {"profile": "mobile"}}]
    assert len(generate_points(spec)) == 2


def test_shipped_specs_validate():
    for name in ("precision_x_profile", "systolic_sram_x_array", "llama_weight_only"):
        spec = load_spec(f"workloads/sweeps/{name}.yaml")
        assert spec.name == name
        assert generate_points(spec)
    assert len(generate_points("workloads/sweeps/precision_x_profile.yaml")) == 64
    assert len(generate_points("workloads/sweeps/systolic_sram_x_array.yaml")) == 36  # 3 arrays x 4 SRAM x 3


def test_values_listed_twice():
    spec = {"name": "d", "workloads": ["mlperf_tiny_kws", "mlperf_tiny_kws"], "precisions": ["int8"],
            "profiles": ["iot"], "overrides": {"clock_mhz": [100, 200, 100]}}
    with pytest.raises(SweepError) as info:
        load_spec(spec)
    assert "workloads[1]: 'mlperf_tiny_kws' is listed twice (first as workloads[0])" in str(info.value)
    assert "overrides.clock_mhz[2]: 100 is listed twice" in str(info.value)
