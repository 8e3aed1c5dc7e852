"""Checkpoints in every form the authors' tooling writes: pytorch_model.bin, sharded .bin with an
index, model.safetensors, sharded safetensors with an index. Safetensors files here are written
by a small writer in this file that follows the documented format (and by the `safetensors`
package itself where it is installed), independently of calmtk's own writer."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from calmtk import checkpoint, safetensors_io
from calmtk.autoencoder import Autoencoder
from calmtk.calm import CALM
from calmtk.config import save_config
from calmtk.export import export_calm, load_autoencoder, load_calm

HAVE_PACKAGE = safetensors_io.package_available()


# ---- an independent writer, straight from the format's documentation ----

NP_NAMES = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64",
            np.dtype("int32"): "I32", np.dtype("int16"): "I16", np.dtype("int8"): "I8", np.dtype("uint8"): "U8",
            np.dtype("bool"): "BOOL"}


def raw_entry(value) -> tuple[str, list[int], bytes]:
    """(safetensors dtype, shape, little-endian bytes) of a numpy array or torch tensor."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            return "BF16", list(value.shape), value.contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
        value = value.numpy()
    return NP_NAMES[value.dtype], list(value.shape), value.astype(value.dtype.newbyteorder("<")).tobytes()


def write_st(path, tensors: dict, metadata: dict | None = None, pad: bool = True, entries: dict | None = None) -> None:
    """Tensors in the given order (so data may be unaligned); entries: raw (dtype, shape, bytes)."""
    items = [(n, *raw_entry(v)) for n, v in tensors.items()] + [(n, *e) for n, e in (entries or {}).items()]
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def write_sharded_st(directory, state: dict[str, torch.Tensor], shards: int) -> dict[str, str]:
    """The transformers layout: model-0000i-of-0000n.safetensors + model.safetensors.index.json."""
    directory.mkdir(parents=True, exist_ok=True)
    names = list(state)
    weight_map = {}
    for i in range(shards):
        part = names[i::shards]
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_st(directory / fname, {n: state[n] for n in part}, metadata={"format": "pt"})
        weight_map.update((n, fname) for n in part)
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return weight_map


# ---- the reader ----

def test_reader_reads_every_supported_dtype(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f16_odd": np.array([1.5, -2.25, 65504.0], np.float16),  # 6 bytes first: later tensors are unaligned
        "f32": torch.randn(3, 5, generator=g).numpy(),
        "bf16": torch.randn(4, 3, generator=g).bfloat16(),
        "f64": np.array([[1e300, -1e-300]]),
        "i64": np.array([-(2**62), 5, 2**40], np.int64),
        "i32": np.arange(-3, 3, dtype=np.int32).reshape(2, 3),
        "i16": np.array([-32768, 7], np.int16),
        "i8": np.array([-128, 127], np.int8),
        "u8": np.array([0, 255], np.uint8),
        "bool": np.array([[True, False], [False, True]]),
        "scalar": np.array(2.5, np.float32),
        "empty": np.zeros((0, 4), np.float32),
    }
    write_st(tmp_path / "x.safetensors", tensors, metadata={"format": "pt"}, pad=False)
    meta, header, _ = safetensors_io.read_header(tmp_path / "x.safetensors")
    assert meta == {"format": "pt"} and list(header) == list(tensors)
    got = safetensors_io.read_torch(tmp_path / "x.safetensors")
    for name, want in tensors.items():
        want = want if isinstance(want, torch.Tensor) else torch.from_numpy(want)
        assert got[name].dtype == want.dtype and got[name].shape == want.shape, name
        assert torch.equal(got[name], want), name
    arrays = safetensors_io.read_numpy(tmp_path / "x.safetensors")
    assert arrays["bf16"].dtype == np.float32
    np.testing.assert_array_equal(arrays["bf16"], tensors["bf16"].float().numpy())
    np.testing.assert_array_equal(arrays["i32"], tensors["i32"])


