"""Llama building blocks with an explicit, caller-owned KV cache.

The backbone never stores a cache. Each call takes the past keys/values of every row
(`past_len[b]` valid positions out of a padded length P) and returns the keys/values of the
new positions only; the caller appends them to its own storage. This is the interface the
ONNX backbone graphs expose (docs/model-bundle.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import BackboneConfig


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class SwiGLU(nn.Module):
    def __init__(self, hidden: int, intermediate: int):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Rotary(nn.Module):
    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions [B, T] -> cos, sin [B, 1, T, head_dim] (float32)."""
        freqs = positions.float()[..., None] * self.inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)[:, None]
        return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        d = cfg.hidden_size
        self.q_proj = nn.Linear(d, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, d, bias=False)

    def forward(self, x, cos, sin, mask, past_k, past_v):
        """x [B,T,d]; mask [B,1,T,P+T] additive; past_k/v [B,Hkv,P,Dh] -> out, new_k, new_v."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = (q * cos + rotate_half(q) * sin).to(x.dtype)
        k = (k * cos + rotate_half(k) * sin).to(x.dtype)
        keys = torch.cat((past_k, k), dim=2)
        values = torch.cat((past_v, v), dim=2)
        rep = self.heads // self.kv_heads
        if rep > 1:
            s = keys.shape[2]
            keys = keys[:, :, None].expand(b, self.kv_heads, rep, s, self.head_dim).reshape(b, self.heads, s, self.head_dim)
            values = values[:, :, None].expand(b, self.kv_heads, rep, s, self.head_dim).reshape(b, self.heads, s, self.head_dim)
        # Softmax in float32 whatever the model dtype; the mask is float32 too.
        scores = torch.matmul(q, keys.transpose(2, 3)).float() * (self.head_dim**-0.5) + mask
        probs = torch.softmax(scores, dim=-1).to(x.dtype)
        out = torch.matmul(probs, values).transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        return self.o_proj(out), k, v


class DecoderLayer(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.intermediate_size)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, mask, past_k, past_v):
        a, k, v = self.self_attn(self.input_layernorm(x), cos, sin, mask, past_k, past_v)
        x = x + a
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, k, v


def attention_mask(past_len: torch.Tensor, past_size: int, new_size: int) -> torch.Tensor:
    """Additive float32 mask [B,1,T,P+T]: row b sees its first past_len[b] cached positions and the
    new positions up to its own (causal). Padded cache slots beyond past_len are hidden."""
    device = past_len.device
    past_ok = torch.arange(past_size, device=device)[None, None, :] < past_len[:, None, None]
    new_ok = torch.arange(new_size, device=device)[None, :] <= torch.arange(new_size, device=device)[:, None]
    b = past_len.shape[0]
    ok = torch.cat((past_ok.expand(b, new_size, past_size), new_ok[None].expand(b, new_size, new_size)), dim=-1)
    zero = torch.zeros((), dtype=torch.float32, device=device)
    neg = torch.full((), torch.finfo(torch.float32).min, dtype=torch.float32, device=device)
    return torch.where(ok, zero, neg)[:, None]


class Backbone(nn.Module):
    """Llama decoder over input embeddings (named `transformer` in checkpoints)."""

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.rotary = Rotary(cfg.head_dim, cfg.rope_theta)

    def empty_cache(self, batch: int, dtype=torch.float32, device=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        shape = (batch, self.cfg.num_key_value_heads, 0, self.cfg.head_dim)
        return [(torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)) for _ in self.layers]

    def forward(self, embeds: torch.Tensor, past_len: torch.Tensor | None = None, past=None):
        """embeds [B,T,d]; past_len [B] int64; past: per layer (k, v) [B,Hkv,P,Dh].
        Returns final-normed hidden [B,T,d] and the new (k, v) [B,Hkv,T,Dh] per layer."""
        b, t, _ = embeds.shape
        if past is None:
            past = self.empty_cache(b, embeds.dtype, embeds.device)
        if past_len is None:
            past_len = torch.zeros(b, dtype=torch.long, device=embeds.device)
        positions = past_len[:, None] + torch.arange(t, device=embeds.device)[None, :]
        cos, sin = self.rotary(positions)
        mask = attention_mask(past_len, past[0][0].shape[2], t)
        x, new = embeds, []
        for layer, (pk, pv) in zip(self.layers, past):
            x, k, v = layer(x, cos, sin, mask, pk, pv)
            new.append((k, v))
        return self.norm(x), new
