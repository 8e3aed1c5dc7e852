"""Draw text from a CALM checkpoint in PyTorch, to read what a training run writes.

T = 1 takes one head sample per chunk; T = 1/n (n = 2, 3, ...) uses the paper's batch
approximation (docs/calm.md section 4, Algorithm 2) over a pool of --pool head samples. The
server's samplers (src/sampling/) are the reference; this is a quick look during training.

    /usr/bin/python3 -m calmtk.sample --ae runs/recovered/calm-k4/ae --calm runs/calm-aux/final \
        --tokenizer bundles/calm-k4/tokenizer.json --prompt "And God said" --temperature 0.5
"""
from __future__ import annotations

import argparse
import collections
import math

import torch

from .export import load_calm
from .tokenizer import Tokenizer


def pick(chunks: list[tuple[int, ...]], n: int, g: torch.Generator) -> tuple[int, ...]:
    counts = collections.Counter(chunks)
    for m in range(n, 0, -1):
        cands = [(c, math.comb(k, m)) for c, k in counts.items() if k >= m]
        if cands:
            w = torch.tensor([float(x) for _, x in cands])
            return cands[int(torch.multinomial(w, 1, generator=g))][0]
    raise AssertionError


@torch.no_grad()
def generate(calm, ids: list[int], chunks: int, temperature: float, pool: int, seed: int) -> list[int]:
    k = calm.cfg.patch_size
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    ids = list(ids) + [calm.cfg.pad_token_id] * ((-len(ids)) % k)  # the official right-padding
    out: list[int] = []
    n = round(1 / temperature)
    if abs(1 / temperature - n) > 1e-9:
        raise ValueError("temperature must be 1/n")
    seq = torch.tensor(ids).reshape(1, -1, k)
    for _ in range(chunks):
        hidden, _ = calm.backbone(seq)
        h = hidden[0, -1:]
        s = 1 if n == 1 else pool
        z = calm.mlp_generator(h, calm.sample_noise((1, s)))[0]
        drawn = [tuple(c) for c in calm.ae_model.decode(z).tolist()]
        chunk = drawn[0] if n == 1 else pick(drawn, n, g)
        out += list(chunk)
        seq = torch.cat([seq, torch.tensor(chunk).reshape(1, 1, k)], dim=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ae", required=True)
    ap.add_argument("--calm", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--prompt", action="append", help="repeatable; default: a few corpus openings")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--pool", type=int, default=200)
    ap.add_argument("--chunks", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tok = Tokenizer(args.tokenizer)
    calm = load_calm(args.ae, args.calm)
    prompts = args.prompt or ["And God said", "The hacker", "In the beginning"]
    for i, p in enumerate(prompts):
        ids = [tok.special["<s>"]] + tok.encode(p)
        text = tok.decode(generate(calm, ids, args.chunks, args.temperature, args.pool, args.seed + i))
        print(f"[T={args.temperature:g}] {p!r} -> {text!r}")


if __name__ == "__main__":
    main()
