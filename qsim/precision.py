"""Precision plans: which number format each node uses for weights, activations and accumulators,
and (optionally) which requantization policy its integer pipeline follows.

The plan is the one object that both the cost model and the simulator consume, so a sweep over
precision is a sweep over plans. It holds format objects (``qsim.numerics.formats``); strings are
turned into formats once, here. Spelling (CLI ``--precision`` and workload YAML):

* a uniform format: ``fp32 tf32 fp16 bf16 fp8 (= fp8_e4m3) fp8_e5m2 int16 int8 int4 int2 mxfp8 ...``
  (any integer width int2..int32 / uint2..uint32);
* a weight/activation mix ``wXaY``: ``w8a8 w4a8 w2a8`` (integer activations), ``w8a16 w4a16``
  (weight-only quantization: the 16-bit activations are fp16, as in LLM deployment);
* explicit fields: ``weight=int4,activation=fp16,accumulator=fp32,policy=tflite-reference`` (or a
  YAML mapping with the same keys);
* dynamic activations (``dynamic=per_tensor|per_token`` among the fields, or a suffix: ``w8a8-dynamic``,
  ``w8a8-dynamic-per-token``): the matrix ops' input activations are quantized at run time from
  their own min and max, per tensor as onnxruntime's ``quantize_dynamic`` (uint8, asymmetric) or per
  token (one scale and zero point per row of the last axis) as LLM runtimes; 8-bit activations only.
  The cost model charges the min/max pass (one more read of the input, two compares per element;
  ``qsim.cost.dynamic``); the simulator rewrites the graph as ``quantize_dynamic`` would
  (``qsim.sim.dynamic_graph``).

A format that no stage can handle is refused here: fp6/fp4 exist only as MX element types, and
integers wider than 32 bits are not a plan format. Every integer width int2..int16 / uint2..uint16
runs end to end (cost model, ``quantize_graph``, the integer executor: sub-byte codes are held in
int8 / uint8). The simulator cannot run tf32, MX, or integer weights / activations wider than 16
bits on a float model: ``check_simulable`` refuses them when the simulator parses a plan, before
any calibration runs; the cost model takes them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Mapping

from qsim.errors import WorkloadError
from qsim.numerics.formats import (BF16, FP8_E4M3, FP8_E5M2, FP16, FP32, TF32, Format, FloatFormat, IntFormat,
                                   MXFormat, get_format)
from qsim.numerics.policies import PolicyName, policy_name

# Where a profile has no unit for a compute class, the next wider class that emulates it.
EMULATION_ORDER = {
    "int2": ["int4", "int8", "int16", "fp32"], "int4": ["int8", "int16", "fp32"], "int8": ["int16", "fp32"],
    "int16": ["int32", "fp32"], "int32": ["fp32"], "fp4": ["fp6", "fp8", "fp16", "bf16", "fp32"],
    "fp6": ["fp8", "fp16", "bf16", "fp32"], "fp8": ["fp16", "bf16", "fp32"], "fp16": ["fp32"],
    "bf16": ["fp32"], "tf32": ["fp32"], "fp32": [],
}
# Float element formats a plan may name alone (fp6/fp4 only inside MX blocks).
PLAN_FLOATS = (FP32, TF32, FP16, BF16, FP8_E4M3, FP8_E5M2)
MIX_ACTIVATION = {"8": "int8", "16": "fp16", "4": "int4"}
MIX_WEIGHT = {"8": "int8", "4": "int4", "3": "int3", "2": "int2", "16": "fp16"}
_FIELDS = ("weight", "activation", "accumulator", "policy", "dynamic")


class Dynamic(Enum):
    """Run-time (dynamic) activation quantization: the granularity of its scale and zero point."""
    PER_TENSOR = "per_tensor"
    PER_TOKEN = "per_token"


_DYNAMIC_SUFFIXES = {"-dynamic-per-token": Dynamic.PER_TOKEN, "-dynamic": Dynamic.PER_TENSOR}


def plan_format(name) -> Format:
    """A format a precision plan may name (a name, an alias, or a format object)."""
    fmt = get_format(name)
    if isinstance(fmt, IntFormat) and fmt.bits > 32:
        raise WorkloadError(f"format {fmt.name!r}: precision plans take integers of 2..32 bits")
    if isinstance(fmt, FloatFormat) and fmt not in PLAN_FLOATS:
        raise WorkloadError(f"format {fmt.name!r} exists only as an MX element type; use an MX format "
                            f"(mxfp6, mxfp4 ...) or one of {', '.join(f.name for f in PLAN_FLOATS)}")
    return fmt


@dataclass(frozen=True)
class LayerPrecision:
    weight: Format
    activation: Format
    accumulator: Format
    policy: PolicyName | None = None  # the requantization policy; None: the simulator's default
    dynamic: Dynamic | None = None  # activations quantized at run time (None: static, calibrated)

    @property
    def name(self) -> str:
        base = self.weight.name if self.weight == self.activation else \
            f"w:{self.weight.name}/a:{self.activation.name}"
        base += f"/dynamic:{self.dynamic.value}" if self.dynamic else ""
        return base + (f"@{self.policy.value}" if self.policy else "")

    @property
    def compute(self) -> str:
        """The matrix-unit class that runs this layer's MACs."""
        if self.activation.is_float:
            return self.activation.compute_class  # weights are dequantized to the activation type
        if self.weight.is_float:
            return self.weight.compute_class
        return max(self.weight, self.activation, key=lambda f: f.storage_bits).compute_class


