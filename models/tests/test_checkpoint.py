"""Checkpoints load by the official tensor names, strictly."""
from __future__ import annotations

import pytest
import torch

from calmtk import checkpoint
from calmtk.ar import ARModel
from calmtk.autoencoder import Autoencoder
from calmtk.calm import CALM
from calmtk.export import load_ar, load_autoencoder, load_calm
from conftest import tiny_ae_config, tiny_backbone_config


def official_ae_names(layers: int) -> set[str]:
    """Tensor names of the authors' autoencoder checkpoints (docs/calm.md section 1)."""
    names = {"encoder.embed_tokens.weight", "encoder.squeeze_layer.weight", "encoder.squeeze_layer.bias",
             "encoder.norm.weight", "encoder.hidden_to_latent.weight", "encoder.hidden_to_latent.bias",
             "decoder.latent_to_hidden.weight", "decoder.latent_to_hidden.bias", "decoder.expand_layer.weight",
             "decoder.expand_layer.bias", "decoder.norm.weight"}
    for part, stack in (("encoder", "encoder_layers"), ("decoder", "decoder_layers")):
        for i in range(layers):
            names.add(f"{part}.{stack}.{i}.layernorm.weight")
            names |= {f"{part}.{stack}.{i}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
    return names


def official_backbone_names(prefix: str, layers: int) -> set[str]:
    names = {f"{prefix}embed_tokens.weight", f"{prefix}norm.weight"}
    for i in range(layers):
        names |= {f"{prefix}layers.{i}.self_attn.{p}_proj.weight" for p in "qkvo"}
        names |= {f"{prefix}layers.{i}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")}
        names |= {f"{prefix}layers.{i}.{n}.weight" for n in ("input_layernorm", "post_attention_layernorm")}
    return names


def official_calm_names(layers: int, mlp_layers: int, ae_layers: int) -> set[str]:
    names = official_backbone_names("transformer.", layers)
    names |= {f"embed_proj.{i}.{p}" for i in (0, 2, 3) for p in ("weight", "bias")}
    for m in ("noise_embd", "hidden_embd", "norm_noise", "norm_hidden"):
        names |= {f"mlp_generator.{m}.weight", f"mlp_generator.{m}.bias"}
    for j in range(mlp_layers):
        for m in ("in_ln", "linears.0", "linears.2", "linears.4", "down_proj"):
            names |= {f"mlp_generator.mlp_blocks.{j}.{m}.weight", f"mlp_generator.mlp_blocks.{j}.{m}.bias"}
    for m in ("in_ln", "linears.0", "linears.2"):
        names |= {f"mlp_generator.final_layer.{m}.weight", f"mlp_generator.final_layer.{m}.bias"}
    return names | {f"ae_model.{n}" for n in official_ae_names(ae_layers)}


def test_models_use_exactly_the_official_names():
    ae = Autoencoder(tiny_ae_config())
    assert set(ae.state_dict()) == official_ae_names(2)
    calm = CALM(tiny_backbone_config(), Autoencoder(tiny_ae_config()))
    assert set(calm.state_dict()) == official_calm_names(2, 2, 2)
    ar = ARModel(tiny_backbone_config())
    assert set(ar.state_dict()) == official_backbone_names("model.", 2) | {"lm_head.weight"}


def test_save_and_load_roundtrip(tmp_path, tiny_calm, tiny_ar):
    checkpoint.save(tiny_calm.ae_model, tiny_calm.ae_model.cfg, tmp_path / "ae")
    checkpoint.save(tiny_calm, tiny_calm.cfg, tmp_path / "calm", model_type="energy")
    checkpoint.save(tiny_ar, tiny_ar.cfg, tmp_path / "ar", model_type="llama")
    calm = load_calm(tmp_path / "ae", tmp_path / "calm")
    for (n, a), b in zip(tiny_calm.state_dict().items(), calm.state_dict().values()):
        assert torch.equal(a, b), n
    assert torch.equal(load_ar(tmp_path / "ar").lm_head.weight, tiny_ar.lm_head.weight)
    assert torch.equal(load_autoencoder(tmp_path / "ae").encoder.embed_tokens.weight,
                       tiny_calm.ae_model.encoder.embed_tokens.weight)


def test_calm_checkpoint_without_embedded_autoencoder_takes_it_from_the_ae_dir(tmp_path, tiny_calm):
    checkpoint.save(tiny_calm.ae_model, tiny_calm.ae_model.cfg, tmp_path / "ae")
    checkpoint.save(tiny_calm, tiny_calm.cfg, tmp_path / "calm")
    state = torch.load(tmp_path / "calm" / "pytorch_model.bin")
    torch.save({k: v for k, v in state.items() if not k.startswith("ae_model.")}, tmp_path / "calm" / "pytorch_model.bin")
    load_calm(tmp_path / "ae", tmp_path / "calm")


def test_aliases_the_authors_code_saves_are_accepted(tiny_calm):
    state = dict(tiny_calm.state_dict())
    state["ae_model.decoder.lm_head_weight"] = state["ae_model.encoder.embed_tokens.weight"]
    for k in [k for k in state if k.startswith("mlp_generator.")]:
        state["generative_head." + k[len("mlp_generator."):]] = state[k]
    state["transformer.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)
    model = CALM(tiny_calm.cfg, Autoencoder(tiny_calm.ae_model.cfg))
    checkpoint.load_strict(model, state)


def test_missing_and_unexpected_tensors_are_refused_by_name(tiny_calm):
    state = dict(tiny_calm.state_dict())
    del state["transformer.layers.1.mlp.up_proj.weight"]
    state["transformer.layers.9.self_attn.q_proj.weight"] = torch.zeros(2, 2)
    model = CALM(tiny_calm.cfg, Autoencoder(tiny_calm.ae_model.cfg))
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load_strict(model, state)
    assert "missing tensors: transformer.layers.1.mlp.up_proj.weight" in str(err.value)
    assert "unexpected tensors: transformer.layers.9.self_attn.q_proj.weight" in str(err.value)


def test_wrong_shapes_are_refused(tiny_calm):
    state = dict(tiny_calm.state_dict())
    state["embed_proj.0.weight"] = torch.zeros(3, 3)
    model = CALM(tiny_calm.cfg, Autoencoder(tiny_calm.ae_model.cfg))
    with pytest.raises(checkpoint.CheckpointError, match=r"shape mismatches: embed_proj.0.weight"):
        checkpoint.load_strict(model, state)
