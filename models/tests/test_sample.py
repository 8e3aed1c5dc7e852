"""calmtk.sample draws whole chunks at T = 1 and with the batch approximation at T = 1/n."""
from __future__ import annotations

import torch

from calmtk.sample import generate, pick


def test_generate_returns_whole_chunks(tiny_calm):
    for t in (1.0, 0.5):
        out = generate(tiny_calm, [1, 5, 6], chunks=3, temperature=t, pool=20, seed=0)
        assert len(out) == 12 and all(0 <= i < tiny_calm.cfg.vocab_size for i in out)


def test_pick_follows_the_paper_example():
    # pool A,C,A,D,B,E,A,F,B,G at T = 1/2: A has weight C(3,2) = 3, B weight 1 -> P(A) = 3/4
    pool = [(c,) for c in "ACADBEAFBG"]
    g = torch.Generator().manual_seed(0)
    draws = [pick(pool, 2, g) for _ in range(4000)]
    share = sum(d == ("A",) for d in draws) / len(draws)
    assert abs(share - 0.75) < 0.03 and set(draws) == {("A",), ("B",)}
