"""Byte-level BPE: train a small vocabulary and write it as a Hugging Face `tokenizer.json`.

The `tokenizers` Python package is not installable here (no PyPI), so training and encoding
are implemented in this file; the output is the standard format that any tokenizers
implementation (Rust, Python, @huggingface/tokenizers in JS) reads. Encoding here follows the
same rules as those implementations: GPT-2 pre-tokenisation regex, byte-to-unicode mapping,
merges applied by rank; test_tokenizer.py checks it against the JS implementation.

Special ids: 0 = <pad> (also the autoencoder's mask id), 1 = <s> (BOS), 2 = </s> (EOS).

    /usr/bin/python3 -m calmtk.tokenizer --data models/data/train.jsonl --vocab-size 4096 \
        --out models/runs/tokenizer.json
"""
from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import regex

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIALS = [PAD, BOS, EOS]
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_PRETOKEN = regex.compile(GPT2_PATTERN)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode map used by ByteLevel."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def pretokenize(text: str) -> list[str]:
    return ["".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8")) for piece in _PRETOKEN.findall(text)]


def train(texts, vocab_size: int, log_every: int = 500) -> tuple[dict[str, int], list[tuple[str, str]]]:
    words = collections.Counter()
    for t in texts:
        words.update(pretokenize(t))
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for b in range(256):
        vocab[BYTE_TO_CHAR[b]] = len(vocab)
    seqs = [list(w) for w in words]
    freqs = list(words.values())
    pair_counts: collections.Counter = collections.Counter()
    where: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
    for i, s in enumerate(seqs):
        for a, b in zip(s, s[1:]):
            pair_counts[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    merges: list[tuple[str, str]] = []
    start = time.time()
    while len(vocab) < vocab_size and pair_counts:
        # Highest count wins; ties go to the first in insertion order, which is deterministic.
        best = max(pair_counts, key=pair_counts.__getitem__)
        if pair_counts[best] < 2:
            break
        merged = best[0] + best[1]
        merges.append(best)
        vocab[merged] = len(vocab)
        for i in list(where[best]):
            s, f = seqs[i], freqs[i]
            for a, b in zip(s, s[1:]):
                pair_counts[(a, b)] -= f
                if pair_counts[(a, b)] <= 0:
                    del pair_counts[(a, b)]
            out, j = [], 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == best[0] and s[j + 1] == best[1]:
                    out.append(merged)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out
            for a, b in zip(out, out[1:]):
                pair_counts[(a, b)] += f
                where[(a, b)].add(i)
        del where[best]
        if log_every and len(merges) % log_every == 0:
            print(f"  merges {len(merges)}/{vocab_size - 259}  {time.time() - start:.0f}s", flush=True)
    return vocab, merges


class Tokenizer:
    """Encoder/decoder for the files `train` writes (and any byte-level BPE tokenizer.json)."""

    def __init__(self, path: Path | str):
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
        self.vocab: dict[str, int] = spec["model"]["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
        self.ranks = {m: r for r, m in enumerate(merges)}
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.special = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _bpe(self, word: str) -> list[int]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = list(word)
        while len(parts) > 1:
            ranked = [(self.ranks.get((a, b), 1 << 30), k) for k, (a, b) in enumerate(zip(parts, parts[1:]))]
            rank, k = min(ranked)
            if rank == 1 << 30:
                break
            parts[k : k + 2] = [parts[k] + parts[k + 1]]
        ids = [self.vocab[p] for p in parts]
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        return [i for w in pretokenize(text) for i in self._bpe(w)]

    def decode(self, ids) -> str:
        data = bytearray()
        for i in ids:
            tok = self.id_to_token[int(i)]
            if tok in self.special:
                continue
            data.extend(CHAR_TO_BYTE[c] for c in tok)
        return data.decode("utf-8", "replace")


def tokenizer_json(vocab: dict[str, int], merges: list[tuple[str, str]]) -> dict:
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
            for t in SPECIALS
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def read_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("models/data/train.jsonl"))
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--out", type=Path, default=Path("models/runs/tokenizer.json"))
    args = ap.parse_args()
    t0 = time.time()
    vocab, merges = train(read_texts(args.data), args.vocab_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(tokenizer_json(vocab, merges), ensure_ascii=False), encoding="utf-8")
    print(f"vocab {len(vocab)} merges {len(merges)} in {time.time() - t0:.0f}s -> {args.out}")


if __name__ == "__main__":
    main()
