"""A small CNN trained on scikit-learn's bundled digits (8x8 grey images, 10 classes), as a qsim Graph.

Nothing is downloaded: the data ship with scikit-learn, the network is trained here with torch in a
few seconds (seeded, single thread, so the weights are the same on every run of one machine), and
its weights are written into a Graph built with ``add_node``:

    x (N,1,8,8) -> conv1 3x3 8 -> relu1 -> conv2 3x3 16 -> relu2 -> pool 2x2 -> flatten -> fc 10

``train_digits()`` returns a ``DigitsModel``: the trained float graph builder, the held-out split
and a calibration slice of the training split. ``digits_cnn(batch)`` is the trained graph, for the
workload ``workloads/digits_cnn.yaml`` (``model: {entry: qsim.evaluation.digits:digits_cnn}``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qsim.ir.graph import Graph


@dataclass(frozen=True)
class DigitsModel:
    weights: dict  # tensor name in the graph -> float32 array
    x_train: np.ndarray  # (N, 1, 8, 8) float32 in [0, 1]
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def graph(self, batch: int) -> Graph:
        return digits_graph(self.weights, batch)

    def calib_feeds(self, batch: int, batches: int = 1) -> list[dict]:
        """Calibration batches taken from the training split (never the held-out data)."""
        if batch * batches > len(self.x_train):
            raise ValueError(f"{batch * batches} calibration images requested, {len(self.x_train)} available")
        return [{"x": self.x_train[i * batch:(i + 1) * batch]} for i in range(batches)]


def load_digits_split(test_fraction: float = 0.3, seed: int = 0):
    """(x_train, y_train, x_test, y_test): images scaled to [0, 1], a stratified seeded split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return x_tr, y_tr, x_te, y_te


def train_digits(epochs: int = 30, seed: int = 0, batch: int = 64) -> DigitsModel:
    """Train the CNN with Adam on the training split; returns its weights and the data split."""
    import torch
    from torch import nn

    x_tr, y_tr, x_te, y_te = load_digits_split(seed=seed)
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic float sums, and no contention on a shared machine
    try:
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
    weights = {"conv1.weight": sd["0.weight"], "conv1.bias": sd["0.bias"], "conv2.weight": sd["2.weight"],
               "conv2.bias": sd["2.bias"], "fc.weight": sd["6.weight"], "fc.bias": sd["6.bias"]}
    return DigitsModel(weights, x_tr, y_tr, x_te, y_te)


@lru_cache(maxsize=4)
def _trained(epochs: int, seed: int) -> DigitsModel:
    return train_digits(epochs=epochs, seed=seed)


def digits_cnn(batch: int = 1, epochs: int = 12, seed: int = 0) -> Graph:
    """The trained CNN as a Graph at ``batch``: the entry point of the shipped ``digits_cnn``
    workload (trained once per process and kept; the held-out images are the ``digits`` set)."""
    return _trained(int(epochs), int(seed)).graph(int(batch))


def digits_graph(weights: dict, batch: int) -> Graph:
    """The CNN as a qsim Graph with ``weights`` (names as ``train_digits`` returns them)."""
    g = Graph("digits_cnn")
    g.add_input("x", (batch, 1, 8, 8))
    g.add_node("Conv", "conv1", ["x"], {"out_channels": 8, "kernel": 3, "pad": 1})
    g.add_node("Relu", "relu1", ["conv1"])
    g.add_node("Conv", "conv2", ["relu1"], {"out_channels": 16, "kernel": 3, "pad": 1})
    g.add_node("Relu", "relu2", ["conv2"])
    g.add_node("MaxPool", "pool", ["relu2"], {"kernel": 2})
    g.add_node("Flatten", "flatten", ["pool"])
    g.add_node("Gemm", "fc", ["flatten"], {"out_features": 10})
    g.mark_output("fc")
    for name, value in weights.items():
        if g.tensor(name).shape != value.shape:
            raise ValueError(f"weight {name!r}: shape {value.shape}, graph expects {g.tensor(name).shape}")
        g.constants[name] = value
    return g.validate()