def test_bf16_widens_by_shifting_the_bits(tmp_path):
    bits = np.array([0x3F80, 0xC020, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x7F7F], np.uint16)  # 1, -2.5, inf, -inf, tiny, -0, max
    write_st(tmp_path / "b.safetensors", {}, entries={"w": ("BF16", [7], bits.astype("<u2").tobytes())})
    got = safetensors_io.read_numpy(tmp_path / "b.safetensors")["w"]
    np.testing.assert_array_equal(got.view(np.uint32), bits.astype(np.uint32) << 16)
    assert got[0] == 1.0 and got[1] == -2.5 and np.isposinf(got[2]) and np.isneginf(got[3])
    t = safetensors_io.read_torch(tmp_path / "b.safetensors")["w"]
    assert t.dtype == torch.bfloat16
    np.testing.assert_array_equal(t.float().numpy(), got)


@pytest.mark.parametrize("case,message", [
    ("f8", "dtype F8_E4M3, which calmtk does not read"),
    ("short", "not a safetensors file"),
    ("huge_header", "not a safetensors file"),
    ("not_json", "header is not JSON"),
    ("truncated", "outside the"),
    ("size", "bytes for F32"),
])
def test_unsupported_or_broken_files_are_refused(tmp_path, case, message):
    path = tmp_path / "model.safetensors"
    if case == "f8":
        write_st(path, {"ok": np.ones(2, np.float32)}, entries={"w": ("F8_E4M3", [4], b"\0" * 4)})
    elif case == "short":
        path.write_bytes(b"\1\0\0")
    elif case == "huge_header":
        path.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    elif case == "not_json":
        path.write_bytes(struct.pack("<Q", 4) + b"{no}")
    elif case == "truncated":
        write_st(path, {"w": np.ones(64, np.float32)})
        path.write_bytes(path.read_bytes()[:-4])
    else:
        write_st(path, {}, entries={"w": ("F32", [2, 3], b"\0" * 20)})
    with pytest.raises(safetensors_io.SafetensorsError, match=message):
        safetensors_io.load_file(path)
    with pytest.raises(checkpoint.CheckpointError, match=message):
        checkpoint.read_state_dict(tmp_path)


