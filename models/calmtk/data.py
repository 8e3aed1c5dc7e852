"""Tokenised corpus: encode a JSONL file once, cache it, and cut it the way each model trains."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .tokenizer import Tokenizer


class Corpus:
    """All documents of one JSONL file as one flat token array plus document offsets."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray):
        self.tokens, self.offsets = tokens, offsets

    @classmethod
    def load(cls, jsonl: Path, tokenizer_path: Path) -> "Corpus":
        key = hashlib.sha1(Path(tokenizer_path).read_bytes() + str(Path(jsonl).resolve()).encode()).hexdigest()[:12]
        cache = Path(jsonl).with_suffix(f".{key}.npz")
        if cache.exists():
            z = np.load(cache)
            return cls(z["tokens"], z["offsets"])
        tok = Tokenizer(tokenizer_path)
        docs = [tok.encode(json.loads(line)["text"]) for line in open(jsonl, encoding="utf-8") if line.strip()]
        offsets = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
        tokens = np.fromiter((t for d in docs for t in d), dtype=np.int32, count=int(offsets[-1]))
        np.savez(cache, tokens=tokens, offsets=offsets)
        return cls(tokens, offsets)

    def documents(self):
        for a, b in zip(self.offsets[:-1], self.offsets[1:]):
            yield self.tokens[a:b]

    def chunks(self, k: int, eos: int, pad: int) -> np.ndarray:
        """Autoencoder data: each document + EOS, right-padded with PAD to a multiple of K -> [N, K]."""
        out = []
        for doc in self.documents():
            d = np.concatenate([doc, [eos]])
            d = np.concatenate([d, np.full((-len(d)) % k, pad, dtype=d.dtype)])
            out.append(d.reshape(-1, k))
        return np.concatenate(out).astype(np.int64)

    def stream(self, bos: int) -> np.ndarray:
        """LM data: documents each prefixed with BOS, concatenated (no EOS, no PAD)."""
        out = []
        for doc in self.documents():
            out.append(np.concatenate([[bos], doc]))
        return np.concatenate(out).astype(np.int64)


def random_blocks(stream: np.ndarray, block: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    starts = rng.integers(0, len(stream) - block, size=batch)
    return np.stack([stream[s : s + block] for s in starts])
