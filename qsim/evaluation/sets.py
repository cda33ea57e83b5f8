"""Evaluation data as arrays: ``Dataset`` (inputs keyed by the model's input names, optional
labels) and the shipped sets an ``evaluation:`` block may name.

* ``digits``: the 540 held-out images of scikit-learn's digits split (``qsim.evaluation.digits``),
  input ``x`` (N, 1, 8, 8), labels 0..9; its calibration set is the training split (never the
  held-out images).
* ``minilm``: 128 template sentences (``qsim.evaluation.minilm.sentences``, seed 0) as ``ids`` and
  ``positions`` (int64, (N, seq)); no labels (metric: cosine with the float embedding); its
  calibration set is 64 other sentences. A graph built with ``host_lookup`` takes ``embed``
  instead: the lookups are done here, in float, as that graph expects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from qsim.errors import QsimError

MINILM_SENTENCES, MINILM_CALIBRATION = 128, 64


@dataclass(frozen=True)
class Dataset:
    inputs: Mapping[str, np.ndarray]  # input name -> (N, ...) array
    labels: np.ndarray | None = None
    # other input names the set can produce for a graph (minilm: "embed" for a host_lookup graph)
    derived: Mapping[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def take(self, start: int, stop: int) -> "Dataset":
        labels = None if self.labels is None else self.labels[start:stop]
        return Dataset({k: v[start:stop] for k, v in self.inputs.items()}, labels, self.derived)

    def for_inputs(self, names) -> dict[str, np.ndarray]:
        """Arrays for the graph inputs ``names`` (derived ones computed); names it lacks are left out."""
        out = {n: self.inputs[n] for n in names if n in self.inputs}
        for n in names:
            if n not in out and n in self.derived:
                out[n] = self.derived[n](self.inputs)
        return out

    def offers(self) -> list[str]:
        return sorted(set(self.inputs) | set(self.derived))


def _digits() -> tuple[Dataset, Dataset]:
    from qsim.evaluation.digits import load_digits_split

    try:
        x_tr, _, x_te, y_te = load_digits_split()
    except ImportError:
        raise QsimError("the digits set needs scikit-learn (pip install scikit-learn)") from None
    return Dataset({"x": x_te}, y_te), Dataset({"x": x_tr})


def _minilm() -> tuple[Dataset, Dataset]:
    from qsim.evaluation import minilm as M

    tok = M.tokenizer()
    ids = M.encode(tok, M.sentences(MINILM_SENTENCES + MINILM_CALIBRATION, seed=0, tok=tok))

    def embed(inputs):
        return M.host_feeds(inputs["ids"], M.load_weights())["embed"]

    def dataset(part: np.ndarray) -> Dataset:
        return Dataset(M.feeds(part), None, {"embed": embed})

    return dataset(ids[:MINILM_SENTENCES]), dataset(ids[MINILM_SENTENCES:])


# name -> () -> (evaluation set, its calibration set)
SHIPPED_SETS: dict[str, Callable[[], tuple[Dataset, Dataset]]] = {"digits": _digits, "minilm": _minilm}
CALIBRATION_NOTES = {"digits": "the training split (never the held-out images)",
                     "minilm": "other template sentences than the evaluated ones"}


def from_batches(result, what: str) -> Dataset:
    """A Dataset from what a data entry point returned: one dict of arrays or an iterable of them,
    optionally with ``labels``; batches are concatenated along axis 0."""
    batches = [result] if isinstance(result, Mapping) else result
    try:
        batches = list(batches)
    except TypeError:
        raise QsimError(f"{what} returned {type(result).__name__}; expected a dict of arrays or an iterable "
                        "of them") from None
    if not batches or not all(isinstance(b, Mapping) and b for b in batches):
        raise QsimError(f"{what} returned no batches (or a batch that is not a non-empty dict of arrays)")
    names = set(batches[0])
    for i, b in enumerate(batches):
        if set(b) != names:
            raise QsimError(f"{what}: batch {i} has keys {sorted(b)}, batch 0 has {sorted(names)}")
    try:
        arrays = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in names}
    except ValueError as exc:
        raise QsimError(f"{what}: batches do not concatenate ({exc})") from None
    return from_arrays(arrays, what)


def from_arrays(arrays: Mapping[str, np.ndarray], what: str) -> Dataset:
    labels = arrays.get("labels")
    inputs = {k: np.asarray(v) for k, v in arrays.items() if k != "labels"}
    if not inputs:
        raise QsimError(f"{what} holds no input arrays (only {sorted(arrays)})")
    counts = {k: (v.shape[0] if v.ndim else 0) for k, v in inputs.items()}
    if len(set(counts.values())) != 1 or 0 in counts.values():
        raise QsimError(f"{what}: inputs have different (or zero) sample counts: {counts}")
    n = next(iter(counts.values()))
    if labels is not None:
        labels = np.asarray(labels).reshape(-1) if np.ndim(labels) else np.asarray(labels).reshape(1)
        if len(labels) != n:
            raise QsimError(f"{what}: {len(labels)} labels for {n} samples")
    return Dataset(inputs, labels)
