"""CALM: Llama backbone over compressed K-token inputs + energy head (docs/calm.md section 2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .autoencoder import Autoencoder
from .config import BackboneConfig
from .layers import Backbone, RMSNorm

LN_EPS = 1e-6


class MLPBlock(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(d, eps=LN_EPS)
        self.linears = nn.Sequential(nn.Linear(2 * d, d), nn.SiLU(), nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 2 * d))
        self.down_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gate, up = self.linears(torch.cat((self.in_ln(x), c), dim=-1)).chunk(2, dim=-1)
        return x + self.down_proj(F.silu(gate) * up)


class FinalLayer(nn.Module):
    def __init__(self, d: int, out: int):
        super().__init__()
        self.in_ln = nn.LayerNorm(d, eps=LN_EPS)
        self.linears = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linears(self.in_ln(x))


class EnergyHead(nn.Module):
    """(hidden state, uniform noise) -> one latent sample. Samples differ only by noise."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        d = cfg.hidden_size
        self.noise_size = cfg.noise_size
        self.noise_embd = nn.Linear(cfg.noise_size, d)
        self.hidden_embd = nn.Linear(d, d)
        self.norm_hidden = nn.LayerNorm(d, eps=LN_EPS)
        self.norm_noise = nn.LayerNorm(d, eps=LN_EPS)
        self.mlp_blocks = nn.ModuleList(MLPBlock(d) for _ in range(cfg.num_mlp_layers))
        self.final_layer = FinalLayer(d, cfg.latent_size)

    def forward(self, hidden: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """hidden [..., d]; noise [..., S, noise_size] in [-0.5, 0.5] -> latents [..., S, l]."""
        x = self.norm_noise(self.noise_embd(noise))
        c = self.norm_hidden(self.hidden_embd(hidden)).unsqueeze(-2).expand_as(x)
        for block in self.mlp_blocks:
            x = block(x, c)
        return self.final_layer(x)


class NextChunkTokens(nn.Module):
    """Training-only auxiliary head: the backbone's hidden state -> K token distributions for the
    next chunk (Linear d -> K*d, RMSNorm, a shared Linear d -> V). It gives the backbone a dense
    cross-entropy signal; the energy head alone passes almost no gradient to the backbone while
    it still ignores its condition. Not part of the checkpoint or the bundle."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.k, self.d = cfg.patch_size, cfg.hidden_size
        self.proj = nn.Linear(self.d, self.k * self.d, bias=False)
        self.norm = RMSNorm(self.d, cfg.rms_norm_eps)
        self.lm_head = nn.Linear(self.d, cfg.vocab_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., d] -> logits [..., K, V]."""
        x = self.proj(hidden).reshape(*hidden.shape[:-1], self.k, self.d)
        return self.lm_head(self.norm(x))


class CALM(nn.Module):
    def __init__(self, cfg: BackboneConfig, ae: Autoencoder):
        super().__init__()
        self.cfg = cfg
        d, k = cfg.hidden_size, cfg.patch_size
        self.transformer = Backbone(cfg)
        self.embed_proj = nn.Sequential(nn.Linear(k * d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d), nn.LayerNorm(d, eps=LN_EPS))
        self.mlp_generator = EnergyHead(cfg)
        self.ae_model = ae
        for p in self.ae_model.parameters():
            p.requires_grad_(False)

    def compress(self, chunk_ids: torch.Tensor) -> torch.Tensor:
        """chunk_ids [B, T, K] -> backbone inputs [B, T, d]."""
        b, t, k = chunk_ids.shape
        return self.embed_proj(self.transformer.embed_tokens(chunk_ids).reshape(b, t, k * self.cfg.hidden_size))

    def backbone(self, chunk_ids, past_len=None, past=None):
        return self.transformer(self.compress(chunk_ids), past_len, past)

    def sample_noise(self, shape, device=None) -> torch.Tensor:
        return torch.rand(*shape, self.cfg.noise_size, device=device) - 0.5

    def loss(self, tokens: torch.Tensor, n_targets: int = 100, aux: NextChunkTokens | None = None,
             aux_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
        """Energy-score loss on token blocks [B, T*K]: predict chunk t+1 from chunks <= t.
        With `aux`, adds aux_weight * the next chunk's token cross-entropy from the same hidden state."""
        cfg = self.cfg
        b = tokens.shape[0]
        chunks = tokens.reshape(b, -1, cfg.patch_size)
        hidden, _ = self.backbone(chunks[:, :-1])
        with torch.no_grad():
            self.ae_model.eval()
            mean, log_std = self.ae_model.encode(chunks[:, 1:].reshape(-1, cfg.patch_size))
            targets = mean + log_std.exp() * torch.randn(n_targets, *mean.shape, device=mean.device)  # [M, N, l]
        h = hidden.reshape(-1, cfg.hidden_size)
        preds = self.mlp_generator(h, self.sample_noise((h.shape[0], cfg.num_samples), h.device))  # [N, S, l]
        preds = preds.transpose(0, 1)  # [S, N, l]
        s = cfg.num_samples
        pair = torch.cdist(preds.transpose(0, 1), preds.transpose(0, 1))  # [N, S, S]
        if cfg.beta != 1.0:  # d^beta has an infinite slope at the zero diagonal for beta < 1
            eye = torch.eye(s, dtype=torch.bool, device=pair.device)
            pair = torch.where(eye, torch.ones_like(pair), pair).pow(cfg.beta).masked_fill(eye, 0.0)
        diversity = pair.sum(dim=(1, 2)) / (s * (s - 1))
        fidelity = torch.cdist(preds.transpose(0, 1), targets.transpose(0, 1)).pow(cfg.beta).mean(dim=(1, 2))  # [N]
        loss = (2 * fidelity - diversity).mean()
        stats = {"fidelity": fidelity.mean().item(), "diversity": diversity.mean().item()}
        if aux is not None:
            logits = aux(hidden)
            ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunks[:, 1:].reshape(-1))
            stats = {"energy": loss.item(), **stats, "aux_ce": ce.item()}
            loss = loss + aux_weight * ce
        return loss, stats
