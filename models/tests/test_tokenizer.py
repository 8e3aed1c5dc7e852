"""The Python BPE (used for training data) and the JS tokenizers library (used by the server)
must turn text into the same ids, or the served model sees inputs it was never trained on."""
from __future__ import annotations

import json
import subprocess

from calmtk.tokenizer import Tokenizer, tokenizer_json, train
from conftest import REPO

TEXTS = [
    "In the beginning God created the heaven and the earth.",
    "  leading spaces, trailing spaces   \n\n\tand tabs\r\n",
    "Numbers 1234567 and 3.14159; the year 1611 — em dash “quotes” ‘single’",
    "Unicode: café naïve Ærøskøbing 東京 😀👍🏽 ﬁ",
    "it's we're they'll I'd you've she's ISN'T",
    ":hack: /hak/, n. {foo} [bar] <@_@> ~tilde~ `code` $x = y^2$",
    "",
]


def test_python_encoder_matches_js_tokenizers(tmp_path):
    vocab, merges = train(TEXTS * 5 + ["the quick brown fox jumps over the lazy dog"] * 20, 600, log_every=0)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(tokenizer_json(vocab, merges), ensure_ascii=False), encoding="utf-8")
    tok = Tokenizer(path)
    script = """
      import { Tokenizer } from '@huggingface/tokenizers';
      import { readFileSync } from 'node:fs';
      const [path, texts] = [process.argv[1], JSON.parse(readFileSync(0, 'utf8'))];
      const tok = new Tokenizer(JSON.parse(readFileSync(path, 'utf8')), {});
      const out = texts.map((t) => { const ids = tok.encode(t, { add_special_tokens: false }).ids; return { ids, text: ids.length ? tok.decode(ids) : '' }; });
      process.stdout.write(JSON.stringify(out));
    """
    proc = subprocess.run(["node", "--input-type=module", "-e", script, str(path)], input=json.dumps(TEXTS),
                          capture_output=True, text=True, cwd=REPO, check=True)
    js = json.loads(proc.stdout)
    for text, got in zip(TEXTS, js):
        ids = tok.encode(text)
        assert got["ids"] == ids, text
        assert tok.decode(ids) == text
        assert got["text"] == text


def test_special_ids_are_reserved():
    vocab, _ = train(["abc abc abd"], 270, log_every=0)
    assert [vocab["<pad>"], vocab["<s>"], vocab["</s>"]] == [0, 1, 2]
