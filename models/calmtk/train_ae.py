"""Train the CALM autoencoder on the corpus chunks (robust recipe of the paper).

    /usr/bin/python3 -m calmtk.train_ae --tokenizer models/runs/tokenizer.json \
        --train models/data/train.jsonl --eval models/data/eval.jsonl --out models/runs/ae --minutes 35
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from . import checkpoint
from .autoencoder import Autoencoder
from .config import AutoencoderConfig
from .data import Corpus
from .tokenizer import Tokenizer
from .trainer import add_train_args, settings_from_args, train


def reconstruction(ae: Autoencoder, chunks: torch.Tensor, batch: int = 4096) -> dict[str, float]:
    """Token and chunk-exact accuracy of decoder(argmax) on encoder means, PAD positions excluded."""
    tok_ok = tok_n = chunk_ok = 0
    for i in range(0, len(chunks), batch):
        ids = chunks[i : i + batch]
        pred = ae.decode(ae.encode(ids)[0])
        real = ids != 0
        tok_ok += ((pred == ids) & real).sum().item()
        tok_n += real.sum().item()
        chunk_ok += (pred == ids).all(-1).sum().item()
    return {"token_acc": tok_ok / tok_n, "chunk_acc": chunk_ok / len(chunks)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2, help="encoder layers (= decoder layers)")
    ap.add_argument("--batch", type=int, default=512, help="chunks per step")
    add_train_args(ap, lr=1e-3, minutes=35)
    args = ap.parse_args()

    tok = Tokenizer(args.tokenizer)
    pad, bos, eos = (tok.special[t] for t in ("<pad>", "<s>", "</s>"))
    cfg = AutoencoderConfig(
        vocab_size=tok.vocab_size, hidden_size=args.hidden, intermediate_size=args.intermediate, latent_size=args.latent,
        num_encoder_layers=args.layers, num_decoder_layers=args.layers, pad_token_id=pad, bos_token_id=bos, eos_token_id=eos,
    )
    torch.manual_seed(args.seed)
    ae = Autoencoder(cfg)
    for p in ae.parameters():
        if p.dim() >= 2:
            torch.nn.init.normal_(p, std=0.02)
    train_chunks = torch.from_numpy(Corpus.load(args.train, args.tokenizer).chunks(cfg.patch_size, eos, pad))
    eval_chunks = torch.from_numpy(Corpus.load(args.eval, args.tokenizer).chunks(cfg.patch_size, eos, pad))
    print(f"autoencoder {sum(p.numel() for p in ae.parameters()) / 1e6:.2f}M params; "
          f"{len(train_chunks)} train chunks, {len(eval_chunks)} eval chunks", flush=True)

    def step_fn(rng):
        idx = torch.from_numpy(rng.integers(0, len(train_chunks), size=args.batch))
        return ae.loss(train_chunks[idx].to(args.device), mask_id=pad)

    train(settings_from_args(args), ae, step_fn, lambda: reconstruction(ae, eval_chunks.to(args.device)),
          lambda d: checkpoint.save(ae, cfg, d), args.resume)


if __name__ == "__main__":
    main()
