"""The token-level baseline: the same Llama backbone with a softmax head (LlamaForCausalLM names)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import BackboneConfig
from .layers import Backbone


class ARModel(nn.Module):
    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def forward(self, input_ids, past_len=None, past=None):
        """input_ids [B, T] -> logits [B, T, V] and the new KV rows per layer."""
        hidden, new = self.model(self.model.embed_tokens(input_ids), past_len, past)
        return self.lm_head(hidden), new

    def loss(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        logits, _ = self(tokens[:, :-1])
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        return ce, {}