def test_calmtk_writer_follows_the_format(tmp_path):
    g = torch.Generator().manual_seed(1)
    tensors = {"b": torch.randn(3, generator=g).half(), "a": torch.randn(2, 3, generator=g), "c": torch.arange(5),
               "d": torch.randn(3, generator=g).bfloat16(), "e": torch.tensor([True])}
    safetensors_io.save_file(tensors, tmp_path / "w.safetensors", metadata={"format": "pt"})
    raw = (tmp_path / "w.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8 : 8 + n])
    assert header.pop("__metadata__") == {"format": "pt"}
    spans = sorted(e["data_offsets"] for e in header.values())
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no gaps
    for name, t in tensors.items():
        e = header[name]
        b, end = e["data_offsets"]
        assert (8 + n + b) % t.element_size() == 0, name  # aligned
        assert e["shape"] == list(t.shape)
        assert raw[8 + n + b : 8 + n + end] == raw_entry(t)[2], name


@pytest.mark.skipif(not HAVE_PACKAGE, reason="the safetensors package is not installed")
def test_reader_and_writer_agree_with_the_safetensors_package(tmp_path):
    from safetensors.torch import load_file as pkg_load, save_file as pkg_save
    g = torch.Generator().manual_seed(2)
    tensors = {"a": torch.randn(4, 5, generator=g), "b": torch.randn(7, generator=g).half(),
               "c": torch.randn(3, 2, generator=g).bfloat16(), "d": torch.arange(6, dtype=torch.int32), "e": torch.tensor(True)}
    pkg_save(tensors, str(tmp_path / "pkg.safetensors"), metadata={"format": "pt"})
    for name, t in safetensors_io.read_torch(tmp_path / "pkg.safetensors").items():
        assert t.dtype == tensors[name].dtype and torch.equal(t, tensors[name]), name
    safetensors_io.save_file(tensors, tmp_path / "ours.safetensors")
    write_st(tmp_path / "test.safetensors", tensors)
    for f in ("ours.safetensors", "test.safetensors"):
        for name, t in pkg_load(str(tmp_path / f)).items():
            assert torch.equal(t, tensors[name]), (f, name)
        assert safetensors_io.load_file(tmp_path / f, use_package=True).keys() == tensors.keys()


# ---- the reference implementation's own test vectors (huggingface/safetensors, src/tensor.rs tests) ----

REF_HEADER = b'{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}'
BOOL_HEADER = b'{"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}'
REF_FILE = b"<\x00\x00\x00\x00\x00\x00\x00" + REF_HEADER + b"\x00" * 16


def ref_bytes(*values: int) -> bytes:
    return bytes(values)


def test_reference_files_read_as_the_reference_reads_them(tmp_path):
    cases = {
        "basic": (REF_FILE, {"test": torch.zeros(2, 2, dtype=torch.int32)}),
        "scalar": (b'8\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}\x00\x00\x00\x00',
                   {"test": torch.tensor(0, dtype=torch.int32)}),
        "zero_size": (b'<\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"I32","shape":[2,0],"data_offsets":[0, 0]}}',
                      {"test": torch.zeros(2, 0, dtype=torch.int32)}),
        "whitespace_after": (b"\x06\x00\x00\x00\x00\x00\x00\x00{}\x0D\x20\x09\x0A", {}),
        "whitespace_before": (b"\x06\x00\x00\x00\x00\x00\x00\x00\x09\x0A{}\x0D\x20", {}),
        "bools": (struct.pack("<Q", len(BOOL_HEADER)) + BOOL_HEADER + b"\x00\x07\x01",
                  {"b": torch.tensor([False, True, True])}),
    }
    for case, (raw, want) in cases.items():
        path = tmp_path / f"{case}.safetensors"
        path.write_bytes(raw)
        got = safetensors_io.read_torch(path)
        assert got.keys() == want.keys(), case
        for name, t in want.items():
            assert got[name].dtype == t.dtype and got[name].shape == t.shape and torch.equal(got[name], t), case
    np.testing.assert_array_equal(safetensors_io.read_numpy(tmp_path / "bools.safetensors")["b"], [False, True, True])


def test_files_the_reference_refuses_are_refused(tmp_path):
    overlap = "{" + ",".join(f'"weight_{i}":{{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}' for i in range(10)) + "}"
    cases = {
        "overlap": struct.pack("<Q", len(overlap)) + overlap.encode() + b"\x00" * 16,
        "extra_data": REF_FILE + b"extra_bogus_data_for_polyglot_file",
        "short_data": REF_FILE[:-2],
        "too_large": b"<\x00\x00\x00\x00\xff\xff\xff" + REF_HEADER + b"\x00" * 16,
        "empty": b"",
        "no_header": b"<\x00\x00\x00\x00\x00\x00\x00",
        "not_utf8": b"\x01\x00\x00\x00\x00\x00\x00\x00\xff",
        "not_json": b"\x01\x00\x00\x00\x00\x00\x00\x00{",
        "bad_info": b'<\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0, 4]}}',
        "overflow": b'O\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"I32","shape":[2,18446744073709551614],"data_offsets":[0,16]}}'
                    + b"\x00" * 16,
        "overflow_i64": b'N\x00\x00\x00\x00\x00\x00\x00{"test":{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}}'
                        + b"\x00" * 16,
    }
    for case, raw in cases.items():
        path = tmp_path / f"{case}.safetensors"
        path.write_bytes(raw)
        with pytest.raises(safetensors_io.SafetensorsError):
            safetensors_io.read_torch(path)
            pytest.fail(case)


def test_calmtk_writer_writes_the_reference_bytes(tmp_path):
    data = ref_bytes(0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64)  # 0.0 .. 5.0
    expected = {
        ("attn.0", (1, 2, 3)): ref_bytes(64, 0, 0, 0, 0, 0, 0, 0) + b'{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}' + data,
        ("attn0", (1, 1, 2, 3)): ref_bytes(72, 0, 0, 0, 0, 0, 0, 0) + b'{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}'
        + b" " * 7 + data,
    }
    for (name, shape), want in expected.items():
        safetensors_io.save_file({name: torch.arange(6, dtype=torch.float32).reshape(shape)}, tmp_path / "x.safetensors")
        assert (tmp_path / "x.safetensors").read_bytes() == want, name
    safetensors_io.save_file({}, tmp_path / "e.safetensors")
    assert (tmp_path / "e.safetensors").read_bytes() == ref_bytes(8, 0, 0, 0, 0, 0, 0, 0) + b"{}" + b" " * 6
    safetensors_io.save_file({}, tmp_path / "m.safetensors", metadata={"framework": "pt"})
    assert (tmp_path / "m.safetensors").read_bytes() == ref_bytes(40, 0, 0, 0, 0, 0, 0, 0) + b'{"__metadata__":{"framework":"pt"}}' + b" " * 5


# ---- checkpoint directories ----

def write_form(state: dict[str, torch.Tensor], directory, form: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if form == "bin":
        torch.save(state, directory / "pytorch_model.bin")
    elif form == "bin-sharded":
        names = list(state)
        weight_map = {}
        for i in range(3):
            fname = f"pytorch_model-{i + 1:05d}-of-00003.bin"
            torch.save({n: state[n].clone() for n in names[i::3]}, directory / fname)
            weight_map.update((n, fname) for n in names[i::3])
        (directory / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    elif form == "safetensors":
        write_st(directory / "model.safetensors", state, metadata={"format": "pt"})
    elif form == "safetensors-sharded":
        write_sharded_st(directory, state, 3)
    else:  # calmtk's writer, sharded safetensors
        checkpoint.write_state_dict(state, directory, weights="safetensors", max_shard_bytes=20_000)
        assert len(list(directory.glob("model-*-of-*.safetensors"))) >= 2


FORMS = ["bin", "bin-sharded", "safetensors", "safetensors-sharded", "calmtk-sharded"]


@pytest.mark.parametrize("form", FORMS)
def test_every_form_reads_the_same_state(tmp_path, tiny_calm, form):
    state = {k: v.detach().clone() for k, v in tiny_calm.state_dict().items()}
    write_form(state, tmp_path, form)
    got = checkpoint.read_state_dict(tmp_path)
    assert got.keys() == state.keys()
    for name, t in state.items():
        assert got[name].dtype == t.dtype and torch.equal(got[name], t), name
    model = CALM(tiny_calm.cfg, Autoencoder(tiny_calm.ae_model.cfg))
    checkpoint.load_strict(model, got)


def test_index_naming_a_missing_shard_is_refused(tmp_path, tiny_calm):
    write_sharded_st(tmp_path, dict(tiny_calm.state_dict()), 3)
    (tmp_path / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(checkpoint.CheckpointError, match=r"missing shard\(s\) model-00002-of-00003.safetensors"):
        checkpoint.read_state_dict(tmp_path)


def test_shards_that_disagree_with_their_index_are_refused(tmp_path, tiny_calm):
    state = dict(tiny_calm.state_dict())
    weight_map = write_sharded_st(tmp_path, state, 2)
    weight_map["transformer.norm.weight"] = "model-00002-of-00002.safetensors" if weight_map[
        "transformer.norm.weight"].startswith("model-00001") else "model-00001-of-00002.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(checkpoint.CheckpointError, match=r"lacks transformer\.norm\.weight.*holds transformer\.norm\.weight|"
                                                         r"holds transformer\.norm\.weight.*lacks transformer\.norm\.weight"):
        checkpoint.read_state_dict(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "../elsewhere.safetensors"}}))
    with pytest.raises(checkpoint.CheckpointError, match="not a file beside the index"):
        checkpoint.read_state_dict(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(checkpoint.CheckpointError, match="no \"weight_map\""):
        checkpoint.read_state_dict(tmp_path)


def test_a_directory_without_weights_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(checkpoint.CheckpointError, match=r"no checkpoint in .*expected one of model\.safetensors, "
                                                         r"model\.safetensors\.index\.json, pytorch_model\.bin, pytorch_model\.bin\.index\.json"):
        checkpoint.read_state_dict(tmp_path)


@pytest.mark.parametrize("form", ["bin-sharded", "safetensors-sharded"])
def test_strict_loading_names_missing_and_unexpected_tensors_across_shards(tmp_path, tiny_calm, form):
    state = dict(tiny_calm.state_dict())
    del state["transformer.layers.1.mlp.up_proj.weight"]
    del state["ae_model.decoder.norm.weight"]
    state["transformer.layers.9.self_attn.q_proj.weight"] = torch.zeros(2, 2)
    write_form(state, tmp_path / "calm", form)
    checkpoint.save(tiny_calm.ae_model, tiny_calm.ae_model.cfg, tmp_path / "ae")
    save_config(tiny_calm.cfg, tmp_path / "calm", model_type="energy")
    shards = json.loads(next((tmp_path / "calm").glob("*.index.json")).read_text())["weight_map"]
    assert len(set(shards.values())) == 3
    with pytest.raises(checkpoint.CheckpointError) as err:
        load_calm(tmp_path / "ae", tmp_path / "calm")
    assert "missing tensors: transformer.layers.1.mlp.up_proj.weight" in str(err.value)
    assert "unexpected tensors: transformer.layers.9.self_attn.q_proj.weight" in str(err.value)
    # an embedded autoencoder tensor the CALM checkpoint lacks comes from the autoencoder directory
    assert "ae_model.decoder.norm.weight" not in str(err.value)


def test_authors_safetensors_autoencoder_with_one_copy_of_the_tied_embedding(tmp_path, tiny_calm):
    """transformers saves one name of tensors that share memory in safetensors files: the
    encoder embedding may appear only as `decoder.lm_head_weight`, or only as itself."""
    ae = tiny_calm.ae_model
    state = {k: v.detach().clone() for k, v in ae.state_dict().items()}
    checkpoint.save(ae, ae.cfg, tmp_path)  # config.json
    (tmp_path / "pytorch_model.bin").unlink()
    for keep in ("encoder.embed_tokens.weight", "decoder.lm_head_weight"):
        emb = state["encoder.embed_tokens.weight"]
        rest = {k: v for k, v in state.items() if k != "encoder.embed_tokens.weight"}
        write_st(tmp_path / "model.safetensors", {**rest, keep: emb})
        got = load_autoencoder(tmp_path)
        assert torch.equal(got.encoder.embed_tokens.weight, emb), keep


def test_bf16_shards_load_into_the_float32_model(tmp_path, tiny_calm):
    state = {k: v.detach().bfloat16() for k, v in tiny_calm.ae_model.state_dict().items()}
    checkpoint.save(tiny_calm.ae_model, tiny_calm.ae_model.cfg, tmp_path)
    checkpoint.write_state_dict(state, tmp_path, weights="safetensors", max_shard_bytes=4096)
    assert not (tmp_path / "pytorch_model.bin").exists()  # superseded, removed
    ae = load_autoencoder(tmp_path)
    for name, t in ae.state_dict().items():
        assert t.dtype == torch.float32 and torch.equal(t, state[name].float()), name


def test_save_replaces_other_forms_in_the_directory(tmp_path, tiny_calm):
    ae = tiny_calm.ae_model
    checkpoint.save(ae, ae.cfg, tmp_path, weights="safetensors", max_shard_bytes=10_000)
    assert (tmp_path / "model.safetensors.index.json").exists()
    zeroed = Autoencoder(ae.cfg)
    torch.nn.init.zeros_(zeroed.encoder.norm.weight)
    checkpoint.save(zeroed, ae.cfg, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "pytorch_model.bin"]
    assert torch.equal(checkpoint.read_state_dict(tmp_path)["encoder.norm.weight"], torch.zeros(ae.cfg.hidden_size))
    checkpoint.save(ae, ae.cfg, tmp_path, weights="safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert torch.equal(checkpoint.read_state_dict(tmp_path)["encoder.norm.weight"], ae.encoder.norm.weight)


def test_export_from_sharded_safetensors_equals_export_from_pytorch_model_bin(tmp_path, tiny_calm, tokenizer_file):
    ae = tiny_calm.ae_model
    checkpoint.save(ae, ae.cfg, tmp_path / "bin" / "ae")
    checkpoint.save(tiny_calm, tiny_calm.cfg, tmp_path / "bin" / "calm", model_type="energy")
    for part, model in (("ae", ae), ("calm", tiny_calm)):
        src = tmp_path / "bin" / part
        dst = tmp_path / "st" / part
        dst.mkdir(parents=True)
        (dst / "config.json").write_text((src / "config.json").read_text())
        write_sharded_st(dst, {k: v.detach().clone() for k, v in model.state_dict().items()}, 3)
    assert not list((tmp_path / "st").glob("*/pytorch_model.bin"))
    for kind in ("bin", "st"):
        export_calm(load_calm(tmp_path / kind / "ae", tmp_path / kind / "calm"), tokenizer_file, tmp_path / kind / "bundle",
                    name="same")
    files = sorted(p.name for p in (tmp_path / "bin" / "bundle").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "st" / "bundle").iterdir())
    for f in files:
        assert (tmp_path / "bin" / "bundle" / f).read_bytes() == (tmp_path / "st" / "bundle" / f).read_bytes(), f
