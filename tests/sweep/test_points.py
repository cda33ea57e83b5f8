"""Design points: product vs explicit points, filters, and stable ids."""
import pytest

from qsim.sweep import SweepError, generate_points, load_spec

from tests.sweep._specs import tiny


def test_product_order_and_axes():
    points = generate_points(tiny())
    assert len(points) == 24
    first = points[0].axes
    assert first == {"workload": "mlperf_tiny_kws", "precision": "int8", "profile": "iot", "batch": 1,
                     "memories.sram.capacity_kib": 256}
    assert points[1].axes["memories.sram.capacity_kib"] == 512  # overrides vary fastest
    assert [p.axes["workload"] for p in points[:12]] == ["mlperf_tiny_kws"] * 12
    assert len({p.point_id for p in points}) == 24


def test_explicit_points_fill_effective_values():
    spec = {"name": "pts", "mode": "points", "precisions": [{"label": "mixed", "default": "int8"}], "points": [
        {"workload": "mlperf_tiny_kws", "precision": "mixed", "profile": "iot", "batch": 2,
         "overrides": {"memories.sram.capacity_kib": 128}},
        {"workload": "mlperf_tiny_ad", "precision": "w4a8", "profile": "mobile"},
    ]}
    points = generate_points(spec)
    assert [p.axes for p in points] == [
        {"workload": "mlperf_tiny_kws", "precision": "mixed", "profile": "iot", "batch": 2,
         "memories.sram.capacity_kib": 128},
        {"workload": "mlperf_tiny_ad", "precision": "w4a8", "profile": "mobile", "batch": 1,
         "memories.sram.capacity_kib": 4096},  # the profile's own value, not an override
    ]
    assert points[1].overrides == {} and points[1].batch is None


def test_filters_skip_and_keep():
    skip = generate_points(tiny(filters=[{"skip": {"profile": "mobile", "precision": ["fp32", "mixed"]}}]))
    assert len(skip) == 24 - 8
    assert not any(p.axes["profile"] == "mobile" and p.axes["precision"] != "int8" for p in skip)
    query = "`memories.sram.capacity_kib` > 256 and workload != 'mlperf_tiny_ad'"
    keep = generate_points(tiny(filters=[{"keep": query}]))
    assert len(keep) == 6
    assert {p.axes["memories.sram.capacity_kib"] for p in keep} == {512}


def test_filter_errors_name_the_line(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("name: f\nworkloads: [mlperf_tiny_kws]\nprecisions: [int8]\nprofiles: [iot]\nfilters:\n"
                    "  - skip: {profile: mobil}\n  - keep: 'colour == 1'\n  - skip: {color: red}\n")
    with pytest.raises(SweepError) as info:
        load_spec(path)
    msg = str(info.value)
    assert "f.yaml:6: filters[0].skip.profile: 'mobil' is not a value of this axis (values: iot)" in msg
    assert "f.yaml:7: filters[1].keep: 'colour == 1': 'colour' is not an axis (axes: workload, precision" in msg
    assert "f.yaml:8: filters[2].skip.color: not an axis" in msg


def test_ids_are_stable_and_follow_the_plan():
    a, b = generate_points(tiny()), generate_points(tiny())
    assert [p.point_id for p in a] == [p.point_id for p in b]
    reversed_axes = generate_points(tiny(profiles=["mobile", "iot"]))
    assert {p.point_id for p in reversed_axes} == {p.point_id for p in a}  # identity is content, not position
    changed = tiny(precisions=["int8", "fp32", {"label": "mixed", "default": "int8"}])
    assert {p.point_id for p in generate_points(changed)} != {p.point_id for p in a}
