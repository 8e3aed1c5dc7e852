"""Checkpoints in the official layout: a directory with `config.json` + `pytorch_model.bin`.

Loading is strict: every tensor the model needs must be present with its shape, and every
tensor in the file must be one the model uses (or a known alias: tied or duplicated weights
that the authors' code also saves, and RoPE buffers older `transformers` versions saved).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from .config import save_config

# name pattern -> the canonical name it duplicates (None: a derived buffer, ignored)
ALIASES: list[tuple[re.Pattern[str], str | None]] = [
    (re.compile(r"^(.*)decoder\.lm_head_weight$"), r"\1encoder.embed_tokens.weight"),
    (re.compile(r"^generative_head\.(.*)$"), r"mlp_generator.\1"),
    (re.compile(r"^.*rotary_emb\.inv_freq$"), None),
]


class CheckpointError(ValueError):
    pass


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if path.is_dir():
        path = path / "pytorch_model.bin"
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    return torch.load(path, map_location="cpu")


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], prefix: str = "") -> None:
    """Load `state` (names relative to `prefix`) into `model`, refusing any mismatch."""
    expected = {k: v for k, v in model.state_dict().items()}
    given: dict[str, torch.Tensor] = {}
    unexpected = []
    for name, tensor in state.items():
        if not name.startswith(prefix):
            continue
        name = name[len(prefix):]
        if name in expected:
            given[name] = tensor
            continue
        for pattern, target in ALIASES:
            if pattern.match(name):
                if target is not None:
                    canonical = pattern.sub(target, name)
                    if canonical not in expected or tuple(expected[canonical].shape) != tuple(tensor.shape):
                        unexpected.append(name)
                    else:
                        given.setdefault(canonical, tensor)
                break
        else:
            unexpected.append(name)
    missing = sorted(set(expected) - set(given))
    wrong = sorted(f"{k}: expected {tuple(expected[k].shape)}, got {tuple(v.shape)}"
                   for k, v in given.items() if tuple(v.shape) != tuple(expected[k].shape))
    problems = []
    if missing:
        problems.append("missing tensors: " + ", ".join(prefix + m for m in missing))
    if unexpected:
        problems.append("unexpected tensors: " + ", ".join(prefix + u for u in sorted(unexpected)))
    if wrong:
        problems.append("shape mismatches: " + "; ".join(prefix + w for w in wrong))
    if problems:
        raise CheckpointError(" | ".join(problems))
    model.load_state_dict(given, strict=True)


def save(model: torch.nn.Module, cfg, directory: Path | str, **config_extra) -> None:
    directory = Path(directory)
    save_config(cfg, directory, **config_extra)
    tmp = directory / "pytorch_model.bin.tmp"
    torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, tmp)
    tmp.replace(directory / "pytorch_model.bin")
