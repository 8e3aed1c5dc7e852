"""Shared fixtures: tiny models with the official structure, and a bridge to onnxruntime-node."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calmtk.ar import ARModel  # noqa: E402
from calmtk.autoencoder import Autoencoder  # noqa: E402
from calmtk.calm import CALM  # noqa: E402
from calmtk.config import AutoencoderConfig, BackboneConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ORT_RUN = REPO / "test" / "support" / "ort-run.mjs"
VOCAB = 300

torch.set_num_threads(2)


def tiny_ae_config() -> AutoencoderConfig:
    return AutoencoderConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=80, latent_size=8,
                             num_encoder_layers=2, num_decoder_layers=2, pad_token_id=0, bos_token_id=1, eos_token_id=2)


def tiny_backbone_config(**kw) -> BackboneConfig:
    base = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=88, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, latent_size=8, noise_size=16, num_mlp_layers=2, pad_token_id=0,
                bos_token_id=1, eos_token_id=2, max_position_embeddings=64)
    base.update(kw)
    return BackboneConfig(**base)


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere (norm gains and biases too), so parity cannot pass by symmetry."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="session")
def tiny_calm() -> CALM:
    torch.manual_seed(0)
    ae = randomize(Autoencoder(tiny_ae_config()), 1)
    return randomize(CALM(tiny_backbone_config(), ae), 2)


@pytest.fixture(scope="session")
def tiny_ar() -> ARModel:
    return randomize(ARModel(tiny_backbone_config()), 3)


@pytest.fixture(scope="session")
def tokenizer_file(tmp_path_factory) -> Path:
    from calmtk.tokenizer import tokenizer_json, train
    texts = ["In the beginning God created the heaven and the earth.", "A hacker's hack: 42 bytes, 3.14 ms!"] * 20
    vocab, merges = train(texts, VOCAB, log_every=0)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_text(json.dumps(tokenizer_json(vocab, merges), ensure_ascii=False))
    return path


def ort_run(model: Path, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    """Run a graph in onnxruntime-node (the server's runtime) and return its outputs."""
    types = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", np.dtype(np.int64): "int64"}
    back = {"float32": np.float32, "float16": np.float16, "int64": np.int64}
    with tempfile.TemporaryDirectory() as d:
        spec = {}
        for name, arr in inputs.items():
            arr = np.ascontiguousarray(arr)
            path = Path(d) / f"in-{len(spec)}.bin"
            path.write_bytes(arr.tobytes())
            spec[name] = {"type": types[arr.dtype], "dims": list(arr.shape), "path": str(path)}
        req = {"model": str(model), "inputs": spec, "outputs": outputs, "outDir": d}
        proc = subprocess.run(["node", str(ORT_RUN)], input=json.dumps(req), capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        reply = json.loads(proc.stdout)
        return {n: np.fromfile(r["path"], dtype=back[r["type"]]).reshape(r["dims"]) for n, r in reply.items()}
