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
from .calm import CALM, NextChunkTokens
from .config import BackboneConfig
from .data import Corpus, random_blocks
from .export import load_ar, load_autoencoder, load_calm
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
    # CALM training options (the defaults are the recipe of the shipped 60-minute run)
    ap.add_argument("--aux-ce", type=float, default=0.0, metavar="W",
                    help="calm: add W x the next chunk's token cross-entropy from the backbone's hidden state "
                         "(a training-only head, not exported); 0 = off")
    ap.add_argument("--init-ar", type=Path, metavar="AR_DIR",
                    help="calm: start the backbone (embed_tokens, layers, norm) from an AR checkpoint of the same "
                         "sizes and tokenizer (and the --aux-ce head's output layer from its lm_head)")
    ap.add_argument("--init-calm", type=Path, metavar="CALM_DIR",
                    help="calm: start backbone, embed_proj and energy head from a CALM checkpoint (with --ae)")
    ap.add_argument("--num-samples", type=int, default=8, help="calm: model samples per position in the energy score")
    ap.add_argument("--n-targets", type=int, default=100, help="calm: encoder samples per position in the energy score")
    ap.add_argument("--beta", type=float, default=1.0,
                    help="calm: exponent of the distances in the energy score (strictly proper for 0 < beta < 2; the paper's 1)")
    ap.add_argument("--head-lr-mult", type=float, default=1.0, help="calm: learning-rate factor for the energy head")
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
        cfg = BackboneConfig(**common, patch_size=ae.cfg.patch_size, latent_size=ae.cfg.latent_size,
                             num_samples=args.num_samples, beta=args.beta)
        calm = CALM(cfg, ae)
        init_weights(calm.transformer)
        init_weights(calm.embed_proj)
        init_weights(calm.mlp_generator)
        nn.init.zeros_(calm.mlp_generator.final_layer.linears[-1].weight)
        nn.init.zeros_(calm.mlp_generator.final_layer.linears[-1].bias)
        aux = NextChunkTokens(cfg) if args.aux_ce > 0 else None
        if aux is not None:
            init_weights(aux)
        if args.init_calm:
            if args.resume:
                print("--init-calm ignored: --resume continues from the run's own checkpoint", flush=True)
            src = load_calm(args.ae, args.init_calm)
            own = {k: v for k, v in src.state_dict().items() if not k.startswith("ae_model.")}
            missing, unexpected = calm.load_state_dict(own, strict=False)
            assert not unexpected and all(k.startswith("ae_model.") for k in missing), (missing, unexpected)
        if args.init_ar:
            src = load_ar(args.init_ar)
            if src.cfg.vocab_size != cfg.vocab_size or src.cfg.hidden_size != cfg.hidden_size:
                ap.error("--init-ar needs an AR model of the same vocabulary and width")
            calm.transformer.load_state_dict(src.model.state_dict())
            if aux is not None:
                aux.lm_head.weight.data.copy_(src.lm_head.weight.data)
                aux.norm.weight.data.copy_(src.model.norm.weight.data)
        model: nn.Module = nn.ModuleDict({"calm": calm, "aux": aux}) if aux is not None else calm
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

    # the model that is saved and exported (the auxiliary head, if any, is training-only)
    core = model["calm"] if isinstance(model, nn.ModuleDict) else model

    def loss_of(batch):
        if args.kind == "calm":
            aux = model["aux"] if isinstance(model, nn.ModuleDict) else None
            return core.loss(batch, n_targets=args.n_targets, aux=aux, aux_weight=args.aux_ce)
        return core.loss(batch)

    def step_fn(rng):
        return loss_of(torch.from_numpy(random_blocks(train_stream, args.block + extra, args.batch, rng)).to(args.device))

    def eval_fn():
        g = torch.get_rng_state()
        torch.manual_seed(0)
        # CALM: the energy score alone (comparable across recipes; the auxiliary loss is left out)
        losses = [core.loss(b.to(args.device))[0].item() for b in eval_batches]
        torch.set_rng_state(g)
        return {"eval_loss": float(np.mean(losses))}

    def save_fn(directory: Path):
        extra_cfg = {"model_type": "energy" if args.kind == "calm" else "llama"}
        checkpoint.save(core, cfg, directory, **extra_cfg)

    lr_scales = None
    if args.kind == "calm" and args.head_lr_mult != 1.0:
        lr_scales = {id(p): args.head_lr_mult for p in core.mlp_generator.parameters()}
    train(settings_from_args(args), model, step_fn, eval_fn, save_fn, args.resume, lr_scales)


if __name__ == "__main__":
    main()
