"""Builders for standard models. ``BUILDERS`` maps a workload's ``builder:`` name to a function
returning a validated ``Graph``; keyword arguments come from the workload file."""
from __future__ import annotations

from typing import Any, Callable

from qsim.errors import WorkloadError
from qsim.ir.builders.mobilenet import mobilenet_v1, mobilenet_v2
from qsim.ir.builders.resnet import resnet8, resnet18, resnet34, resnet50
from qsim.ir.builders.tiny import ds_cnn_kws, fc_autoencoder
from qsim.ir.builders.transformer import bert, llama
from qsim.ir.graph import Graph


def _vww(batch: int = 1, image_size: int = 96, num_classes: int = 2, alpha: float = 0.25, softmax: bool = True) -> Graph:
    return mobilenet_v1(batch, image_size, num_classes, alpha, name="mlperf_tiny_vww", softmax=softmax)


BUILDERS: dict[str, Callable[..., Graph]] = {
    "resnet8": resnet8, "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
    "mobilenet_v1": mobilenet_v1, "mobilenet_v2": mobilenet_v2,
    "mlperf_tiny_kws": ds_cnn_kws, "mlperf_tiny_vww": _vww, "mlperf_tiny_ic": resnet8,
    "mlperf_tiny_ad": fc_autoencoder, "bert": bert, "llama": llama,
}


def build(name: str, **params: Any) -> Graph:
    try:
        fn = BUILDERS[name]
    except KeyError:
        raise WorkloadError(f"unknown builder {name!r}; known builders: {', '.join(sorted(BUILDERS))}") from None
    try:
        return fn(**params)
    except TypeError as exc:
        raise WorkloadError(f"builder {name!r}: {exc}") from None
