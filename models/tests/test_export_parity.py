"""Each exported graph matches its PyTorch module (1e-4, fp32) when run in onnxruntime-node."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from calmtk.export import export_ar, export_calm
from conftest import VOCAB, ort_run

ATOL = 1e-4


@pytest.fixture(scope="module")
def calm_bundle(tiny_calm, tokenizer_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("calm-bundle")
    export_calm(tiny_calm, tokenizer_file, out, name="tiny-calm")
    return out


@pytest.fixture(scope="module")
def ar_bundle(tiny_ar, tokenizer_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("ar-bundle")
    export_ar(tiny_ar, tokenizer_file, out, name="tiny-ar")
    return out


def kv_feeds(layers, per_row_kv, past_len, rng, block_size=4, dtype=np.float32):
    """The paged cache (bundle version 2): each row's first past_len[b] positions of its
    per-layer (k, v) [Hkv, len, Dh] go into blocks of a shared pool, in a shuffled block order;
    every other slot of the pool, and the padding of short block tables, hold random garbage
    that the graph must ignore."""
    tables = [-(-p // block_size) for p in past_len]
    width = max(tables + [0])
    blocks = max(1, sum(tables) + 2)
    order = rng.permutation(blocks)
    table = np.zeros((len(past_len), width), np.int64)
    at = 0
    for b, n in enumerate(tables):
        table[b, :n] = order[at : at + n]
        table[b, n:] = rng.integers(0, blocks, size=width - n)
        at += n
    feeds = {"block_table": table}
    for i in range(layers):
        for j, kind in enumerate(("key", "value")):
            hkv, dh = per_row_kv[0][i][j].shape[0], per_row_kv[0][i][j].shape[2]
            pool = (rng.standard_normal((blocks, hkv, block_size, dh)) * 10).astype(dtype)
            for b, p in enumerate(past_len):
                rows = per_row_kv[b][i][j][:, :p]
                for pos in range(p):
                    pool[table[b, pos // block_size], :, pos % block_size] = rows[:, pos]
            feeds[f"{kind}_cache.{i}"] = pool
    return feeds


def empty_kv_feeds(layers, batch, kv_heads, head_dim, dtype=np.float32):
    """No past: a block table with no columns over a one-block pool."""
    feeds = {"block_table": np.zeros((batch, 0), np.int64)}
    for i in range(layers):
        for kind in ("key", "value"):
            feeds[f"{kind}_cache.{i}"] = np.zeros((1, kv_heads, 1, head_dim), dtype)
    return feeds


def torch_full(fn, ids):
    """Reference: one full-sequence forward from an empty cache -> (out [T,...], per-layer (k, v) [Hkv,T,Dh])."""
    with torch.no_grad():
        out, new = fn(torch.from_numpy(ids)[None])
    return out[0].numpy(), [(k[0].numpy(), v[0].numpy()) for k, v in new]


def check_rows_at_different_past_lengths(bundle, fn, make_ids, out_name, layers):
    rng = np.random.default_rng(0)
    past_len, new = [5, 2, 0], 3
    seqs = [make_ids(rng, p + new) for p in past_len]
    refs = [torch_full(fn, s) for s in seqs]
    feeds = {
        ("chunk_ids" if out_name == "hidden" else "input_ids"): np.stack([s[p:] for s, p in zip(seqs, past_len)]),
        "past_len": np.array(past_len, dtype=np.int64),
        **kv_feeds(layers, [r[1] for r in refs], past_len, rng),
    }
    got = ort_run(bundle / "backbone.onnx", feeds)
    for b, p in enumerate(past_len):
        np.testing.assert_allclose(got[out_name][b], refs[b][0][p:], atol=ATOL, rtol=ATOL)
        for i in range(layers):
            np.testing.assert_allclose(got[f"new_key.{i}"][b], refs[b][1][i][0][:, p:], atol=ATOL, rtol=ATOL)
            np.testing.assert_allclose(got[f"new_value.{i}"][b], refs[b][1][i][1][:, p:], atol=ATOL, rtol=ATOL)


def check_step_by_step_equals_full(bundle, make_ids, id_name, out_name, layers):
    rng = np.random.default_rng(1)
    ids = np.stack([make_ids(rng, 6) for _ in range(2)])
    empty = empty_kv_feeds(layers, 2, 2, 8)  # [Hkv, Dh] of the tiny config
    full = ort_run(bundle / "backbone.onnx", {id_name: ids, "past_len": np.zeros(2, np.int64), **empty})
    # per row, per layer: (k, v) [Hkv, t, Dh] written so far, fed back through the paged pool
    rows = [[(np.zeros((2, 0, 8), np.float32), np.zeros((2, 0, 8), np.float32)) for _ in range(layers)] for _ in range(2)]
    for t in range(ids.shape[1]):
        cache = kv_feeds(layers, rows, [t, t], rng, block_size=4) if t > 0 else empty
        step = ort_run(bundle / "backbone.onnx", {id_name: ids[:, t : t + 1], "past_len": np.full(2, t, np.int64), **cache})
        np.testing.assert_allclose(step[out_name][:, 0], full[out_name][:, t], atol=ATOL, rtol=ATOL)
        for b in range(2):
            rows[b] = [(np.concatenate([k, step[f"new_key.{i}"][b]], axis=1), np.concatenate([v, step[f"new_value.{i}"][b]], axis=1))
                       for i, (k, v) in enumerate(rows[b])]
    for b in range(2):
        for i in range(layers):
            np.testing.assert_allclose(rows[b][i][0], full[f"new_key.{i}"][b], atol=ATOL, rtol=ATOL)


def calm_ids(rng, n):
    return rng.integers(0, VOCAB, size=(n, 4), dtype=np.int64)


def ar_ids(rng, n):
    return rng.integers(0, VOCAB, size=(n,), dtype=np.int64)


def test_manifest(calm_bundle, ar_bundle):
    m = json.loads((calm_bundle / "manifest.json").read_text())
    assert (m["format"], m["version"], m["kind"], m["dtype"], m["patch_size"]) == ("calm-bundle", 2, "calm", "float32", 4)
    assert m["special_tokens"] == {"pad": 0, "bos": 1, "eos": 2}
    for f in m["files"].values():
        assert (calm_bundle / f).exists(), f
    a = json.loads((ar_bundle / "manifest.json").read_text())
    assert (a["kind"], a["patch_size"], a["num_layers"]) == ("ar", 1, m["num_layers"])


def test_calm_backbone_rows_at_different_past_lengths(calm_bundle, tiny_calm):
    check_rows_at_different_past_lengths(calm_bundle, tiny_calm.backbone, calm_ids, "hidden", 2)


def test_calm_step_by_step_decode_equals_full_forward(calm_bundle):
    check_step_by_step_equals_full(calm_bundle, calm_ids, "chunk_ids", "hidden", 2)


def test_ar_logits_rows_at_different_past_lengths(ar_bundle, tiny_ar):
    check_rows_at_different_past_lengths(ar_bundle, tiny_ar, ar_ids, "logits", 2)


def test_ar_step_by_step_decode_equals_full_forward(ar_bundle):
    check_step_by_step_equals_full(ar_bundle, ar_ids, "input_ids", "logits", 2)


def test_energy_head_many_samples_per_hidden_state(calm_bundle, tiny_calm):
    rng = np.random.default_rng(2)
    hidden = rng.standard_normal((3, 32)).astype(np.float32)
    noise = (rng.random((3, 5, 16)) - 0.5).astype(np.float32)
    got = ort_run(calm_bundle / "head.onnx", {"hidden": hidden, "noise": noise})["latent"]
    with torch.no_grad():
        want = tiny_calm.mlp_generator(torch.from_numpy(hidden), torch.from_numpy(noise)).numpy()
    assert got.shape == (3, 5, 8)
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=ATOL)
    # samples of one hidden state differ only through their noise
    assert not np.allclose(got[0, 0], got[0, 1])


def test_decoder_argmax_in_graph(calm_bundle, tiny_calm):
    latent = np.random.default_rng(3).standard_normal((64, 8)).astype(np.float32)
    got = ort_run(calm_bundle / "decoder.onnx", {"latent": latent})["token_ids"]
    with torch.no_grad():
        want = tiny_calm.ae_model.decode(torch.from_numpy(latent)).numpy()
    assert got.dtype == np.int64 and got.shape == (64, 4)
    np.testing.assert_array_equal(got, want)


def test_encoder_mean_and_log_std(calm_bundle, tiny_calm):
    ids = np.random.default_rng(4).integers(0, VOCAB, size=(16, 4), dtype=np.int64)
    got = ort_run(calm_bundle / "encoder.onnx", {"token_ids": ids})
    with torch.no_grad():
        mean, log_std = tiny_calm.ae_model.encode(torch.from_numpy(ids))
    np.testing.assert_allclose(got["mean"], mean.numpy(), atol=ATOL, rtol=ATOL)
    np.testing.assert_allclose(got["log_std"], log_std.numpy(), atol=ATOL, rtol=ATOL)


def test_float16_variant_runs_and_stays_close(tiny_calm, tiny_ar, tokenizer_file, tmp_path):
    """fp16 graphs (for GPU) keep float32 islands; on the CPU provider they stay within fp16 error."""
    export_calm(tiny_calm, tokenizer_file, tmp_path / "calm16", half=True)
    export_ar(tiny_ar, tokenizer_file, tmp_path / "ar16", half=True)
    assert json.loads((tmp_path / "calm16" / "manifest.json").read_text())["dtype"] == "float16"
    assert next(tiny_calm.parameters()).dtype == torch.float32  # export must not retype the caller's model
    rng = np.random.default_rng(5)
    ids = rng.integers(0, VOCAB, size=(2, 3, 4), dtype=np.int64)
    empty = empty_kv_feeds(2, 2, 2, 8, np.float16)
    got = ort_run(tmp_path / "calm16" / "backbone.onnx", {"chunk_ids": ids, "past_len": np.zeros(2, np.int64), **empty})
    assert got["hidden"].dtype == np.float16
    with torch.no_grad():
        want = tiny_calm.backbone(torch.from_numpy(ids))[0].numpy()
    np.testing.assert_allclose(got["hidden"].astype(np.float32), want, atol=2e-2 * np.abs(want).max())
    hidden = rng.standard_normal((2, 32)).astype(np.float32)
    noise = (rng.random((2, 4, 16)) - 0.5).astype(np.float32)
    lat = ort_run(tmp_path / "calm16" / "head.onnx", {"hidden": hidden.astype(np.float16), "noise": noise.astype(np.float16)})
    with torch.no_grad():
        want = tiny_calm.mlp_generator(torch.from_numpy(hidden), torch.from_numpy(noise)).numpy()
    np.testing.assert_allclose(lat["latent"].astype(np.float32), want, atol=2e-2 * np.abs(want).max())
    tok = rng.integers(0, VOCAB, size=(2, 5), dtype=np.int64)
    logits = ort_run(tmp_path / "ar16" / "backbone.onnx", {"input_ids": tok, "past_len": np.zeros(2, np.int64), **empty})["logits"]
    with torch.no_grad():
        want = tiny_ar(torch.from_numpy(tok))[0].numpy()
    np.testing.assert_allclose(logits.astype(np.float32), want, atol=2e-2 * np.abs(want).max())


def test_large_graphs_keep_weights_in_external_data(tiny_ar, tokenizer_file, tmp_path, monkeypatch):
    """Graphs over protobuf's 2 GB limit (CALM-XL's backbone) are written with ONNX external
    data; the threshold is lowered here so that a tiny model takes the same path."""
    import calmtk.export as export_module

    monkeypatch.setattr(export_module, "EXTERNAL_DATA_THRESHOLD", 0)
    export_ar(tiny_ar, tokenizer_file, tmp_path / "ar")
    graph, data = tmp_path / "ar" / "backbone.onnx", tmp_path / "ar" / "backbone.onnx.data"
    assert data.exists() and data.stat().st_size > graph.stat().st_size
    tok = np.random.default_rng(6).integers(0, VOCAB, size=(1, 4), dtype=np.int64)
    empty = empty_kv_feeds(2, 1, 2, 8)
    got = ort_run(graph, {"input_ids": tok, "past_len": np.zeros(1, np.int64), **empty})["logits"]
    with torch.no_grad():
        want = tiny_ar(torch.from_numpy(tok))[0].numpy()
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=ATOL)


def test_version_1_bundle_upgrades_to_the_paged_interface(ar_bundle, tiny_ar, tmp_path):
    """calmtk.paged turns a version-1 backbone (dense past inputs) into exactly the graph the
    exporter writes today."""
    from calmtk.export import BackboneGraph, past_names, save_graph
    from calmtk.paged import upgrade_bundle

    old = tmp_path / "v1"
    old.mkdir()
    cfg = tiny_ar.cfg
    pin, pout = past_names(cfg.num_hidden_layers)
    hkv, dh = cfg.num_key_value_heads, cfg.head_dim
    dims = {"input_ids": ["batch", "new"], "past_len": ["batch"], "logits": ["batch", "new", cfg.vocab_size]}
    dims.update({n: ["batch", hkv, "past", dh] for n in pin})
    dims.update({n: ["batch", hkv, "new", dh] for n in pout})
    past = [torch.zeros(2, hkv, 5, dh) for _ in pin]
    save_graph(BackboneGraph(tiny_ar), (torch.zeros(2, 3, dtype=torch.long), torch.tensor([5, 2]), *past),
               old / "backbone.onnx", ["input_ids", "past_len", *pin], ["logits", *pout], dims, False)
    manifest = json.loads((ar_bundle / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    assert upgrade_bundle(old) is True
    assert json.loads((old / "manifest.json").read_text())["version"] == 2
    assert upgrade_bundle(old) is False  # already paged: left alone
    rng = np.random.default_rng(4)
    past_len = [6, 1]
    refs = [torch_full(tiny_ar, ar_ids(rng, p + 2)) for p in past_len]
    feeds = {"input_ids": ar_ids(rng, 4).reshape(2, 2), "past_len": np.array(past_len, np.int64),
             **kv_feeds(2, [r[1] for r in refs], past_len, rng)}
    got, want = ort_run(old / "backbone.onnx", feeds), ort_run(ar_bundle / "backbone.onnx", feeds)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