def _default_accumulator(weight: Format, activation: Format) -> Format:
    return FP32 if weight.is_float or activation.is_float else IntFormat(32)


def layer_precision(weight, activation, accumulator=None, policy=None, dynamic=None) -> LayerPrecision:
    w, a = plan_format(weight), plan_format(activation)
    acc = plan_format(accumulator) if accumulator else _default_accumulator(w, a)
    if (w.is_float or a.is_float) and not acc.is_float:
        raise WorkloadError(f"accumulator {accumulator!r}: with weights {w.name} and activations {a.name} the "
                            "products are floats, so the sum is too; use a float accumulator (fp32, fp16 or bf16)")
    return LayerPrecision(w, a, acc, policy_name(policy) if policy else None, _dynamic(dynamic, w, a))


def _dynamic(spec, weight: Format, activation: Format) -> Dynamic | None:
    if spec is None or isinstance(spec, Dynamic):
        dyn = spec
    else:
        try:
            dyn = Dynamic(str(spec).strip().lower().replace("-", "_"))
        except ValueError:
            raise WorkloadError(f"dynamic: {spec!r} is not one of per_tensor, per_token") from None
    if dyn is not None and not (isinstance(activation, IntFormat) and activation.bits == 8
                                and isinstance(weight, IntFormat) and weight.bits <= 8):
        raise WorkloadError(f"dynamic {dyn.value} activations take 8-bit integer activations and weights of "
                            f"2..8 bits, got weights {weight.name} and activations {activation.name}")
    return dyn


def parse_precision(spec: Any) -> LayerPrecision:
    """A precision from a string (``int8``, ``w4a16``, ``weight=int4,activation=fp16``) or a mapping."""
    if isinstance(spec, LayerPrecision):
        return spec
    if isinstance(spec, Mapping):
        unknown = set(spec) - set(_FIELDS)
        if unknown or "weight" not in spec or "activation" not in spec:
            raise WorkloadError(f"precision mapping needs 'weight' and 'activation' (and optionally "
                                f"'accumulator', 'policy'); got keys {sorted(spec)}")
        return layer_precision(spec["weight"], spec["activation"], spec.get("accumulator"), spec.get("policy"),
                               spec.get("dynamic"))
    text = str(spec).strip().lower()
    for suffix, dyn in _DYNAMIC_SUFFIXES.items():
        if text.endswith(suffix) and "=" not in text:
            base = parse_precision(text[:-len(suffix)])
            return replace(base, dynamic=_dynamic(dyn, base.weight, base.activation))
    if "=" in text:
        fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
        short = {"w": "weight", "a": "activation", "acc": "accumulator"}
        return parse_precision({short.get(k.strip(), k.strip()): v.strip() for k, v in fields.items()})
    if text.startswith("w") and "a" in text:
        w, a = text[1:].split("a", 1)
        if w in MIX_WEIGHT and a in MIX_ACTIVATION:
            return layer_precision(MIX_WEIGHT[w], MIX_ACTIVATION[a])
    try:
        return layer_precision(text, text)
    except WorkloadError as exc:
        raise WorkloadError(f"unknown precision {spec!r} ({exc}); use a format (fp32 tf32 fp16 bf16 fp8 "
                            "fp8_e5m2 int2..int32 uint2..uint32 mxfp8 mxfp6 mxfp4 mxint8), a mix such as "
                            "w8a8 w4a8 w2a8 w8a16 w4a16, or weight=FMT,activation=FMT[,accumulator=FMT]"
                            "[,policy=NAME][,dynamic=per_tensor|per_token]; a -dynamic or "
                            "-dynamic-per-token suffix quantizes activations at run time") from None


@dataclass(frozen=True)
class PrecisionPlan:
    """A default precision plus ordered overrides; the last matching override wins.

    An override matches a node by ``name`` (exact) or ``op`` (op type)."""

    default: LayerPrecision
    overrides: tuple[tuple[Mapping[str, str], LayerPrecision], ...] = field(default_factory=tuple)
    recipes: tuple = ()  # qsim.recipes.RecipeCall, applied by qsim.recipes.apply in order

    def for_node(self, node) -> LayerPrecision:
        chosen = self.default
        for match, prec in self.overrides:
            if match.get("name", node.name) == node.name and match.get("op", node.op) == node.op:
                chosen = prec
        return chosen

    def precisions(self) -> list[LayerPrecision]:
        return [self.default, *(p for _, p in self.overrides)]

    @property
    def policies(self) -> set[PolicyName]:
        """The requantization policies the plan names (none: the simulator's default)."""
        return {p.policy for p in self.precisions() if p.policy is not None}

    @property
    def name(self) -> str:
        return (self.default.name + (f"+{len(self.overrides)} overrides" if self.overrides else "")
                + "".join(f"+{r.name}" for r in self.recipes))

    @classmethod
    def uniform(cls, spec: Any) -> "PrecisionPlan":
        return cls(parse_precision(spec))


