"""Model configurations, read from and written to the official `config.json` keys."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class AutoencoderConfig:
    vocab_size: int = 128257
    patch_size: int = 4
    hidden_size: int = 512
    intermediate_size: int = 1280
    latent_size: int = 128
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    rms_norm_eps: float = 1e-6
    ae_dropout: float = 0.15
    kl_clamp: float = 0.5
    kl_weight: float = 1e-3
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None


@dataclasses.dataclass
class BackboneConfig:
    """Shared by CALM (`model_type` energy) and the AR baseline (`model_type` llama)."""

    vocab_size: int = 128257
    hidden_size: int = 1024
    intermediate_size: int = 2752
    num_hidden_layers: int = 16
    num_attention_heads: int = 16
    num_key_value_heads: int = 16
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    # CALM only
    patch_size: int = 4
    latent_size: int = 128
    noise_size: int = 64
    num_mlp_layers: int = 4
    num_samples: int = 8
    beta: float = 1.0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def load_config(cls, path: Path | str, **overrides: Any):
    """Read a `config.json` (file or directory), keeping the keys `cls` knows."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    raw = json.loads(path.read_text())
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in raw.items() if k in known}
    values.update(overrides)
    return cls(**values)


def save_config(cfg, path: Path | str, **extra: Any) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({**dataclasses.asdict(cfg), **extra}, indent=2) + "\n")
