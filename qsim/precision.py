"""Precision plans: which number format each node uses for weights, activations and accumulators.

The plan is the one object that both the cost model and the simulator consume, so a sweep over
precision is a sweep over plans. Spelling (CLI ``--precision`` and workload YAML):

* a uniform format: ``fp32 tf32 fp16 bf16 fp8 (= fp8_e4m3) fp8_e5m2 int16 int8 int4 ...``;
* a weight/activation mix ``wXaY``: ``w8a8 w4a8`` (integer activations), ``w8a16 w4a16``
  (weight-only quantization: the 16-bit activations are fp16, as in LLM deployment);
* explicit fields: ``weight=int4,activation=fp16,accumulator=fp32`` (or a YAML mapping).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from qsim.errors import WorkloadError

# Storage bits per element. MX formats add one shared 8-bit scale per 32-element block (OCP MX v1.0).
FORMAT_BITS: dict[str, float] = {
    "fp32": 32, "tf32": 32, "fp16": 16, "bf16": 16, "fp8_e4m3": 8, "fp8_e5m2": 8,
    "int32": 32, "int16": 16, "int8": 8, "int4": 4, "int2": 2, "uint8": 8, "uint4": 4,
    "mxfp8": 8 + 8 / 32, "mxfp6": 6 + 8 / 32, "mxfp4": 4 + 8 / 32, "mxint8": 8 + 8 / 32,
}
ALIASES = {"fp8": "fp8_e4m3", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16",
           "float8e4m3fn": "fp8_e4m3", "float8e5m2": "fp8_e5m2"}
FLOAT_FORMATS = {"fp32", "tf32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "mxfp8", "mxfp6", "mxfp4"}
# The matrix-unit class that executes each element format (MX formats run on their element type).
COMPUTE_CLASS = {"fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "bf16": "bf16", "fp8_e4m3": "fp8",
                 "fp8_e5m2": "fp8", "mxfp8": "fp8", "mxfp6": "fp6", "mxfp4": "fp4", "int32": "int32",
                 "int16": "int16", "int8": "int8", "uint8": "int8", "mxint8": "int8", "int4": "int4",
                 "uint4": "int4", "int2": "int2"}
# Where a profile has no unit for a class, the next wider class that emulates it.
EMULATION_ORDER = {
    "int2": ["int4", "int8", "int16", "fp32"], "int4": ["int8", "int16", "fp32"], "int8": ["int16", "fp32"],
    "int16": ["int32", "fp32"], "int32": ["fp32"], "fp4": ["fp6", "fp8", "fp16", "bf16", "fp32"],
    "fp6": ["fp8", "fp16", "bf16", "fp32"], "fp8": ["fp16", "bf16", "fp32"], "fp16": ["fp32"],
    "bf16": ["fp32"], "tf32": ["fp32"], "fp32": [],
}
UNIFORM = {"fp32", "tf32", "fp16", "bf16", "fp8", "fp8_e4m3", "fp8_e5m2", "int16", "int8", "int4",
           "mxfp8", "mxfp6", "mxfp4", "mxint8"}
MIX_ACTIVATION = {"8": "int8", "16": "fp16", "4": "int4"}
MIX_WEIGHT = {"8": "int8", "4": "int4", "2": "int2", "16": "fp16"}


def canonical_format(name: str) -> str:
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in FORMAT_BITS:
        raise WorkloadError(f"unknown number format {name!r}; known: {', '.join(sorted(FORMAT_BITS))}")
    return key


def is_float(fmt: str) -> bool:
    return fmt in FLOAT_FORMATS


@dataclass(frozen=True)
class LayerPrecision:
    weight: str
    activation: str
    accumulator: str

    @property
    def name(self) -> str:
        if self.weight == self.activation:
            return self.weight
        return f"w:{self.weight}/a:{self.activation}"

    @property
    def compute(self) -> str:
        """The matrix-unit class that runs this layer's MACs."""
        if is_float(self.activation):
            return COMPUTE_CLASS[self.activation]  # weights are dequantized to the activation type
        if is_float(self.weight):
            return COMPUTE_CLASS[self.weight]
        wider = max(self.weight, self.activation, key=lambda f: FORMAT_BITS[f])
        return COMPUTE_CLASS[wider]


def _default_accumulator(weight: str, activation: str) -> str:
    return "fp32" if is_float(weight) or is_float(activation) else "int32"


