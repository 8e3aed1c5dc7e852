"""The manifest's multiply-accumulates equal the models' weight products counted by hand."""
from __future__ import annotations

import json

from torch import nn

from calmtk.export import export_ar, export_calm


def linear_macs(module: nn.Module) -> int:
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def test_calm_and_ar_macs(tiny_calm, tiny_ar, tokenizer_file, tmp_path):
    m = export_calm(tiny_calm, tokenizer_file, tmp_path / "calm", name="tiny-calm")
    cfg, acfg = tiny_calm.cfg, tiny_calm.ae_model.cfg
    k, d, v = cfg.patch_size, acfg.hidden_size, acfg.vocab_size
    dec = tiny_calm.ae_model.decoder
    stage = dec.stage
    per_layer = linear_macs(dec.decoder_layers[0])
    want_decoder = linear_macs(dec.latent_to_hidden) + stage * per_layer + linear_macs(dec.expand_layer) + k * stage * per_layer + k * d * v
    assert m["macs"] == {
        "backbone": linear_macs(tiny_calm.transformer) + linear_macs(tiny_calm.embed_proj),
        "head": linear_macs(tiny_calm.mlp_generator),
        "decoder": want_decoder,
        "attention_per_context_position": 2 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim,
    }
    assert json.loads((tmp_path / "calm" / "manifest.json").read_text())["macs"] == m["macs"]
    a = export_ar(tiny_ar, tokenizer_file, tmp_path / "ar", name="tiny-ar")
    assert a["macs"]["backbone"] == linear_macs(tiny_ar)
