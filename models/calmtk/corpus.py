"""Build the training corpus from public-domain English text that Debian ships.

Sources (see models/README.md for licences):
  - King James Bible       package bible-kjv (+ bible-kjv-text), read with `bible`
  - World English Bible    package sword-text-web, read with `mod2imp` (libsword-utils)
  - The Jargon File        package jargon-text
  - The Devil's Dictionary package dict-devil

One document per Bible chapter, Jargon File entry block and dictionary entry. Every
`EVAL_EVERY`-th document (in a fixed, seeded order) is held out for evaluation.

    /usr/bin/python3 -m calmtk.corpus --out models/data
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import subprocess
from pathlib import Path

EVAL_EVERY = 40


def _reflow(block: str) -> str:
    """Join hard-wrapped prose lines; keep indented verse lines (poetry, quotations) apart."""
    paragraphs = []
    for para in re.split(r"\n\s*\n", block):
        lines = [ln for ln in para.split("\n") if ln.strip()]
        if not lines:
            continue
        if all(ln.startswith("    ") for ln in lines):
            paragraphs.append("\n".join(ln.strip() for ln in lines))
        else:
            paragraphs.append(" ".join(ln.strip() for ln in lines))
    return "\n\n".join(paragraphs)


def kjv_documents() -> list[str]:
    text = subprocess.run(["bible", "gen1:1-rev22:21"], check=True, capture_output=True, text=True).stdout
    docs = []
    for chapter in re.split(r"\n(?=\S[^\n]* \d+\n\n)", text):
        lines = chapter.strip().split("\n")
        if len(lines) < 3:
            continue
        title, body = lines[0].strip(), "\n".join(lines[1:])
        verses = [re.sub(r"\s+", " ", v).strip() for v in re.split(r"\n\s+\d+ ", "\n" + body.strip("\n")) if v.strip()]
        verses = [re.sub(r"^\d+ ", "", v) for v in verses]
        docs.append(title + "\n" + "\n".join(verses))
    return docs


_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_TAG = re.compile(r"<[^>]+>")


def web_documents() -> list[str]:
    imp = subprocess.run(["mod2imp", "engWEB2015eb"], check=True, capture_output=True, text=True).stdout
    chapters: dict[str, list[str]] = {}
    for entry in imp.split("$$$")[1:]:
        head, _, body = entry.partition("\n")
        m = re.match(r"(.+) (\d+):(\d+)$", head.strip())
        if not m or m.group(3) == "0":
            continue
        verse = _TAG.sub("", _NOTE.sub("", body))
        verse = re.sub(r"\s+", " ", verse).strip()
        verse = re.sub(r" ([,.;:!?\u2019\u201d])", r"\1", re.sub(r"([\u2018\u201c]) ", r"\1", verse))
        if verse:
            chapters.setdefault(f"{m.group(1)} {m.group(2)}", []).append(verse)
    return [title + "\n" + "\n".join(verses) for title, verses in chapters.items()]


def jargon_documents() -> list[str]:
    text = gzip.open("/usr/share/doc/jargon-text/jargon.txt.gz", "rt", encoding="utf-8").read()
    # Box-drawing tables do not reflow into prose; drop them.
    text = "\n".join(ln for ln in text.split("\n") if not re.search(r"[\u2500-\u257f]", ln))
    blocks, current, size = [], [], 0
    for para in re.split(r"\n\s*\n", text):
        if not para.strip():
            continue
        current.append(para)
        size += len(para)
        if size > 1500:
            blocks.append(_reflow("\n\n".join(current)))
            current, size = [], 0
    if current:
        blocks.append(_reflow("\n\n".join(current)))
    return blocks


def devil_documents() -> list[str]:
    def b64(s: str) -> int:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        n = 0
        for ch in s:
            n = n * 64 + alphabet.index(ch)
        return n

    data = gzip.open("/usr/share/dictd/devil.dict.dz", "rb").read()
    docs = []
    for line in Path("/usr/share/dictd/devil.index").read_text(encoding="utf-8").splitlines():
        word, off, length = line.split("\t")
        if word.startswith("00"):
            continue
        entry = data[b64(off) : b64(off) + b64(length)].decode("utf-8", "replace")
        entry = _reflow(entry.strip("\n"))
        if entry:
            docs.append(entry)
    return docs


def build(out: Path, seed: int = 0) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    sources = {
        "kjv": kjv_documents(),
        "web": web_documents(),
        "jargon": jargon_documents(),
        "devil": devil_documents(),
    }
    docs = [(src, d) for src, ds in sources.items() for d in ds]
    random.Random(seed).shuffle(docs)
    counts = {"train": 0, "eval": 0}
    with open(out / "train.jsonl", "w", encoding="utf-8") as tr, open(out / "eval.jsonl", "w", encoding="utf-8") as ev:
        for i, (src, text) in enumerate(docs):
            split = "eval" if i % EVAL_EVERY == 0 else "train"
            (ev if split == "eval" else tr).write(json.dumps({"text": text, "source": src}) + "\n")
            counts[split] += 1
    counts.update({f"chars_{k}": sum(len(d) for d in v) for k, v in sources.items()})
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("models/data"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(build(args.out, args.seed)))


if __name__ == "__main__":
    main()
