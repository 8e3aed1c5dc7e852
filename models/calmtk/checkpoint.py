"""Checkpoints in the official layout: a directory with `config.json` and the weights in any
form the authors' (Hugging Face `transformers`) tooling writes them:

    pytorch_model.bin                                  one torch.save'd state dict
    pytorch_model.bin.index.json + pytorch_model-0000i-of-0000n.bin    shards (over 5 GB each by default)
    model.safetensors                                  one safetensors file
    model.safetensors.index.json + model-0000i-of-0000n.safetensors    safetensors shards

An index is `{"metadata": {...}, "weight_map": {tensor name: shard file}}`. When a directory
holds more than one form, safetensors wins (as in `transformers`); `save` removes the forms it
supersedes. Shards are read one at a time into one state dict, without further copies;
safetensors files are memory-mapped (calmtk/safetensors_io.py) unless the `safetensors`
package is installed, which is then used.

Loading is strict: every tensor the model needs must be present with its shape, and every
tensor in the file must be one the model uses (or a known alias: tied or duplicated weights
that the authors' code also saves, and RoPE buffers older `transformers` versions saved).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from . import safetensors_io
from .config import save_config

SAFETENSORS, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
PYTORCH, PYTORCH_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFETENSORS, SAFETENSORS_INDEX, PYTORCH, PYTORCH_INDEX)  # in order of preference
SHARD_PATTERNS = ("model-*-of-*.safetensors", "pytorch_model-*-of-*.bin")

# name pattern -> the canonical name it duplicates (None: a derived buffer, ignored)
ALIASES: list[tuple[re.Pattern[str], str | None]] = [
    (re.compile(r"^(.*)decoder\.lm_head_weight$"), r"\1encoder.embed_tokens.weight"),
    (re.compile(r"^generative_head\.(.*)$"), r"mlp_generator.\1"),
    (re.compile(r"^.*rotary_emb\.inv_freq$"), None),
]


class CheckpointError(ValueError):
    pass


def read_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint directory (any form above), or of one weights file."""
    path = Path(path)
    if path.is_dir():
        found = [path / n for n in WEIGHT_FILES if (path / n).is_file()]
        if not found:
            raise CheckpointError(f"no checkpoint in {path}: expected one of {', '.join(WEIGHT_FILES)}")
        path = found[0]
    elif not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.name.endswith(".index.json"):
        return _read_sharded(path)
    return _read_weights(path)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.name.endswith(".safetensors"):
        try:
            return safetensors_io.load_file(path)
        except safetensors_io.SafetensorsError as err:
            raise CheckpointError(str(err)) from None
    state = torch.load(path, map_location="cpu")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict (a mapping of names to tensors)")
    return state


def _read_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    try:
        index = json.loads(index_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{index_path}: not JSON ({err})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: no \"weight_map\" (tensor name -> shard file)")
    shards: dict[str, set[str]] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise CheckpointError(f"{index_path}: tensor {name} maps to {shard!r}, not a file beside the index")
        shards.setdefault(shard, set()).add(name)
    absent = sorted(s for s in shards if not (index_path.parent / s).is_file())
    if absent:
        raise CheckpointError(f"{index_path}: missing shard(s) {', '.join(absent)} (holding "
                              f"{sum(len(shards[s]) for s in absent)} of {len(weight_map)} tensors)")
    state: dict[str, torch.Tensor] = {}
    problems = []
    for shard in sorted(shards):  # one shard in memory at a time, beside what is already kept
        part = _read_weights(index_path.parent / shard)
        listed = shards[shard]
        lacking = sorted(listed - part.keys())
        if lacking:
            problems.append(f"{shard} lacks {', '.join(lacking)}")
        extra = sorted(part.keys() - listed)
        if extra:
            problems.append(f"{shard} holds {', '.join(extra)}, which the index maps elsewhere or not at all")
        for name in listed & part.keys():
            state[name] = part[name]
        del part
    if problems:
        raise CheckpointError(f"{index_path}: shards disagree with the index: " + "; ".join(problems))
    return state


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


def save(model: torch.nn.Module, cfg, directory: Path | str, *, weights: str = "pytorch",
         max_shard_bytes: int | None = None, **config_extra) -> None:
    """config.json + the state dict, as `pytorch_model.bin` (weights="pytorch") or
    `model.safetensors` (weights="safetensors"); with max_shard_bytes, split into shards of at
    most that size (a larger tensor gets a shard of its own) with an index, as `transformers`
    does. Weight files of another form left in the directory are removed afterwards."""
    directory = Path(directory)
    save_config(cfg, directory, **config_extra)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    write_state_dict(state, directory, weights=weights, max_shard_bytes=max_shard_bytes)


def write_state_dict(state: dict[str, torch.Tensor], directory: Path | str, *, weights: str = "pytorch",
                     max_shard_bytes: int | None = None) -> list[Path]:
    """Write the weights of a checkpoint directory (see `save`); returns the files written."""
    if weights not in ("pytorch", "safetensors"):
        raise ValueError(f"weights must be 'pytorch' or 'safetensors', not {weights!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    st = weights == "safetensors"

    def write(part: dict[str, torch.Tensor], name: str) -> Path:
        tmp = directory / (name + ".tmp")
        if st:
            safetensors_io.save_file(part, tmp, metadata={"format": "pt"})
        else:  # clone: a view would save its whole (shared) storage
            torch.save({k: v.clone() for k, v in part.items()}, tmp)
        tmp.replace(directory / name)
        return directory / name

    single, index_name = (SAFETENSORS, SAFETENSORS_INDEX) if st else (PYTORCH, PYTORCH_INDEX)
    sizes = {k: v.numel() * v.element_size() for k, v in state.items()}
    groups: list[list[str]] = [[]]
    if max_shard_bytes is not None:
        held = 0
        for name in state:
            if groups[-1] and held + sizes[name] > max_shard_bytes:
                groups.append([])
                held = 0
            groups[-1].append(name)
            held += sizes[name]
    else:
        groups[0] = list(state)
    if len(groups) == 1:
        written = [write(state, single)]
    else:
        stem, ext = ("model", "safetensors") if st else ("pytorch_model", "bin")
        written, weight_map = [], {}
        for i, group in enumerate(groups):
            name = f"{stem}-{i + 1:05d}-of-{len(groups):05d}.{ext}"
            written.append(write({k: state[k] for k in group}, name))
            weight_map.update((k, name) for k in group)
        index = {"metadata": {"total_size": sum(sizes.values())}, "weight_map": weight_map}
        tmp = directory / (index_name + ".tmp")
        tmp.write_text(json.dumps(index, indent=2) + "\n")
        tmp.replace(directory / index_name)
        written.append(directory / index_name)
    stale = [directory / n for n in WEIGHT_FILES] + [f for pat in SHARD_PATTERNS for f in directory.glob(pat)]
    for f in stale:
        if f.is_file() and f not in written:
            f.unlink()
    return written
