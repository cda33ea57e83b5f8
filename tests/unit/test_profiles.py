"""Hardware profile loading: every class of error, all reported at once with file, line and key."""
from pathlib import Path

import pytest

from qsim.errors import ProfileError
from qsim.hw.profile import PROFILE_DIR, apply_overrides, load_profile
from qsim.yamlio import load_yaml

GOOD = (PROFILE_DIR / "iot.yaml").read_text()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
def test_shipped_profiles_load(name):
    p = load_profile(name)
    assert p.name == name
    assert p.memories[p.buffer].on_chip


def test_every_number_in_shipped_profiles_has_a_source_comment():
    for path in PROFILE_DIR.glob("*.yaml"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if ":" in code and code.split(":", 1)[1].strip()[:1].isdigit():
                assert "#" in line, f"{path.name}:{i}: number without a source comment: {line.strip()}"


def test_duplicate_key_names_both_lines(tmp_path):
    text = GOOD.replace("clock_mhz: 480", "clock_mhz: 480\nclock_mhz: 400")
    with pytest.raises(ProfileError, match=r"p.yaml:\d+: clock_mhz: duplicate key \(first at line \d+\)"):
        load_profile(_write(tmp_path, text))


def test_all_problems_reported_at_once_with_lines(tmp_path):
    text = (GOOD.replace("clock_mhz: 480", "clock_ghz: 0.48")                      # wrong unit -> unknown + missing
                .replace("capacity_kib: 512 ", "capacity_kib: -512 ")               # impossible value
                .replace("bandwidth_gbps: 1.92            # 64-bit", "bandwidth_gbps: 0   # 64-bit")  # zero bandwidth
                .replace("accumulator_bits: 32", "accumulator_bits: \"32 bits\"")    # wrong type
                .replace("  weights: flash", "  weights: nand")                       # bad reference
                .replace("    int8: 0.4184 ", "    int8: 1.5 ")                        # efficiency > 1
                .replace("dispatch_overhead_us: 5", "dispatch_overhead_s: 5"))        # unknown + missing
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    msg = str(info.value)
    lines = {l.split(":")[0]: l for l in GOOD.splitlines()}
    expected = [
        r"clock_ghz: unknown key \(did you mean 'clock_mhz'\? units are part of key names\)",
        r"clock_mhz: missing required key",
        r"memories.sram.capacity_kib: must be > 0, got -512",
        r"memories.sram.bandwidth_gbps: must be > 0, got 0",
        r"compute.accumulator_bits: expected an integer, got '32 bits'",
        r"placement.weights: 'nand' is not a memory",
        r"compute.efficiency.int8: must be <= 1, got 1.5",
        r"dispatch_overhead_s: unknown key",
        r"dispatch_overhead_us: missing required key",
    ]
    import re
    for pattern in expected:
        assert re.search(rf"p.yaml:\d+: {pattern}", msg), (pattern, msg)
    assert "9 problem(s)" in msg
    # the line number points at the offending key
    assert re.search(r"p.yaml:(\d+): memories.sram.capacity_kib", msg).group(1) == str(
        text.splitlines().index(next(l for l in text.splitlines() if "capacity_kib: -512" in l)) + 1)


def test_string_with_unit_gets_a_hint(tmp_path):
    path = _write(tmp_path, GOOD.replace("clock_mhz: 480", 'clock_mhz: "480 MHz"'))
    with pytest.raises(ProfileError, match=r"clock_mhz: expected a number, got '480 MHz' \(the unit is in the key name: mhz\)"):
        load_profile(path)


def test_missing_section_and_bad_yaml(tmp_path):
    with pytest.raises(ProfileError, match=r"energy: missing required key"):
        load_profile(_write(tmp_path, GOOD.split("energy:")[0] + "dispatch_overhead_us: 5\n"))
    with pytest.raises(ProfileError, match=r"p.yaml:\d+: invalid YAML"):
        load_profile(_write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(ProfileError, match=r"expected a mapping"):
        load_profile(_write(tmp_path, "- just a list\n"))


def test_efficiency_missing_for_a_unit(tmp_path):
    path = _write(tmp_path, GOOD.replace("    fp32: 0.5                       # assumption: load/FMA", "    # "))
    with pytest.raises(ProfileError, match=r"compute.efficiency: no value for fp32"):
        load_profile(path)


def test_unknown_profile_name_lists_shipped():
    shipped = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
    assert "cloud, imx93, iot, mobile, systolic" in shipped
    with pytest.raises(Exception, match=f"shipped: {shipped}"):
        load_profile("nosuch")


def test_overrides_replace_values_and_are_validated():
    p = load_profile("iot", {"memories.sram.capacity_kib": 1024})
    assert p.memories["sram"].capacity_bytes == 1024 * 1024
    with pytest.raises(ProfileError, match="must be > 0"):
        load_profile("iot", {"memories.sram.capacity_kib": 0})
    with pytest.raises(ProfileError, match="'dram' is not in the profile"):
        apply_overrides(load_yaml(PROFILE_DIR / "iot.yaml"), {"memories.dram.capacity_kib": 1})


def test_requant_policy_names_match_the_numerics_registry(tmp_path):
    from qsim.hw.profile import REQUANT_POLICIES
    from qsim.numerics.policies import POLICIES

    assert set(REQUANT_POLICIES) == set(POLICIES)
    with pytest.raises(ProfileError, match=r"requant_policy: 'cmsis_nn' is not one of"):
        load_profile(_write(tmp_path, GOOD.replace("requant_policy: cmsis-nn", "requant_policy: cmsis_nn")))


def test_problems_are_records_with_file_line_and_key(tmp_path):
    text = GOOD.replace("clock_mhz: 480", "clock_mhz: -1").replace("  weights: flash", "  weights: nand")
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    lines = text.splitlines()
    found = {p.key: p for p in info.value.problems}
    assert set(found) == {"clock_mhz", "placement.weights"}
    assert found["clock_mhz"].file == str(path) and found["clock_mhz"].message == "must be > 0, got -1"
    assert found["clock_mhz"].line == next(i for i, l in enumerate(lines, 1) if l.startswith("clock_mhz"))
    assert found["placement.weights"].line == next(i for i, l in enumerate(lines, 1) if "weights: nand" in l)
    assert str(found["clock_mhz"]) == f"{path}:{found['clock_mhz'].line}: clock_mhz: must be > 0, got -1"


SYSTOLIC = (PROFILE_DIR / "systolic.yaml").read_text()


def test_systolic_section_needs_its_memories(tmp_path):
    text = (SYSTOLIC.replace("  dram: weight_dram ", "  dram: hbm ")
                    .replace("  filter_sram_kib: 256 ", "  filter_sram_kib: 0 ")
                    .replace("  ofmap_sram_kib: 1024 ", "  # "))
    with pytest.raises(ProfileError) as info:
        load_profile(_write(tmp_path, text))
    msg = str(info.value)
    assert "3 problem(s)" in msg
    assert "systolic.dram: 'hbm' is not a memory (defined: unified_buffer, weight_dram)" in msg
    assert "systolic.filter_sram_kib: must be > 0, got 0" in msg
    assert "systolic.ofmap_sram_kib: missing required key" in msg


def test_systolic_sram_is_a_profile_override():
    p = load_profile("systolic", {"systolic.ifmap_sram_kib": 512, "systolic.dram": "unified_buffer"})
    assert p.systolic.ifmap_sram_kib == 512 and p.systolic.dram_bytes_per_s == 358e9