def layer_precision(weight: str, activation: str, accumulator: str | None = None) -> LayerPrecision:
    w, a = canonical_format(weight), canonical_format(activation)
    acc = canonical_format(accumulator) if accumulator else _default_accumulator(w, a)
    if (is_float(w) or is_float(a)) and not is_float(acc):
        raise WorkloadError(f"accumulator {accumulator!r}: with weights {w} and activations {a} the products are "
                            "floats, so the sum is too; use a float accumulator (fp32, fp16 or bf16)")
    return LayerPrecision(w, a, acc)


def parse_precision(spec: Any) -> LayerPrecision:
    """A precision from a string (``int8``, ``w4a16``, ``weight=int4,activation=fp16``) or a mapping."""
    if isinstance(spec, LayerPrecision):
        return spec
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"weight", "activation", "accumulator"}
        if unknown or "weight" not in spec or "activation" not in spec:
            raise WorkloadError(f"precision mapping needs 'weight' and 'activation' (and optionally "
                                f"'accumulator'); got keys {sorted(spec)}")
        return layer_precision(spec["weight"], spec["activation"], spec.get("accumulator"))
    text = str(spec).strip().lower()
    if text in UNIFORM:
        return layer_precision(text, text)
    if "=" in text:
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        short = {"w": "weight", "a": "activation", "acc": "accumulator"}
        return parse_precision({short.get(k.strip(), k.strip()): v.strip() for k, v in fields.items()})
    if text.startswith("w") and "a" in text:
        w, a = text[1:].split("a", 1)
        if w in MIX_WEIGHT and a in MIX_ACTIVATION:
            return layer_precision(MIX_WEIGHT[w], MIX_ACTIVATION[a])
    raise WorkloadError(f"unknown precision {spec!r}; use one of {', '.join(sorted(UNIFORM))}, a mix "
                        "such as w8a8 w4a8 w8a16 w4a16, or weight=FMT,activation=FMT[,accumulator=FMT]")


@dataclass(frozen=True)
class PrecisionPlan:
    """A default precision plus ordered overrides; the last matching override wins.

    An override matches a node by ``name`` (exact) or ``op`` (op type)."""

    default: LayerPrecision
    overrides: tuple[tuple[Mapping[str, str], LayerPrecision], ...] = field(default_factory=tuple)

    def for_node(self, node) -> LayerPrecision:
        chosen = self.default
        for match, prec in self.overrides:
            if match.get("name", node.name) == node.name and match.get("op", node.op) == node.op:
                chosen = prec
        return chosen

    @property
    def name(self) -> str:
        return self.default.name + (f"+{len(self.overrides)} overrides" if self.overrides else "")

    @classmethod
    def uniform(cls, spec: Any) -> "PrecisionPlan":
        return cls(parse_precision(spec))


def parse_plan(spec: Any, where: str = "precision") -> PrecisionPlan:
    """A plan from a string (uniform) or ``{default: ..., overrides: [{name|op: ..., precision: ...}]}``."""
    if isinstance(spec, PrecisionPlan):
        return spec
    if not isinstance(spec, Mapping) or "weight" in spec:  # a string or one {weight, activation} mapping
        return PrecisionPlan.uniform(spec)
    unknown = set(spec) - {"default", "overrides"}
    if unknown:
        raise WorkloadError(f"{where}: unknown keys {sorted(unknown)}; expected default, overrides")
    overrides = []
    for i, item in enumerate(spec.get("overrides") or []):
        if not isinstance(item, Mapping) or "precision" not in item or not ({"name", "op"} & set(item)):
            raise WorkloadError(f"{where}.overrides[{i}]: needs 'precision' and 'name' or 'op'")
        extra = set(item) - {"name", "op", "precision"}
        if extra:
            raise WorkloadError(f"{where}.overrides[{i}]: unknown keys {sorted(extra)}")
        match = {k: str(item[k]) for k in ("name", "op") if k in item}
        overrides.append((match, parse_precision(item["precision"])))
    return PrecisionPlan(parse_precision(spec.get("default", "fp32")), tuple(overrides))


def precision_spec(prec: LayerPrecision) -> Any:
    """The shortest spelling that ``parse_precision`` reads back to ``prec``."""
    uniform = layer_precision(prec.weight, prec.weight)
    if uniform == prec:
        return prec.weight
    return {"weight": prec.weight, "activation": prec.activation, "accumulator": prec.accumulator}


def plan_spec(plan: PrecisionPlan) -> Any:
    """A YAML-ready form of a plan that ``parse_plan`` reads back to an equal plan."""
    if not plan.overrides:
        return precision_spec(plan.default)
    return {"default": precision_spec(plan.default),
            "overrides": [{**dict(match), "precision": precision_spec(prec)} for match, prec in plan.overrides]}