def parse_plan(spec: Any, where: str = "precision") -> PrecisionPlan:
    """A plan from a string (uniform) or ``{default: ..., overrides: [{name|op: ..., precision: ...}]}``;
    ``plan`` is another spelling of ``default``, and ``recipes`` a list of ``qsim.recipes``."""
    if isinstance(spec, PrecisionPlan):
        return spec
    if not isinstance(spec, Mapping) or "weight" in spec:  # a string or one {weight, activation} mapping
        return PrecisionPlan.uniform(spec)
    unknown = set(spec) - {"default", "overrides", "plan", "recipes"}
    if unknown:
        raise WorkloadError(f"{where}: unknown keys {sorted(unknown)}; expected default (or plan), overrides, "
                            "recipes")
    if "plan" in spec or "recipes" in spec:
        return _plan_with_recipes(spec, where)
    overrides = []
    if not isinstance(spec.get("overrides") or [], list):
        raise WorkloadError(f"{where}.overrides: expected a list of {{name|op: ..., precision: ...}}")
    for i, item in enumerate(spec.get("overrides") or []):
        if not isinstance(item, Mapping) or "precision" not in item or not ({"name", "op"} & set(item)):
            raise WorkloadError(f"{where}.overrides[{i}]: needs 'precision' and 'name' or 'op'")
        extra = set(item) - {"name", "op", "precision"}
        if extra:
            raise WorkloadError(f"{where}.overrides[{i}]: unknown keys {sorted(extra)}")
        wrong = [k for k in ("name", "op") if k in item and not isinstance(item[k], str)]
        if wrong:  # str() would turn 5, .nan or a list into a pattern that silently matches nothing
            raise WorkloadError(f"{where}.overrides[{i}].{wrong[0]}: expected a layer name or op type (a string), "
                                f"got {item[wrong[0]]!r}")
        match = {k: item[k] for k in ("name", "op") if k in item}
        overrides.append((match, parse_precision(item["precision"])))
    return PrecisionPlan(parse_precision(spec.get("default", "fp32")), tuple(overrides))


def _plan_with_recipes(spec: Mapping, where: str) -> PrecisionPlan:
    from dataclasses import replace

    from qsim.recipes import parse_recipes

    if "plan" in spec and "default" in spec:
        raise WorkloadError(f"{where}: give the default precision once, as plan or as default")
    rest = {k: v for k, v in spec.items() if k in ("default", "overrides")}
    if "plan" in spec:
        rest["default"] = spec["plan"]
    return replace(parse_plan(rest, where), recipes=parse_recipes(spec.get("recipes"), f"{where}.recipes"))


def check_simulable(plan: PrecisionPlan) -> PrecisionPlan:
    """Refuse, before any work, a plan whose formats the simulator cannot run on a float model."""
    if len(plan.policies) > 1:
        raise WorkloadError(f"the plan names several requantization policies ({', '.join(sorted(plan.policies))}); "
                            "the integer executor runs one policy per model")
    for prec in plan.precisions():
        for fmt in (prec.weight, prec.activation):
            if fmt == TF32:  # costed by the cost model, but its rounding is not simulated: say so
                raise WorkloadError("the simulator does not model tf32 (matrix inputs rounded to a 10-bit "
                                    "mantissa); use fp32 or fp16/bf16")
            if isinstance(fmt, MXFormat):
                raise WorkloadError(f"quantize_graph does not support MX formats ({fmt.name}); the cost "
                                    "model does")
            if isinstance(fmt, IntFormat) and fmt.bits > 16:  # the integer kernels take 8- and 16-bit codes
                raise WorkloadError(f"the simulator runs integer weights and activations of 2..16 bits; "
                                    f"{fmt.name} is costed only")
    return plan


def precision_spec(prec: LayerPrecision) -> Any:
    """The shortest spelling that ``parse_precision`` reads back to ``prec``."""
    if prec.dynamic is None and layer_precision(prec.weight, prec.weight) == prec:
        return prec.weight.name
    spec = {"weight": prec.weight.name, "activation": prec.activation.name, "accumulator": prec.accumulator.name}
    spec = {**spec, "dynamic": prec.dynamic.value} if prec.dynamic else spec
    return {**spec, "policy": prec.policy.value} if prec.policy else spec


def plan_spec(plan: PrecisionPlan) -> Any:
    """A YAML-ready form of a plan that ``parse_plan`` reads back to an equal plan."""
    if not plan.overrides and not plan.recipes:
        return precision_spec(plan.default)
    spec = {"default": precision_spec(plan.default)}
    if plan.overrides:
        spec["overrides"] = [{**dict(match), "precision": precision_spec(prec)} for match, prec in plan.overrides]
    return {**spec, "recipes": [r.spec() for r in plan.recipes]} if plan.recipes else spec
