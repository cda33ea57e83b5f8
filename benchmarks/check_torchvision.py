"""qsim against onnxruntime on torchvision's own architectures, through onnxruntime's own quantization
flow: ``torch.onnx.export`` -> ``quant_pre_process`` -> ``quantize_static`` (uint8 activations, int8
weights), then every logit of ``qsim.simulate`` compared with onnxruntime's (the README's "Checked on
torchvision's own models"). Random weights and Gaussian inputs: exactness does not depend on training.

Not in CI: torchvision is not a test dependency. Its wheel must match the pinned torch (2.13 ->
torchvision 0.28: ``pip install --no-deps torchvision==0.28.0``); where its compiled operators do not
load against the CPU torch, the script stubs ``torchvision._meta_registrations`` (only the detection
ops need them, no classifier does).

    python benchmarks/check_torchvision.py mobilenet_v3_small:qdq shufflenet_v2_x0_5:qoperator:160x192 \\
        densenet121:qdq:128x128:tensor [--workdir DIR]

Each spec is ``name:format[:HxW][:tensor][:static][:s8]`` (format qdq or qoperator; ``tensor``: per-tensor
weights; ``s8``: int8 activations, quantize_static's default (S8S8); ``static``: exported at batch 2 and pre-processed without onnxruntime's symbolic shape inference,
which fails on the transformers: ``vit_b_16:qdq:static``, ``swin_t:qdq:static``). Prints one line per
model: equal, the number of differing logits, or qsim's refusal.
"""
from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np

BATCH = 2  # images compared per model (1,000 logits each)


def _torchvision():
    try:
        import torchvision
    except RuntimeError:  # its compiled operators do not load against this torch
        sys.modules.pop("torchvision", None)
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    return torchvision


def quantized(name: str, fmt: str, hw: tuple[int, int], per_channel: bool, static: bool, s8: bool, work: Path) -> Path:
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    torch.manual_seed(0)
    model = getattr(_torchvision().models, name)(weights=None).eval()
    float_path, pre_path = work / f"{name}.onnx", work / f"{name}_pre.onnx"
    batch = BATCH if static else 1
    torch.onnx.export(model, torch.randn(batch, 3, *hw), str(float_path), input_names=["img"], output_names=["logits"],
                      opset_version=17, dynamo=False,
                      dynamic_axes=None if static else {"img": {0: "N"}, "logits": {0: "N"}})
    quant_pre_process(str(float_path), str(pre_path), skip_symbolic_shape=static)
    rng = np.random.default_rng(1)

    class Calibration(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{"img": rng.standard_normal((batch, 3, *hw)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.feeds, None)

    out = work / f"{name}_{fmt}_{'channel' if per_channel else 'tensor'}{'_s8' if s8 else ''}.onnx"
    quantize_static(str(pre_path), str(out), Calibration(),
                    quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                    activation_type=QuantType.QInt8 if s8 else QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel)
    return out


def compare(path: Path, hw: tuple[int, int]) -> str:
    import onnxruntime as ort

    import qsim

    x = np.random.default_rng(2).standard_normal((BATCH, 3, *hw)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"img": x})[0]
    try:
        got = qsim.simulate(path, {"img": x})["logits"]
    except qsim.QsimError as exc:
        return f"refused: {exc}"
    differing = int(np.sum(got != want))
    return "equal" if differing == 0 else f"{differing} of {want.size} logits differ"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+", help="name:format[:HxW][:tensor][:static][:s8], e.g. mobilenet_v3_small:qdq")
    ap.add_argument("--workdir", default="/tmp/qsim_check_torchvision")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # quantize_static's advice on pre-processing
    for spec in args.specs:
        name, fmt, *rest = spec.split(":")
        size = next((r for r in rest if "x" in r), "224x224")
        hw = tuple(int(v) for v in size.split("x"))
        path = quantized(name, fmt, hw, "tensor" not in rest, "static" in rest, "s8" in rest, work)
        print(f"{spec:<44} {compare(path, hw)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
