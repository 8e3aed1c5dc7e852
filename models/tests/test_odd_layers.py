"""Odd autoencoder layer counts behave as in the authors' code: n layers built and saved,
2 x (n // 2) run (n // 2 before the squeeze/expand, n // 2 after), the last one never."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from calmtk import checkpoint
from calmtk.autoencoder import Autoencoder
from calmtk.calm import CALM
from calmtk.config import save_config
from calmtk.export import export_calm, load_autoencoder, load_calm
from conftest import VOCAB, ort_run, randomize, tiny_ae_config, tiny_backbone_config


# ---- the authors' forward pass, written from their code's loops, on a state dict in their layout ----

def _rms(x, w, eps):
    x32 = x.float()
    return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def _ae_layer(state, prefix, x, eps):
    h = _rms(x, state[prefix + "layernorm.weight"], eps)
    gate = F.linear(h, state[prefix + "mlp.gate_proj.weight"])
    up = F.linear(h, state[prefix + "mlp.up_proj.weight"])
    return x + F.linear(F.silu(gate) * up, state[prefix + "mlp.down_proj.weight"])


def authors_encode(state, cfg, ids, run_all=False):
    """Encoder.forward of the authors' code: `for stage in range(2): for layer_idx in
    range(num_stage_layers): layers[stage * num_stage_layers + layer_idx]`, squeeze after stage 0.
    run_all=True is calmtk's old behaviour (all n layers, the extra one after the squeeze)."""
    n = cfg.num_encoder_layers
    stage_layers = [list(range(n // 2)), list(range(n // 2, n if run_all else 2 * (n // 2)))]
    x = F.embedding(ids, state["encoder.embed_tokens.weight"])
    for stage in range(2):
        for i in stage_layers[stage]:
            x = _ae_layer(state, f"encoder.encoder_layers.{i}.", x, cfg.rms_norm_eps)
        if stage == 0:
            x = F.linear(x.reshape(ids.shape[0], 1, -1), state["encoder.squeeze_layer.weight"], state["encoder.squeeze_layer.bias"])
    x = _rms(x, state["encoder.norm.weight"], cfg.rms_norm_eps)
    lat = F.linear(x, state["encoder.hidden_to_latent.weight"], state["encoder.hidden_to_latent.bias"])
    return lat.reshape(ids.shape[0], -1).chunk(2, dim=-1)


def authors_decode_logits(state, cfg, z, run_all=False):
    n, k = cfg.num_decoder_layers, cfg.patch_size
    stage_layers = [list(range(n // 2)), list(range(n // 2, n if run_all else 2 * (n // 2)))]
    x = F.linear(z[:, None], state["decoder.latent_to_hidden.weight"], state["decoder.latent_to_hidden.bias"])
    for stage in range(2):
        for i in stage_layers[stage]:
            x = _ae_layer(state, f"decoder.decoder_layers.{i}.", x, cfg.rms_norm_eps)
        if stage == 0:
            x = F.linear(x, state["decoder.expand_layer.weight"], state["decoder.expand_layer.bias"])
            x = x.reshape(z.shape[0], k, -1)
    x = _rms(x, state["decoder.norm.weight"], cfg.rms_norm_eps)
    return F.linear(x, state["decoder.lm_head_weight"])


def odd_ae_config(enc: int, dec: int):
    return dataclasses.replace(tiny_ae_config(), num_encoder_layers=enc, num_decoder_layers=dec)


def authors_state(ae: Autoencoder) -> dict[str, torch.Tensor]:
    """What the authors' Autoencoder.state_dict() holds: every built layer, and the decoder's
    `lm_head_weight`, the same Parameter as the encoder embedding."""
    state = {k: v.detach().clone() for k, v in ae.state_dict().items()}
    state["decoder.lm_head_weight"] = state["encoder.embed_tokens.weight"]
    return state


def save_authors_autoencoder(ae: Autoencoder, directory) -> dict[str, torch.Tensor]:
    cfg = ae.cfg
    save_config(cfg, directory, model_type="autoencoder")
    state = authors_state(ae)
    torch.save(state, directory / "pytorch_model.bin")
    return state


@pytest.mark.parametrize("enc,dec", [(3, 3), (5, 1), (1, 4)])
def test_calmtk_runs_exactly_the_authors_layers(enc, dec):
    cfg = odd_ae_config(enc, dec)
    ae = randomize(Autoencoder(cfg), 11)
    state = authors_state(ae)
    # every built layer is a checkpoint tensor, the unused last one included
    for part, stack, n in (("encoder", "encoder_layers", enc), ("decoder", "decoder_layers", dec)):
        assert f"{part}.{stack}.{n - 1}.layernorm.weight" in state
        assert f"{part}.{stack}.{n}.layernorm.weight" not in state
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, VOCAB, (32, cfg.patch_size), generator=g)
    z = torch.randn(32, cfg.latent_size, generator=g)
    with torch.no_grad():
        for got, want in zip(ae.encode(ids), authors_encode(state, cfg, ids)):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ae.decode_logits(z), authors_decode_logits(state, cfg, z), atol=1e-5, rtol=1e-5)


def test_odd_layer_checkpoint_must_hold_every_built_layer(tmp_path):
    """The authors save all n layers; a checkpoint without the unused one is not theirs."""
    ae = randomize(Autoencoder(odd_ae_config(3, 3)), 12)
    state = save_authors_autoencoder(ae, tmp_path)
    load_autoencoder(tmp_path)
    torch.save({k: v for k, v in state.items() if ".encoder_layers.2." not in k}, tmp_path / "pytorch_model.bin")
    with pytest.raises(checkpoint.CheckpointError, match=r"missing tensors: encoder\.encoder_layers\.2\.layernorm\.weight"):
        load_autoencoder(tmp_path)


def test_odd_layer_export_matches_the_authors_forward(tmp_path, tokenizer_file):
    """3 + 3 layers, saved in the authors' layout, reloaded and exported: the decoder and encoder
    graphs equal the authors' forward pass computed from the saved tensors."""
    cfg = odd_ae_config(3, 3)
    ae = randomize(Autoencoder(cfg), 13)
    state = save_authors_autoencoder(ae, tmp_path / "ae")
    calm = randomize(CALM(tiny_backbone_config(), Autoencoder(cfg)), 14)
    calm.ae_model.load_state_dict(ae.state_dict())
    checkpoint.save(calm, calm.cfg, tmp_path / "calm", model_type="energy")
    export_calm(load_calm(tmp_path / "ae", tmp_path / "calm"), tokenizer_file, tmp_path / "bundle")

    rng = np.random.default_rng(7)
    latent = rng.standard_normal((256, cfg.latent_size)).astype(np.float32)
    got = ort_run(tmp_path / "bundle" / "decoder.onnx", {"latent": latent})["token_ids"]
    with torch.no_grad():
        z = torch.from_numpy(latent)
        want = authors_decode_logits(state, cfg, z).argmax(-1).numpy()
        old = authors_decode_logits(state, cfg, z, run_all=True).argmax(-1).numpy()
    np.testing.assert_array_equal(got, want)
    # the test can tell: running all three layers changes most tokens
    assert (old != want).mean() > 0.3

    ids = rng.integers(0, VOCAB, size=(64, cfg.patch_size), dtype=np.int64)
    got = ort_run(tmp_path / "bundle" / "encoder.onnx", {"token_ids": ids})
    with torch.no_grad():
        mean, log_std = authors_encode(state, cfg, torch.from_numpy(ids))
        old_mean, _ = authors_encode(state, cfg, torch.from_numpy(ids), run_all=True)
    np.testing.assert_allclose(got["mean"], mean.numpy(), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got["log_std"], log_std.numpy(), atol=1e-4, rtol=1e-4)
    assert not np.allclose(old_mean.numpy(), mean.numpy(), atol=1e-2)
