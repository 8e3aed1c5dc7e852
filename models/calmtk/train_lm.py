"""Train a language model on the corpus: CALM (energy head, frozen autoencoder) or the AR baseline.

Both share the backbone code and sizes; give them the same --minutes for a fair comparison.

    /usr/bin/python3 -m calmtk.train_lm calm --ae models/runs/ae/final --tokenizer models/runs/tokenizer.json \
        --train models/data/train.jsonl --eval models/data/eval.jsonl --out models/runs/calm --minutes 60
    /usr/bin/python3 -m calmtk.train_lm ar --tokenizer models/runs/tokenizer.json \
        --train models/data/train.jsonl --eval models/data/eval.jsonl --out models/runs/ar --minutes 60
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint
from .ar import ARModel
from .calm import CALM
from .config import BackboneConfig
from .data import Corpus, random_blocks
from .export import load_autoencoder
from .tokenizer import Tokenizer
from .trainer import add_train_args, settings_from_args, train


def init_weights(model: nn.Module, std: float = 0.02) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["calm", "ar"])
    ap.add_argument("--ae", type=Path, help="autoencoder checkpoint directory (calm only)")
    ap.add_argument("--tokenizer", type=Path, required=True)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--eval", type=Path, required=True)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=704)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--block", type=int, default=256, help="tokens per training sequence (a multiple of K)")
    ap.add_argument("--batch", type=int, default=16, help="sequences per step")
    add_train_args(ap, lr=1e-3, minutes=60)
    args = ap.parse_args()

    tok = Tokenizer(args.tokenizer)
    pad, bos, eos = (tok.special[t] for t in ("<pad>", "<s>", "</s>"))
    torch.manual_seed(args.seed)
    common = dict(
        vocab_size=tok.vocab_size, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.heads,
        max_position_embeddings=2048, pad_token_id=pad, bos_token_id=bos, eos_token_id=eos,
    )
    if args.kind == "calm":
        if args.ae is None:
            ap.error("calm needs --ae")
        ae = load_autoencoder(args.ae)
        cfg = BackboneConfig(**common, patch_size=ae.cfg.patch_size, latent_size=ae.cfg.latent_size)
        model: nn.Module = CALM(cfg, ae)
        init_weights(model.transformer)
        init_weights(model.embed_proj)
        init_weights(model.mlp_generator)
        nn.init.zeros_(model.mlp_generator.final_layer.linears[-1].weight)
        nn.init.zeros_(model.mlp_generator.final_layer.linears[-1].bias)
        assert args.block % cfg.patch_size == 0
    else:
        cfg = BackboneConfig(**common)
        model = ARModel(cfg)
        init_weights(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    train_stream = Corpus.load(args.train, args.tokenizer).stream(bos)
    eval_stream = Corpus.load(args.eval, args.tokenizer).stream(bos)
    print(f"{args.kind}: {trainable / 1e6:.2f}M trainable params; {len(train_stream)} train tokens", flush=True)
    # One extra chunk (CALM) or token (AR) of input gives `block` predicted tokens per sequence.
    extra = cfg.patch_size if args.kind == "calm" else 1
    eval_rng = np.random.default_rng(1234)
    eval_batches = [torch.from_numpy(random_blocks(eval_stream, args.block + extra, args.batch, eval_rng)) for _ in range(8)]

    def step_fn(rng):
        return model.loss(torch.from_numpy(random_blocks(train_stream, args.block + extra, args.batch, rng)).to(args.device))

    def eval_fn():
        g = torch.get_rng_state()
        torch.manual_seed(0)
        losses = [model.loss(b.to(args.device))[0].item() for b in eval_batches]
        torch.set_rng_state(g)
        return {"eval_loss": float(np.mean(losses))}

    def save_fn(directory: Path):
        extra_cfg = {"model_type": "energy" if args.kind == "calm" else "llama"}
        checkpoint.save(model, cfg, directory, **extra_cfg)

    train(settings_from_args(args), model, step_fn, eval_fn, save_fn, args.resume)


if __name__ == "__main__":
    main()
