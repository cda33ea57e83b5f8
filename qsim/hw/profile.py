"""Hardware profiles: parse -> validate -> build frozen dataclasses.

A profile is data. ``load_profile`` reads YAML strictly (duplicate keys are errors), validates it
against ``PROFILE_SCHEMA`` plus cross-field rules, collecting every problem as
``file:line: key: problem``, and only then builds the ``Profile``. Units live in key names.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from qsim.errors import Problem, ProfileError, QsimError
from qsim.files import path_exists, short_path
from qsim.hw import energy
from qsim.hw.stack_profile import PROFILE_STACK_KEYS, Stack, build_stack, stack_errors
from qsim.numerics.policies import PolicyName
from qsim.precision import EMULATION_ORDER
from qsim.hw.systolic import SYSTOLIC_SCHEMA, Systolic, build_systolic, systolic_errors
from qsim.schema import Bool, Enum, Int, ListOf, MapOf, Num, Record, Str, problems
from qsim.shipped import shipped_dir
from qsim.yamlio import LocatedDict, line_of, load_yaml

COMPUTE_CLASSES = tuple(EMULATION_ORDER)
REQUANT_POLICIES = tuple(p.value for p in PolicyName)
# In the units of the key names no real value comes near 1e12 or 1e-6 (the largest are capacities:
# 80 GiB is 8.4e7 KiB); beyond them unit conversions (capacity_kib * 1024) and the cost model's
# divisions (MACs / (clock x MACs per cycle x efficiency)) can overflow to infinity.
LARGEST, SMALLEST = 1e12, 1e-6
POSITIVE = Num(0, LARGEST, exclusive_min=True, smallest=SMALLEST)
NON_NEGATIVE = Num(0, LARGEST, smallest=SMALLEST)
FRACTION = Num(0, 1, exclusive_min=True, smallest=SMALLEST)

MEMORY_SCHEMA = Record(
    required={"capacity_kib": POSITIVE, "bandwidth_gbps": POSITIVE, "read_pj_per_byte": NON_NEGATIVE,
              "write_pj_per_byte": NON_NEGATIVE, "on_chip": Bool()},
)
PROFILE_SCHEMA = Record(
    required={
        "name": Str(), "kind": Enum(("mcu", "cpu", "npu", "dsp", "gpu", "systolic")), "clock_mhz": POSITIVE,
        "compute": Record(
            required={"macs_per_cycle": MapOf(POSITIVE, COMPUTE_CLASSES),
                      "efficiency": MapOf(FRACTION, COMPUTE_CLASSES),
                      "vector_ops_per_cycle": POSITIVE, "accumulator_bits": Int(8, 64)},
            optional={"units": Int(1), "tiles": ListOf(ListOf(Int(1), length=2)),
                      "depthwise_efficiency": MapOf(FRACTION, COMPUTE_CLASSES),
                      "vector_overlaps_matrix": Bool(),
                      "min_latency_us": MapOf(NON_NEGATIVE, COMPUTE_CLASSES)},
        ),
        "memories": MapOf(MEMORY_SCHEMA),
        "placement": Record(required={"weights": Str(), "activations": Str(), "buffer": Str()}),
        "energy": Record(required={"static_mw": NON_NEGATIVE},
                         optional={"process_nm": POSITIVE, "mac_pj": MapOf(NON_NEGATIVE, COMPUTE_CLASSES),
                                   "vector_op_pj": NON_NEGATIVE}),
        "dispatch_overhead_us": NON_NEGATIVE,
    },
    optional={
        "description": Str(),
        "invoke_overhead_us": NON_NEGATIVE,
        # measured per-element cost of ops whose runtime kernel is not a vector loop (LRN's pow)
        "op_ns_per_element": MapOf(POSITIVE),
        "requant_policy": Enum(REQUANT_POLICIES),
        "systolic": SYSTOLIC_SCHEMA,
        **PROFILE_STACK_KEYS,  # the software stack modelled (qsim.hw.stack_profile)
    },
)


@dataclass(frozen=True)
class Memory:
    name: str
    capacity_bytes: int
    bandwidth_bytes_per_s: float
    read_pj_per_byte: float
    write_pj_per_byte: float
    on_chip: bool


@dataclass(frozen=True)
class Compute:
    macs_per_cycle: Mapping[str, float]  # peak dense MACs per cycle, whole chip, per compute class
    efficiency: Mapping[str, float]  # achievable fraction of that peak on large matrix work
    vector_ops_per_cycle: float
    accumulator_bits: int
    units: int = 1  # parallel units that take whole output tiles (GPU SMs): wave quantization
    tiles: tuple[tuple[int, int], ...] = ((1, 1),)  # output tile shapes a library can pick from
    min_latency: Mapping[str, float] = field(default_factory=dict)  # s; shortest matrix kernel per class
    # Depthwise convolutions reuse no input across output channels: many targets run them far
    # below their dense-conv efficiency. Classes not listed use ``efficiency``.
    depthwise_efficiency: Mapping[str, float] = field(default_factory=dict)
    # An NPU's output stage (bias, activation, requantization) runs beside its MAC array, so a
    # node's compute time is the larger of the two; on a CPU or MCU core they add up.
    vector_overlaps_matrix: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    kind: str
    clock_hz: float
    compute: Compute
    memories: Mapping[str, Memory]
    weights_in: str
    activations_in: str
    buffer: str
    mac_pj: Mapping[str, float]
    vector_op_pj: float
    static_w: float
    dispatch_s: float
    description: str = ""
    invoke_s: float = 0.0  # once per inference: host -> accelerator hand-off, firmware start
    op_s_per_element: Mapping[str, float] = field(default_factory=dict)  # replaces vector-op time
    requant_policy: PolicyName | None = None
    systolic: Systolic | None = None
    source: str = ""
    stack: Stack | None = None  # the runtime modelled: fusion, launch, per-class efficiency, validation

    def memory(self, name: str) -> Memory:
        return self.memories[name]


def _cross_field_errors(data: Mapping[str, Any]) -> list[Problem]:
    """Rules a per-key schema cannot express: names that must refer to each other."""
    errors = []
    compute, energy = data.get("compute") or {}, data.get("energy") or {}
    energy = energy if isinstance(energy, Mapping) else {}  # a wrong type is the schema's problem
    if isinstance(energy, Mapping) and "process_nm" not in energy:
        for key in ("mac_pj", "vector_op_pj"):
            if key not in energy:
                errors.append(Problem("missing (give it, or process_nm to take it from the energy table in "
                                      "qsim.hw.energy)", line=line_of(data, "energy"), key=f"energy.{key}"))
    peak = compute.get("macs_per_cycle") if isinstance(compute, Mapping) else None
    if isinstance(peak, Mapping):
        for key, table in (("efficiency", compute.get("efficiency")), ("mac_pj", energy.get("mac_pj"))):
            owner = compute if key == "efficiency" else energy
            section = "compute" if key == "efficiency" else "energy"
            if isinstance(table, Mapping) and not (key == "mac_pj" and "process_nm" in energy):
                missing = [c for c in peak if c not in table]
                if missing:
                    errors.append(Problem(f"no value for {', '.join(missing)} (listed in compute.macs_per_cycle)",
                                          line=line_of(owner, key), key=f"{section}.{key}"))
    per_op = data.get("op_ns_per_element")
    if isinstance(per_op, Mapping):
        from qsim.ir.registry import OPS
        import qsim.ir.ops  # noqa: F401  (fills OPS)

        for op in per_op:
            if op not in OPS:
                errors.append(Problem(f"unknown op; known: {', '.join(sorted(OPS))}", line=line_of(per_op, op),
                                      key=f"op_ns_per_element.{op}"))
    memories = data.get("memories")
    placement = data.get("placement")
    if isinstance(memories, Mapping) and isinstance(placement, Mapping):
        for role, name in placement.items():
            if isinstance(name, str) and name not in memories:
                errors.append(Problem(f"{name!r} is not a memory (defined: {', '.join(memories)})",
                                      line=line_of(placement, role), key=f"placement.{role}"))
        buf = memories.get(placement.get("buffer")) if isinstance(placement.get("buffer"), str) else None
        if isinstance(buf, Mapping) and buf.get("on_chip") is False:
            errors.append(Problem(f"{placement['buffer']!r} must be an on-chip memory",
                                  line=line_of(placement, "buffer"), key="placement.buffer"))
    return errors + systolic_errors(data) + stack_errors(data)


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """Return a copy with dotted-path values replaced: ``{"memories.sram.capacity_kib": 512}``."""
    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node, dict) or key not in node:
                raise ProfileError(f"override {dotted!r}: {key!r} is not in the profile")
            node = node[key]
        if not isinstance(node, dict) or leaf not in node:
            raise ProfileError(f"override {dotted!r}: {leaf!r} is not in the profile")
        node[leaf] = value
    return data


def profile_problems(data: Any) -> list[Problem]:
    """Every problem of a profile's data: its schema, then the rules across fields."""
    return problems(data, PROFILE_SCHEMA) + (_cross_field_errors(data) if isinstance(data, Mapping) else [])


