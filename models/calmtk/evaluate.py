"""Held-out evaluation of trained checkpoints, in PyTorch (the server has its own, issue 6).

BrierLM (docs/calm.md section 5) with the two-sample estimator under teacher forcing, for CALM
and for the AR baseline on the same targets: at every chunk boundary i >= 1 of a window, the
outcome is the next n tokens (n = 1..4) given all tokens before it. CALM draws two chunks from
its energy head; the AR model draws two 4-token rollouts at temperature 1. Also reports the
autoencoder's reconstruction accuracy.

    /usr/bin/python3 -m calmtk.evaluate --tokenizer models/runs/tokenizer.json --data models/data/eval.jsonl \
        --ae models/runs/ae/final --calm models/runs/calm/final --ar models/runs/ar/final
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from .data import Corpus
from .export import load_ar, load_autoencoder, load_calm
from .tokenizer import Tokenizer
from .train_ae import reconstruction

K = 4


def windows(corpus: Corpus, bos: int, block: int) -> list[np.ndarray]:
    out = []
    for doc in corpus.documents():
        seq = np.concatenate([[bos], doc]).astype(np.int64)
        for s in range(0, len(seq), block):
            w = seq[s : s + block]
            w = w[: len(w) - len(w) % K]
            if len(w) >= 2 * K:
                out.append(w)
    return out


def brier_terms(x1: torch.Tensor, x2: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """x1, x2, y [N, K] -> per position and n: 1{x1=y} + 1{x2=y} - 1{x1=x2} over the first n tokens."""
    out = []
    for n in range(1, K + 1):
        a = (x1[:, :n] == y[:, :n]).all(-1).float()
        b = (x2[:, :n] == y[:, :n]).all(-1).float()
        c = (x1[:, :n] == x2[:, :n]).all(-1).float()
        out.append((a + b - c).numpy())
    return np.stack(out, axis=1)


@torch.no_grad()
def calm_samples(calm, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    chunks = w.reshape(1, -1, K)
    hidden, _ = calm.backbone(chunks[:, :-1])
    h = hidden[0]
    z = calm.mlp_generator(h, calm.sample_noise((h.shape[0], 2)))  # [T, 2, l]
    x = calm.ae_model.decode(z.reshape(-1, z.shape[-1])).reshape(h.shape[0], 2, K)
    return x[:, 0], x[:, 1], chunks[0, 1:]


@torch.no_grad()
def ar_samples(ar, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    logits, cache = ar(w[None])
    starts = torch.arange(K, len(w), K)  # predict tokens starts..starts+3 from tokens < starts
    rows = torch.cat([starts, starts])  # two samples per position
    past_len = rows.clone()
    past = [(k.expand(len(rows), -1, -1, -1), v.expand(len(rows), -1, -1, -1)) for k, v in cache]
    probs = torch.softmax(logits[0, rows - 1], -1)
    drawn = torch.multinomial(probs, 1)
    for _ in range(K - 1):
        step_logits, _ = ar(drawn, past_len, past)
        drawn = torch.cat([drawn, torch.multinomial(torch.softmax(step_logits[:, -1], -1), 1)], dim=1)
    n = len(starts)
    targets = torch.stack([w[s : s + K] for s in starts.tolist()])
    return drawn[:n], drawn[n:], targets


def brier_lm(sample_fn, model, wins, seed: int) -> dict:
    torch.manual_seed(seed)
    terms = np.concatenate([brier_terms(*sample_fn(model, torch.from_numpy(w))) for w in wins])
    mean, se = terms.mean(0), terms.std(0, ddof=1) / math.sqrt(len(terms))
    out = {f"brier{n + 1}": float(mean[n]) for n in range(K)}
    out.update({f"brier{n + 1}_se": float(se[n]) for n in range(K)})
    out["brierlm"] = 100 * float(np.prod(np.clip(mean, 1e-12, None)) ** (1 / K))
    out["positions"] = int(len(terms))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--ae", type=Path)
    ap.add_argument("--calm", type=Path)
    ap.add_argument("--ar", type=Path)
    ap.add_argument("--block", type=int, default=256, help="window length in tokens (the training length)")
    ap.add_argument("--max-windows", type=int, default=0, help="evaluate only the first N windows (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = Tokenizer(args.tokenizer)
    pad, bos, eos = (tok.special[t] for t in ("<pad>", "<s>", "</s>"))
    corpus = Corpus.load(args.data, args.tokenizer)
    wins = windows(corpus, bos, args.block)
    if args.max_windows:
        wins = wins[: args.max_windows]
    report: dict = {"data": str(args.data), "windows": len(wins)}
    if args.ae:
        ae = load_autoencoder(args.ae)
        with torch.no_grad():
            report["reconstruction"] = reconstruction(ae, torch.from_numpy(corpus.chunks(K, eos, pad)))
    if args.calm:
        report["calm"] = brier_lm(calm_samples, load_calm(args.ae, args.calm), wins, args.seed)
    if args.ar:
        report["ar"] = brier_lm(ar_samples, load_ar(args.ar), wins, args.seed)
    if args.calm and args.ar:
        report["calm_over_ar"] = report["calm"]["brierlm"] / report["ar"]["brierlm"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
