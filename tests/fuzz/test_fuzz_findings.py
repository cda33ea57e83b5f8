"""What the loader fuzzing found, kept as plain regression tests: each input is a one-line
QsimError naming the key (each was another exception type or a silent acceptance)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qsim.errors import QsimError
from qsim.hw.profile import load_profile
from qsim.precision import parse_plan
from qsim.sweep.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]


def _edited(tmp_path: Path, src: str, edit) -> Path:
    tree = yaml.safe_load((ROOT / src).read_text())
    edit(tree)
    path = tmp_path / Path(src).name
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@pytest.mark.parametrize("key, value", [("energy", [1, 2]), ("stack", ["vela-ethos-u"])])
def test_profile_section_of_the_wrong_type(tmp_path, key, value):
    path = _edited(tmp_path, "hw_profiles/imx93.yaml", lambda t: t.__setitem__(key, value))
    with pytest.raises(QsimError, match=key):
        load_profile(path)


@pytest.mark.parametrize("value, words", [(5, "overrides: expected a list"),
                                          ([{"name": float("nan"), "precision": "fp16"}], "got nan"),
                                          ([{"op": 3, "precision": "fp16"}], "overrides[0].op")])
def test_precision_overrides_of_the_wrong_type(value, words):
    with pytest.raises(QsimError) as info:
        parse_plan({"default": "int8", "overrides": value})
    assert words in str(info.value)


@pytest.mark.parametrize("key", ["workloads", "profiles"])
def test_sweep_spec_name_longer_than_a_file_name(tmp_path, key):
    path = _edited(tmp_path, "workloads/sweeps/precision_x_profile.yaml", lambda t: t.__setitem__(key, ["n" * 5000]))
    with pytest.raises(QsimError) as info:
        load_spec(path)
    assert f"{key}[0]: a name of 5000 bytes" in str(info.value)