def check_profile_data(data: Any, source: str) -> None:
    errors = profile_problems(data)
    if errors:
        raise ProfileError(file=source, problems=errors)


def build_profile(data: Mapping[str, Any], source: str = "<profile>") -> Profile:
    check_profile_data(data, source)
    c, e = data["compute"], data["energy"]
    memories = {
        name: Memory(name, int(m["capacity_kib"] * 1024), m["bandwidth_gbps"] * 1e9, m["read_pj_per_byte"],
                     m["write_pj_per_byte"], m["on_chip"])
        for name, m in data["memories"].items()
    }
    mac, vec = dict(e.get("mac_pj") or {}), e.get("vector_op_pj")
    if "process_nm" in e:  # the shared energy table fills what the file does not state
        for unit in c["macs_per_cycle"]:
            mac.setdefault(unit, energy.mac_pj(unit, e["process_nm"]))
        vec = energy.vector_op_pj(e["process_nm"]) if vec is None else vec
    return Profile(
        name=data["name"], kind=data["kind"], clock_hz=data["clock_mhz"] * 1e6,
        compute=Compute(MappingProxyType(dict(c["macs_per_cycle"])), MappingProxyType(dict(c["efficiency"])),
                        c["vector_ops_per_cycle"], c["accumulator_bits"], c.get("units", 1),
                        tuple(tuple(t) for t in c.get("tiles", [[1, 1]])),
                        MappingProxyType({k: v / 1e6 for k, v in (c.get("min_latency_us") or {}).items()}),
                        MappingProxyType(dict(c.get("depthwise_efficiency") or {})),
                        bool(c.get("vector_overlaps_matrix", False))),
        memories=MappingProxyType(memories),
        weights_in=data["placement"]["weights"], activations_in=data["placement"]["activations"],
        buffer=data["placement"]["buffer"],
        mac_pj=MappingProxyType(mac), vector_op_pj=vec, static_w=e["static_mw"] / 1e3,
        dispatch_s=data["dispatch_overhead_us"] / 1e6, description=data.get("description", ""),
        invoke_s=data.get("invoke_overhead_us", 0) / 1e6,
        op_s_per_element=MappingProxyType({op: ns * 1e-9 for op, ns in (data.get("op_ns_per_element") or {}).items()}),
        requant_policy=PolicyName(data["requant_policy"]) if data.get("requant_policy") else None,
        systolic=build_systolic(data.get("systolic"), memories), source=source,
        stack=build_stack(data),
    )


PROFILE_DIR = shipped_dir("hw_profiles")


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """A path as given, or a shipped profile's name (``iot`` -> hw_profiles/iot.yaml)."""
    path = Path(name_or_path)
    if path_exists(path) or path.suffix in (".yaml", ".yml"):
        return path
    shipped = PROFILE_DIR / f"{name_or_path}.yaml"
    if path_exists(shipped):
        return shipped
    known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
    raise QsimError(f"no profile file {short_path(path)!r} and no shipped profile of that name (shipped: {known})")


def load_profile(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> Profile:
    """Load, validate and build a profile; ``overrides`` replace dotted keys before validation."""
    path = resolve_profile_path(name_or_path)
    try:
        data = load_yaml(path, check=profile_problems)  # duplicate keys and schema problems in one error
    except QsimError as exc:
        raise exc.retyped(ProfileError) from None
    if overrides:
        data = apply_overrides(data, overrides)
    return build_profile(data, str(path))
