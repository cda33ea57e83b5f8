"""The shared energy table against its anchors (Horowitz 45 nm, Jouppi 7 nm) and scaling rules."""
import pytest

from qsim.errors import ProfileError
from qsim.hw.energy import mac_pj, vector_op_pj
from qsim.hw.profile import PROFILE_DIR, load_profile
from qsim.yamlio import load_yaml
from qsim.hw.profile import build_profile


@pytest.mark.parametrize("unit,nm,expected", [
    ("int8", 45, 0.2 + 0.1),                   # Horowitz: int8 mult + int32 add
    ("fp16", 45, 1.1 + 0.9),                   # fp16 mult + fp32 add
    ("fp32", 45, 3.7 + 0.9),
    ("int16", 45, 0.2 * 4 + 0.1),              # bits-squared rule
    ("int4", 45, 0.2 / 4 + 0.1),
    ("bf16", 45, 1.1 * (8 / 11) ** 2 + 0.9),   # mantissa-squared rule
    ("int8", 7, 0.07 + 0.1 * 0.35),            # Jouppi 7 nm mult, add scaled like the int mult
    ("fp16", 7, 0.34 + 0.9 * 1.31 / 3.7),
    ("fp32", 7, 1.31 + 0.9 * 1.31 / 3.7),
])
def test_anchors_and_rules(unit, nm, expected):
    assert mac_pj(unit, nm) == pytest.approx(expected)


def test_scaling_is_monotonic_between_nodes():
    assert mac_pj("int8", 45) > mac_pj("int8", 28) > mac_pj("int8", 16) > mac_pj("int8", 7)
    assert vector_op_pj(7) == pytest.approx(0.9 * 1.31 / 3.7)


def test_profiles_take_energy_from_the_table():
    cloud = load_profile("cloud")
    assert cloud.mac_pj["int8"] == pytest.approx(mac_pj("int8", 5))


def test_energy_needs_table_or_explicit_values():
    data = load_yaml(PROFILE_DIR / "iot.yaml")
    del data["energy"]["process_nm"]
    with pytest.raises(ProfileError, match=r"energy.mac_pj: missing \(give it, or process_nm"):
        build_profile(data, "iot.yaml")
