"""Build a random-initialised model at an official size, save it in the authors' checkpoint
layout, and export it with the same exporter: checks that real sizes export and load.

    /usr/bin/python3 -m calmtk.random_bundle --preset calm-m --work /tmp/calm-m
    node dist/cli.js inspect /tmp/calm-m/bundle
    # checkpoints as safetensors shards of at most 500 MB (as transformers writes large models)
    /usr/bin/python3 -m calmtk.random_bundle --preset small --weights safetensors --max-shard-mb 500 --work /tmp/small

Weights are random, so the bundle serves noise; this is a size and format check only. The
tokenizer is a stand-in with the official vocabulary size (Llama-3's 128,256 tokens + [PAD]).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from . import checkpoint
from .ar import ARModel
from .autoencoder import Autoencoder
from .calm import CALM
from .config import AutoencoderConfig, BackboneConfig
from .export import export_ar, export_calm, load_ar, load_calm
from .tokenizer import BYTE_TO_CHAR, tokenizer_json

VOCAB = 128257  # Llama-3 + [PAD]
SPECIAL = dict(pad_token_id=128256, bos_token_id=128000, eos_token_id=128001)
OFFICIAL_AE = AutoencoderConfig(vocab_size=VOCAB, hidden_size=512, intermediate_size=1280, latent_size=128,
                                num_encoder_layers=2, num_decoder_layers=2, **SPECIAL)
PRESETS = {
    "calm-m": dict(hidden_size=1024, intermediate_size=2752, num_hidden_layers=16, num_attention_heads=16),
    "calm-l": dict(hidden_size=1536, intermediate_size=4096, num_hidden_layers=16, num_attention_heads=16),
    "calm-xl": dict(hidden_size=2560, intermediate_size=6880, num_hidden_layers=16, num_attention_heads=16),
    # a quick format check: the official vocabulary and autoencoder, a small backbone
    "small": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=2, num_attention_heads=4),
}


def stand_in_tokenizer(path: Path, vocab_size: int) -> None:
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[BYTE_TO_CHAR[b]] = len(vocab)
    for i in range(len(vocab), vocab_size):
        vocab[f"<|filler_{i}|>"] = i
    path.write_text(json.dumps(tokenizer_json(vocab, [])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="calm-m")
    ap.add_argument("--kind", choices=["calm", "ar"], default="calm")
    ap.add_argument("--work", type=Path, required=True, help="directory for checkpoints and the bundle")
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    ap.add_argument("--weights", choices=["pytorch", "safetensors"], default="pytorch",
                    help="checkpoint file format (pytorch_model.bin or model.safetensors)")
    ap.add_argument("--max-shard-mb", type=float, help="split checkpoints into shards of at most this size, with an index")
    args = ap.parse_args()
    fmt = dict(weights=args.weights, max_shard_bytes=int(args.max_shard_mb * 1e6) if args.max_shard_mb else None)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    args.work.mkdir(parents=True, exist_ok=True)
    cfg = BackboneConfig(vocab_size=VOCAB, num_key_value_heads=PRESETS[args.preset]["num_attention_heads"],
                         latent_size=OFFICIAL_AE.latent_size, **PRESETS[args.preset], **SPECIAL)
    tok = args.work / "tokenizer.json"
    stand_in_tokenizer(tok, VOCAB)
    t0 = time.time()
    with torch.no_grad():
        if args.kind == "calm":
            ae = Autoencoder(OFFICIAL_AE)
            checkpoint.save(ae, OFFICIAL_AE, args.work / "ae", **fmt)
            model = CALM(cfg, ae)
            checkpoint.save(model, cfg, args.work / "calm", model_type="energy", **fmt)
            del model, ae
            model = load_calm(args.work / "ae", args.work / "calm")
        else:
            model = ARModel(cfg)
            checkpoint.save(model, cfg, args.work / "ar", model_type="llama", **fmt)
            del model
            model = load_ar(args.work / "ar")
    params = sum(p.numel() for p in model.parameters())
    t1 = time.time()
    export = export_calm if args.kind == "calm" else export_ar
    export(model, tok, args.work / "bundle", half=args.dtype == "float16", name=f"{args.preset}-random")
    sizes = {f.name: f.stat().st_size for f in sorted((args.work / "bundle").iterdir())}
    ckpt = {d.name: sorted(f.name for f in d.iterdir() if f.name != "config.json")
            for d in sorted(args.work.iterdir()) if d.is_dir() and d.name != "bundle"}
    print(json.dumps({"preset": args.preset, "kind": args.kind, "params": params, "checkpoints": ckpt,
                      "save_load_s": round(t1 - t0, 1),
                      "export_s": round(time.time() - t1, 1), "files": sizes}, indent=2))


if __name__ == "__main__":
    main()
