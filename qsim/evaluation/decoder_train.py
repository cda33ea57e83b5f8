"""Training the byte-level decoder of ``qsim.evaluation.decoder`` with torch (CPU), and caching its
weights to an ``.npz`` file so that it is trained once. ``model(cfg, seed)`` is the torch module
(the graph's reference: the fp32 simulator must equal it within float tolerance)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from qsim.evaluation.decoder import EPS, VOCAB, Config, corpus, split


def model(cfg: Config, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d = cfg.hidden
            self.ln1, self.ln2 = nn.LayerNorm(d, eps=EPS), nn.LayerNorm(d, eps=EPS)
            self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(d, cfg.ffn), nn.Linear(cfg.ffn, d)

        def forward(self, x, mask):
            b, s, d = x.shape
            hd = d // cfg.heads
            h = self.ln1(x)
            q, k, v = (m(h).view(b, s, cfg.heads, hd).transpose(1, 2) for m in (self.q, self.k, self.v))
            att = (q @ k.transpose(-1, -2)) / hd ** 0.5
            att = torch.softmax(att.masked_fill(mask[:s, :s], float("-inf")), dim=-1)
            x = x + self.o((att @ v).transpose(1, 2).reshape(b, s, d))
            return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(VOCAB, cfg.hidden), nn.Embedding(cfg.max_positions, cfg.hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.layers))
            self.lnf = nn.LayerNorm(cfg.hidden, eps=EPS)
            self.head = nn.Linear(cfg.hidden, VOCAB, bias=False)
            n = cfg.max_positions
            self.register_buffer("mask", torch.triu(torch.ones(n, n, dtype=torch.bool), 1))

        def forward(self, ids):
            x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
            for blk in self.blocks:
                x = blk(x, self.mask)
            return self.head(self.lnf(x))

    return Decoder()


def export(net) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items() if k != "mask"}


def train(cfg: Config, steps: int = 800, batch: int = 24, seq: int = 64, lr: float = 3e-3, seed: int = 0,
          log=lambda line: print(line, file=sys.stderr)) -> dict[str, np.ndarray]:
    """AdamW with a cosine schedule on random windows of the training split."""
    import torch

    torch.set_num_threads(1)  # the machine is shared: one thread per process scales best
    net = model(cfg, seed)
    data = torch.from_numpy(split(corpus())[0])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for step in range(steps):
        at = torch.randint(0, len(data) - seq - 1, (batch,), generator=gen)
        win = torch.stack([data[i:i + seq + 1] for i in at.tolist()])
        loss = torch.nn.functional.cross_entropy(net(win[:, :-1]).reshape(-1, VOCAB), win[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"step {step}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)")
    return export(net.eval())


def cached_weights(path: str | Path, cfg: Config, **train_args) -> dict[str, np.ndarray]:
    """The trained weights from ``path`` if it exists (for this config), else trained and saved."""
    import inspect

    path = Path(path)
    defaults = {k: p.default for k, p in inspect.signature(train).parameters.items() if k not in ("cfg", "log")}
    key = f"{cfg}|{sorted({**defaults, **train_args}.items())}"
    if path.exists():
        with np.load(path) as f:
            if str(f["__key__"]) == key:
                return {k: f[k] for k in f.files if k != "__key__"}
    weights = train(cfg, **train_args)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, __key__=np.array(key), **weights)
    return weights
