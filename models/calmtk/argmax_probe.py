"""Can the decoder's tied output projection (h @ E^T, 4 x 4,096 x 256 per chunk) be cut with a
certified argmax? For energy-head samples of real contexts, this measures how often a rank-r
approximation of E plus a Cauchy-Schwarz bound on its residual proves the argmax among the
top-M approximate candidates, and how often the true argmax is among those candidates at all
(issue 12, item 1; figures in docs/sampling.md, "Left open").

    cd models && /usr/bin/python3 -m calmtk.argmax_probe AE_DIR CALM_DIR EVAL.jsonl TOKENIZER.json
"""
import json
import sys

import numpy as np
import torch

from calmtk.export import load_calm
from calmtk.tokenizer import Tokenizer

torch.set_num_threads(1)
ae_dir, calm_dir, data, tokenizer = sys.argv[1:5]
calm = load_calm(ae_dir, calm_dir)
ae = calm.ae_model
E = ae.encoder.embed_tokens.weight.detach().numpy().astype(np.float64)  # [V, d]
# head samples for hidden states from real text
tok = Tokenizer(tokenizer)
texts = [json.loads(line)['text'] for line in open(data)][:8]
ids = [1] + [t for x in texts for t in tok.encode(x)][:4 * 128]
chunks = torch.tensor(ids[:4 * 128]).reshape(1, 128, 4)
with torch.no_grad():
    hidden, _ = calm.backbone(chunks)
    h = hidden.reshape(-1, hidden.shape[-1])
    z = calm.mlp_generator(h, calm.sample_noise((h.shape[0], 16)))  # [128, 16, l]
    z = z.reshape(-1, z.shape[-1])
    dec = ae.decoder
    x = dec.latent_to_hidden(z)
    for layer in dec.decoder_layers[: dec.stage]: x = layer(x)
    x = dec.expand_layer(x).reshape(z.shape[0], dec.k, dec.d)
    for layer in dec.decoder_layers[dec.stage: 2 * dec.stage]: x = layer(x)
    H = dec.norm(x).reshape(-1, dec.d).numpy().astype(np.float64)  # [N*K, d]
full = H @ E.T
truth = full.argmax(1)
U, S, Vt = np.linalg.svd(E, full_matrices=False)
hn = np.linalg.norm(H, axis=1)
for r in [16, 32, 64]:
    A = U[:, :r] * S[:r]; B = Vt[:r]               # E ~ A @ B
    R = E - A @ B; rn = np.linalg.norm(R, axis=1)  # residual norms per token
    approx = (H @ B.T) @ A.T                        # [N, V]
    for M in [4, 16]:
        top = np.argpartition(-approx, M, axis=1)[:, :M]
        exact_top = np.take_along_axis(full, top, 1)
        best = exact_top.max(1); best_tok = np.take_along_axis(top, exact_top.argmax(1)[:, None], 1)[:, 0]
        # any token outside the top-M: score <= approx_v + rn_v*|h| <= max over outside of that
        ub = approx + rn[None, :] * hn[:, None]
        mask = np.ones_like(ub, dtype=bool); np.put_along_axis(mask, top, False, 1)
        ub_out = np.where(mask, ub, -np.inf).max(1)
        cert = best > ub_out
        ok = (best_tok == truth)
        print(f"rank {r} top-{M}: certified {cert.mean():.3f}, certified and correct {(cert & ok).mean():.3f}, wrong-but-certified {(cert & ~ok).sum()}; MACs per position {(r * 256 + 4096 * r + M * 256) / (4096 * 256):.3f} of full")
print("margin stats: top1-top2 median", np.median(np.sort(full,1)[:,-1]-np.sort(full,1)[:,-2]), "median |h|", np.median(hn), "median residual norm r=64", np.median(np.linalg.norm(E - (U[:, :64]*S[:64]) @ Vt[:64], axis=1)))
for r in [16, 32, 64]:
    A = U[:, :r] * S[:r]; B = Vt[:r]
    approx = (H @ B.T) @ A.T
    for M in [4, 16, 64]:
        top = np.argpartition(-approx, M, axis=1)[:, :M]
        recall = (top == truth[:, None]).any(1).mean()
        print(f"rank {r} top-{M}: true argmax among candidates {recall:.4f}")
