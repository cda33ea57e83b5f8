"""The ``model:`` section of a workload, checked for type, finiteness and range before anything is
built; every problem at once, as ``qsim.errors.Problem`` records (line, key, message).

Layer attributes are typed by name, whatever the op (a channel count is a positive integer, padding
is not negative); which op takes which attribute is checked when the layer is built, where an
unknown attribute is answered with the op's own list. Builder parameters are typed from the builder's
signature.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Mapping

from qsim.errors import Problem
from qsim.ir.builders import BUILDERS
from qsim.ir.registry import OPS
from qsim.schema import Bool, Enum, Int, ListOf, MapOf, Num, OneOrList, Record, Str
from qsim.yamlio import line_of

# A dimension, a batch or a count beyond the int32 range that runtimes store them in is a typo, and
# products of such dimensions overflow the int64 shape arithmetic.
DIM = Int(1, 2**31 - 1)
INPUT_SCHEMA = Record(required={"name": Str(), "shape": ListOf(DIM)},
                      optional={"dtype": Enum(("float32", "float16", "int64", "int32", "int8", "uint8"))})
SOURCES = ("builder", "onnx", "tflite", "layers", "entry")
_COUNT = DIM
LAYER_ATTRIBUTES = {
    "out_channels": _COUNT, "out_features": _COUNT, "groups": _COUNT, "heads": _COUNT, "kv_heads": _COUNT,
    "head_dim": _COUNT, "num_embeddings": _COUNT, "embedding_dim": _COUNT,
    "kernel": OneOrList(_COUNT), "stride": OneOrList(_COUNT), "dilation": OneOrList(_COUNT),
    "pad": OneOrList(Int(0)), "past": Int(0), "eps": Num(0, exclusive_min=True), "axis": Int(),
    "perm": ListOf(Int(0)), "shape": ListOf(Int(-1)),  # Reshape: -1 infers a dimension, 0 copies one
    "ceil_mode": Bool(), "count_include_pad": Bool(), "causal": Bool(), "kv_cache": Bool(),
}


@dataclass(frozen=True)
class _AttributeValue:
    """Any other attribute: a finite number, a string, true/false, or a list of them."""

    def check(self, value, path, line, errors):
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.check(item, f"{path}[{i}]", line, errors)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            Num().check(value, path, line, errors)
        elif not isinstance(value, (str, bool)):
            errors.append(Problem(f"expected a number, a string, true/false or a list, got {value!r}", line=line,
                                  key=path))


@dataclass(frozen=True)
class _Unchecked:
    def check(self, value, path, line, errors):
        pass


@dataclass(frozen=True)
class _OpName:
    """An op the registry knows, so that an unknown op is reported at its layer's line."""

    def check(self, value, path, line, errors):
        if not isinstance(value, str) or not value:
            Str().check(value, path, line, errors)
        elif value not in OPS:
            errors.append(Problem(f"unknown op {value!r}; known ops: {', '.join(sorted(OPS))}", line=line, key=path))


@dataclass(frozen=True)
class _Layer:

    def check(self, value, path, line, errors):
        if not isinstance(value, Mapping):
            errors.append(Problem(f"expected a layer (a mapping with name, op and inputs), got {value!r}", line=line,
                                  key=path))
            return
        line = getattr(value, "line", 0) or line
        for key in ("name", "op", "inputs"):
            if key not in value:
                errors.append(Problem("missing required key", line=line, key=f"{path}.{key}"))
        for key, item in value.items():
            LAYER_KEYS.get(key, _AttributeValue()).check(item, f"{path}.{key}", line_of(value, key, line), errors)


LAYER_KEYS = {"name": Str(), "op": _OpName(), "inputs": ListOf(Str(), non_empty=False), **LAYER_ATTRIBUTES}
MODEL_SCHEMA = Record(optional={
    "builder": Enum(tuple(sorted(BUILDERS))), "params": MapOf(_Unchecked(), non_empty=False),  # by signature, below
    "onnx": Str(), "tflite": Str(), "entry": Str(),  # entry: package.module:function(batch=..., **params) -> Graph
    "inputs": ListOf(INPUT_SCHEMA), "layers": ListOf(_Layer()), "outputs": ListOf(Str()),
})


