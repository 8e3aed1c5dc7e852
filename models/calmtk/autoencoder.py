"""The CALM autoencoder: K tokens <-> one latent vector, context-free (docs/calm.md section 1).

Layer counts follow the authors' code exactly: it builds `num_encoder_layers` (and
`num_decoder_layers`) AELayers, so their checkpoints hold that many, but runs two stages of
`n // 2` layers each, layers 0 .. n//2 - 1 before the squeeze (expand) and n//2 .. 2*(n//2) - 1
after it. With n odd the last layer is built and saved but never run; so it is here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import AutoencoderConfig
from .layers import RMSNorm, SwiGLU


class AELayer(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size)
        self.layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.layernorm(x))


class Encoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.k, self.d = cfg.patch_size, cfg.hidden_size
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.encoder_layers = nn.ModuleList(AELayer(cfg) for _ in range(cfg.num_encoder_layers))
        self.stage = cfg.num_encoder_layers // 2
        self.squeeze_layer = nn.Linear(cfg.patch_size * cfg.hidden_size, cfg.hidden_size)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.hidden_to_latent = nn.Linear(cfg.hidden_size, 2 * cfg.latent_size)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids [N, K] -> mean, log_std [N, l]."""
        x = self.embed_tokens(ids)
        for layer in self.encoder_layers[: self.stage]:
            x = layer(x)
        x = self.squeeze_layer(x.reshape(ids.shape[0], self.k * self.d))
        for layer in self.encoder_layers[self.stage : 2 * self.stage]:
            x = layer(x)
        mean, log_std = self.hidden_to_latent(self.norm(x)).chunk(2, dim=-1)
        return mean, log_std


class Decoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.k, self.d = cfg.patch_size, cfg.hidden_size
        self.latent_to_hidden = nn.Linear(cfg.latent_size, cfg.hidden_size)
        self.decoder_layers = nn.ModuleList(AELayer(cfg) for _ in range(cfg.num_decoder_layers))
        self.stage = cfg.num_decoder_layers // 2
        self.expand_layer = nn.Linear(cfg.hidden_size, cfg.patch_size * cfg.hidden_size)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """z [N, l] -> logits [N, K, V] against the tied embedding matrix [V, d]."""
        x = self.latent_to_hidden(z)
        for layer in self.decoder_layers[: self.stage]:
            x = layer(x)
        x = self.expand_layer(x).reshape(z.shape[0], self.k, self.d)
        for layer in self.decoder_layers[self.stage : 2 * self.stage]:
            x = layer(x)
        return F.linear(self.norm(x), embedding)


class Autoencoder(nn.Module):
    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(ids)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z, self.encoder.embed_tokens.weight)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode_logits(z).argmax(-1)

    def loss(self, ids: torch.Tensor, mask_id: int = 0) -> tuple[torch.Tensor, dict[str, float]]:
        """The paper's robust training objective on chunks ids [N, K]: input token masking,
        reparameterised sample, latent dropout, K * CE + kl_weight * clipped KL."""
        cfg = self.cfg
        keep = torch.rand(ids.shape, device=ids.device) > cfg.ae_dropout
        mean, log_std = self.encoder(torch.where(keep, ids, torch.full_like(ids, mask_id)))
        std = log_std.exp()
        z = F.dropout(mean + torch.randn_like(mean) * std, p=cfg.ae_dropout, training=True)
        logits = self.decode_logits(z)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), ids.reshape(-1))
        kl = 0.5 * (mean.pow(2) + std.pow(2) - 1 - 2 * log_std)
        kl = kl.clamp(min=cfg.kl_clamp).sum(-1).mean()
        loss = cfg.patch_size * ce + cfg.kl_weight * kl
        acc = (logits.argmax(-1) == ids).float().mean()
        return loss, {"ce": ce.item(), "kl": kl.item(), "acc": acc.item()}
