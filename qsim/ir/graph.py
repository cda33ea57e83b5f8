"""Graph IR: operators are nodes, tensors are edges.

``Graph`` holds a private ``networkx.DiGraph`` (it does not subclass it). Tensors are described by
``TensorSpec``; parameter tensors (weights, biases) and persistent state (a KV cache) are tensors
too, owned by one node, so the cost model and the simulator see every byte a node touches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Container, Iterable, Mapping

import networkx as nx
import numpy as np

from qsim.errors import GraphError
from qsim.ir.registry import Shape, get_op, numel


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: Shape
    dtype: str = "float32"
    kind: str = "activation"  # activation | weight | state

    @property
    def numel(self) -> int:
        return numel(self.shape)


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: tuple[str, ...]  # activation tensors consumed
    outputs: tuple[str, ...]  # activation tensors produced
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    weights: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # role -> tensor
    state: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # role -> tensor


class Graph:
    """A dataflow graph of registered ops. Build it with ``add_input``/``add_node``/``mark_output``."""

    def __init__(self, name: str):
        self.name = name
        self._g = nx.DiGraph()
        self._nodes: dict[str, Node] = {}
        self._tensors: dict[str, TensorSpec] = {}
        self._producer: dict[str, str] = {}
        self._consumers: dict[str, list[str]] = {}
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.constants: dict[str, np.ndarray] = {}  # values of weight tensors, when known
        self.quant_params: dict[str, Any] = {}  # tensor name -> quantization parameters (importers)
        self._order: list[Node] | None = None
        self.derived: dict = {}  # memoized facts derived from the structure (counts); cleared on change
        # the model file's own inputs and outputs (``qsim.ir.model_io.ModelIO``), set by the TFLite importer
        # (whose files are NHWC): evaluation data in the file's layout is moved into the IR's with it
        self.model_io = None

    # -- building -------------------------------------------------------------------------
    def add_input(self, name: str, shape: Iterable[int], dtype: str = "float32") -> TensorSpec:
        self._check_new_tensor(name, f"graph input {name!r}")
        spec = TensorSpec(name, tuple(int(d) for d in shape), dtype)
        self._tensors[name] = spec
        self.inputs.append(name)
        return spec

    def add_weight(self, name: str, shape: Iterable[int], dtype: str = "float32") -> TensorSpec:
        """Declare a parameter tensor before the node that uses it (importers: initializers)."""
        self._check_new_tensor(name, f"weight {name!r}")
        spec = TensorSpec(name, tuple(int(d) for d in shape), dtype, "weight")
        self._tensors[name] = spec
        return spec

    def add_node(
        self,
        op: str,
        name: str,
        inputs: Iterable[str],
        attrs: Mapping[str, Any] | None = None,
        outputs: Iterable[str] | None = None,
        weights: Mapping[str, str] | None = None,
        dtype: str = "float32",
    ) -> Node:
        """Add a node; infer its output, weight and state shapes through the op registry.

        ``weights`` maps a role to an existing tensor name (importers); roles not given get
        tensors named ``{name}.{role}``. Returns the node; its first output is ``node.outputs[0]``.
        Everything is checked before the graph changes: a call that raises leaves it as it was.
        """
        if name in self._nodes:
            raise GraphError(f"node {name!r}: a node with that name already exists")
        opdef = get_op(op)
        inputs = tuple(inputs)
        attrs = dict(attrs or {})
        for t in inputs:
            if t not in self._tensors:
                raise GraphError(f"node {name!r} ({op}): input tensor {t!r} is not defined")
        try:
            inferred = opdef.infer([self._tensors[t].shape for t in inputs], attrs)
        except KeyError as exc:
            raise GraphError(f"node {name!r} ({op}): missing attribute {exc}") from None
        except (ValueError, TypeError, IndexError) as exc:
            shapes = ", ".join(str(self._tensors[t].shape) for t in inputs)
            raise GraphError(f"node {name!r} ({op}) with inputs {shapes}: {exc}") from None
        outs = tuple(outputs) if outputs is not None else self._default_outputs(name, len(inferred.outputs))
        if len(outs) != len(inferred.outputs):
            raise GraphError(f"node {name!r} ({op}): {len(outs)} output names for {len(inferred.outputs)} outputs")
        given = dict(weights or {})
        unknown = set(given) - set(inferred.weights)
        if unknown:
            raise GraphError(f"node {name!r} ({op}): unexpected weight roles {sorted(unknown)}")
        new: dict[str, TensorSpec] = {}  # every tensor this node adds or retypes, checked first
        for t, shape in zip(outs, inferred.outputs):
            self._check_new_tensor(t, f"node {name!r} ({op}) output", new)
            new[t] = TensorSpec(t, tuple(shape), dtype)
        weight_names = {role: self._param_tensor(name, op, role, tuple(shape), given.get(role), "weight", new)
                        for role, shape in inferred.weights.items()}
        state_names = {role: self._param_tensor(name, op, role, tuple(shape), None, "state", new)
                       for role, shape in inferred.state.items()}
        # -- nothing above changed the graph; from here on nothing can fail --
        for t, spec in new.items():
            self._tensors[t] = spec
            if t in self.inputs and spec.kind != "activation":  # a graph input (weightless export) becomes a weight
                self.inputs.remove(t)
        for t in outs:
            self._producer[t] = name
        node = Node(name, op, inputs, outs, MappingProxyType(attrs),
                    MappingProxyType(weight_names), MappingProxyType(state_names))
        self._nodes[name] = node
        self.derived.clear()
        self._g.add_node(name)
        for t in inputs:
            self._consumers.setdefault(t, []).append(name)
            if t in self._producer:
                self._g.add_edge(self._producer[t], name, tensor=t)
        self._order = None
        return node

    def mark_output(self, tensor: str) -> None:
        if tensor not in self._tensors:
            raise GraphError(f"graph output {tensor!r} is not a defined tensor")
        self.outputs.append(tensor)

    def _default_outputs(self, name: str, n: int) -> tuple[str, ...]:
        return (name,) if n == 1 else tuple(f"{name}:{i}" for i in range(n))

    def _check_new_tensor(self, tensor: str, what: str, pending: Container[str] = ()) -> None:
        if tensor in self._tensors or tensor in pending:
            raise GraphError(f"{what}: tensor {tensor!r} is already defined")

    def _param_tensor(self, node: str, op: str, role: str, shape: Shape, given: str | None, kind: str,
                      new: dict[str, TensorSpec]) -> str:
        """The name of a node's parameter tensor; records in ``new`` what must be added or retyped."""
        if given is not None:
            spec = self._tensors.get(given)
            if spec is None:
                raise GraphError(f"node {node!r} ({op}): {role} tensor {given!r} is not defined")
            if spec.shape != shape:
                raise GraphError(f"node {node!r} ({op}): {role} {given!r} has shape {spec.shape}, expected {shape}")
            if spec.kind != kind:  # a graph input (weightless export) becomes a weight
                new[given] = TensorSpec(given, shape, spec.dtype, kind)
            return given
        tensor = f"{node}.{role}"
        self._check_new_tensor(tensor, f"node {node!r} ({op}) {role}", new)
        new[tensor] = TensorSpec(tensor, shape, "float32", kind)
        return tensor

    # -- reading ----------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise GraphError(f"graph {self.name!r} has no node {name!r}") from None

    def tensor(self, name: str) -> TensorSpec:
        try:
            return self._tensors[name]
        except KeyError:
            raise GraphError(f"graph {self.name!r} has no tensor {name!r}") from None

    @property
    def tensors(self) -> Mapping[str, TensorSpec]:
        return MappingProxyType(self._tensors)

    def producer(self, tensor: str) -> Node | None:
        name = self._producer.get(tensor)
        return self._nodes[name] if name else None

    def consumers(self, tensor: str) -> list[Node]:
        return [self._nodes[n] for n in self._consumers.get(tensor, [])]

    def nodes(self) -> list[Node]:
        """Nodes in a deterministic topological order (insertion order breaks ties)."""
        if self._order is None:
            rank = {n: i for i, n in enumerate(self._nodes)}
            try:
                names = list(nx.lexicographical_topological_sort(self._g, key=rank.__getitem__))
            except nx.NetworkXUnfeasible:
                cycle = nx.find_cycle(self._g)
                raise GraphError(f"graph {self.name!r} has a cycle through nodes "
                                 f"{' -> '.join(u for u, _ in cycle)}") from None
            self._order = [self._nodes[n] for n in names]
        return list(self._order)

    def __len__(self) -> int:
        return len(self._nodes)

    def validate(self) -> "Graph":
        """Check the whole graph: outputs exist, no cycles, every activation is used or an output."""
        if not self.outputs:
            raise GraphError(f"graph {self.name!r} has no outputs")
        self.nodes()
        for node in self._nodes.values():
            for t in node.outputs:
                if t not in self._consumers and t not in self.outputs:
                    raise GraphError(f"node {node.name!r} ({node.op}): output {t!r} is dangling "
                                     "(no consumer and not a graph output)")
        for t in self.inputs:
            if t not in self._consumers and t not in self.outputs:
                raise GraphError(f"graph input {t!r} is not consumed by any node")
        return self

    def summary(self) -> dict[str, int]:
        from qsim.ir.counts import graph_counts

        return graph_counts(self)