def model_problems(data: Any) -> list[Problem]:
    """What is wrong with a workload's ``model`` section and its ``seq``, before anything is built."""
    if not isinstance(data, Mapping) or "model" not in data:
        return []  # the workload schema reports it
    model, line = data["model"], line_of(data, "model", 1)
    if not isinstance(model, Mapping):
        return [Problem(f"expected a mapping with builder, onnx, tflite or layers, got {model!r}", line=line,
                        key="model")]
    errors: list[Problem] = []
    MODEL_SCHEMA.check(model, "model", line, errors)
    sources = [key for key in SOURCES if key in model]
    if len(sources) != 1:
        given = f"{' and '.join(sources)} given" if sources else "none given"
        errors.append(Problem(f"give exactly one of builder, onnx, tflite, layers or entry ({given})", line=line,
                              key="model"))
    for key, needs in (("params", "builder"), ("inputs", "layers"), ("outputs", "layers")):
        if key in model and needs not in model and not (key == "params" and "entry" in model):
            errors.append(Problem(f"only with {needs}", line=line_of(model, key, line), key=f"model.{key}"))
    if "seq" in data and "builder" not in model and "entry" not in model:
        errors.append(Problem("only a builder takes a sequence length (a model given by layers or a file has its own "
                              "shapes)", line=line_of(data, "seq", line), key="seq"))
    if isinstance(model.get("params", {}), Mapping):
        errors += _builder_param_problems(data, model)
    if isinstance(model.get("layers"), list):
        errors += _duplicate_names(model)
    return errors + _precision_problems(data)


def _builder_param_problems(data: Mapping, model: Mapping) -> list[Problem]:
    fn = BUILDERS.get(model.get("builder")) if isinstance(model.get("builder"), str) else None
    signature = inspect.signature(fn).parameters if fn else {}
    errors: list[Problem] = []
    params = model.get("params") or {}
    for name, value in params.items():
        line = line_of(params, name, line_of(model, "params"))
        schema = _param_schema(signature[name]) if name in signature else _AttributeValue()
        schema.check(value, f"model.params.{name}", line, errors)
        if name in ("batch", "seq") and name in data:  # the top-level key would silently win
            errors.append(Problem(f"also given as {name} (line {line_of(data, name)}); give it once, as the top-level "
                                  f"{name}", line=line, key=f"model.params.{name}"))
    if "max_positions" in signature and "seq" in signature:  # a position table bounds the sequence
        seq = data.get("seq", params.get("seq", signature["seq"].default))
        limit = params.get("max_positions", signature["max_positions"].default)
        if isinstance(seq, int) and isinstance(limit, int) and seq > limit:
            where = line_of(data, "seq", 0) or line_of(params, "seq", line_of(data, "model"))
            errors.append(Problem(f"{seq} is beyond the model's {limit} positions (max_positions)", line=where,
                                  key="seq"))
    return errors


def _param_schema(param: inspect.Parameter):
    kind = str(param.annotation).replace(" | None", "")
    if kind == "int":  # a count; zero only where zero is the default (context)
        return Int(0 if param.default == 0 else 1, DIM.maximum)
    if kind == "float":
        return Num(0, exclusive_min=True)  # width multipliers
    if kind == "str":
        return Str()
    if kind == "bool":  # e.g. a builder's final ``softmax``
        return Bool()
    return _AttributeValue()


def _duplicate_names(model: Mapping) -> list[Problem]:
    """A later layer (or input) of the same name would silently replace the earlier one."""
    errors, seen = [], {}
    named = [("inputs", item) for item in model.get("inputs") or [] if isinstance(item, Mapping)]
    named += [("layers", item) for item in model["layers"] if isinstance(item, Mapping)]
    for section, item in named:
        name = item.get("name")
        if not isinstance(name, str):
            continue
        line = line_of(item, "name", getattr(item, "line", 0))
        if name in seen:
            errors.append(Problem(f"name {name!r} is used twice (first at line {seen[name]})", line=line,
                                  key=f"model.{section}"))
        else:
            seen[name] = line
    return errors


def _precision_problems(data: Mapping) -> list[Problem]:
    """The types in a ``{default, overrides}`` plan that parsing would trip over (its keys it checks)."""
    spec = data.get("precision")
    if not isinstance(spec, Mapping) or "weight" in spec or spec.get("overrides") is None:
        return []
    overrides, line = spec["overrides"], line_of(data, "precision", 1)
    if not isinstance(overrides, list):
        return [Problem(f"expected a list, got {overrides!r}", line=line_of(spec, "overrides", line),
                        key="precision.overrides")]
    errors: list[Problem] = []
    for i, item in enumerate(overrides):
        for key in ("name", "op") if isinstance(item, Mapping) else ():
            if key in item:
                Str().check(item[key], f"precision.overrides[{i}].{key}", line_of(item, key, line), errors)
    return errors
