"""Export checkpoints to a calm-serve model bundle (format: docs/model-bundle.md).

    # CALM: autoencoder directory + CALM directory (official layout or ours)
    /usr/bin/python3 -m calmtk.export calm --ae AE_DIR --calm CALM_DIR --tokenizer tokenizer.json --out BUNDLE
    # the token-level baseline (LlamaForCausalLM layout)
    /usr/bin/python3 -m calmtk.export ar --ar AR_DIR --tokenizer tokenizer.json --out BUNDLE
    # add --dtype float16 for the GPU variant

fp16 graphs are traced in float64 and then retyped float64 -> float16, so that every place the
PyTorch code computes in float32 on purpose (RMSNorm, attention softmax, RoPE angles) stays
float32 in the fp16 graph, with casts at its edges, exactly as written in the model code.
"""
from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

from . import checkpoint
from .ar import ARModel
from .autoencoder import Autoencoder
from .calm import CALM
from .config import AutoencoderConfig, BackboneConfig, load_config
from .macs import bundle_macs
from .paged import page_backbone

BUNDLE_FORMAT = "calm-bundle"
# 2: the backbone reads its past from a block pool through a block table (calmtk/paged.py)
BUNDLE_VERSION = 2
OPSET = 17
# protobuf cannot hold a single message over 2 GiB: larger graphs keep weights beside them.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


# ---- graph wrappers: flat tensor inputs and outputs, named as in docs/model-bundle.md ----

class BackboneGraph(nn.Module):
    """CALM: chunk_ids -> hidden; AR: input_ids -> logits. Both take and return flat KV lists."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids, past_len, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        fn = self.model.backbone if isinstance(self.model, CALM) else self.model
        out, new = fn(ids, past_len, past)
        return (out, *[t for kv in new for t in kv])


class HeadGraph(nn.Module):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def forward(self, hidden, noise):
        return self.head(hidden, noise)


class DecoderGraph(nn.Module):
    def __init__(self, ae: Autoencoder):
        super().__init__()
        self.ae = ae

    def forward(self, latent):
        return self.ae.decode(latent)


class EncoderGraph(nn.Module):
    def __init__(self, ae: Autoencoder):
        super().__init__()
        self.ae = ae

    def forward(self, token_ids):
        return self.ae.encode(token_ids)


def past_names(layers: int) -> tuple[list[str], list[str]]:
    ins = [f"past_{kind}.{i}" for i in range(layers) for kind in ("key", "value")]
    outs = [f"new_{kind}.{i}" for i in range(layers) for kind in ("key", "value")]
    return ins, outs


# ---- dtype handling ----

def retype_double_to_half(model: onnx.ModelProto) -> None:
    """float64 -> float16 everywhere; float32 islands stay float32."""
    d, h = TensorProto.DOUBLE, TensorProto.FLOAT16

    def fix_tensor(t: onnx.TensorProto) -> None:
        if t.data_type == d:
            arr = numpy_helper.to_array(t).astype(np.float16)
            t.CopyFrom(numpy_helper.from_array(arr, t.name))

    g = model.graph
    for t in g.initializer:
        fix_tensor(t)
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == d:
            vi.type.tensor_type.elem_type = h
    for node in g.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == d:
                a.i = h
            if a.type == onnx.AttributeProto.TENSOR:
                fix_tensor(a.t)
    del g.value_info[:]


def _tensor_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) or numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


Dims = list  # of int (fixed) or str (named dynamic axis)


def declare_shapes(model: onnx.ModelProto, dims: dict[str, Dims]) -> None:
    """Write the documented shape of every graph input and output; shape inference alone
    leaves some fixed sizes symbolic (e.g. the head count after the rotary embedding)."""
    for vi in list(model.graph.input) + list(model.graph.output):
        shape = vi.type.tensor_type.shape
        shape.ClearField("dim")
        for d in dims[vi.name]:
            dim = shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            else:
                dim.dim_param = d


def save_graph(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
               dims: dict[str, Dims], half: bool, paged: bool = False) -> None:
    dynamic = {name: {i: d for i, d in enumerate(shape) if isinstance(d, str)} for name, shape in dims.items()}
    with tempfile.TemporaryDirectory() as tmpdir, torch.no_grad():
        tmp = Path(tmpdir) / "graph.onnx"
        torch.onnx.export(module, args, str(tmp), input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
                          opset_version=OPSET, do_constant_folding=True)
        model = onnx.load(str(tmp), load_external_data=True)
    if half:
        retype_double_to_half(model)
    declare_shapes(model, dims)
    if paged:
        page_backbone(model)
    for stale in (path, path.with_name(path.name + ".data")):
        stale.unlink(missing_ok=True)
    if _tensor_bytes(model) > EXTERNAL_DATA_THRESHOLD:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))


def _trace_dtype(half: bool) -> torch.dtype:
    return torch.float64 if half else torch.float32


# ---- bundles ----

def export_calm(calm: CALM, tokenizer: Path, out: Path, half: bool = False, name: str = "calm") -> dict:
    cfg, acfg = calm.cfg, calm.ae_model.cfg
    dt = _trace_dtype(half)
    calm = (copy.deepcopy(calm) if half else calm).to(dt).eval()
    ae = calm.ae_model
    out.mkdir(parents=True, exist_ok=True)
    L, hkv, dh, k = cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim, cfg.patch_size
    b, t, p = 2, 3, 5
    past = [torch.zeros(b, hkv, p, dh, dtype=dt) for _ in range(2 * L)]
    pin, pout = past_names(L)
    d, l, ns = cfg.hidden_size, cfg.latent_size, cfg.noise_size
    dyn = {"chunk_ids": ["batch", "new", k], "past_len": ["batch"], "hidden": ["batch", "new", d]}
    dyn.update({n: ["batch", hkv, "past", dh] for n in pin})
    dyn.update({n: ["batch", hkv, "new", dh] for n in pout})
    save_graph(BackboneGraph(calm),
               (torch.zeros(b, t, k, dtype=torch.long), torch.tensor([p, 2]), *past),
               out / "backbone.onnx", ["chunk_ids", "past_len", *pin], ["hidden", *pout], dyn, half, paged=True)
    save_graph(HeadGraph(calm.mlp_generator),
               (torch.zeros(b, cfg.hidden_size, dtype=dt), torch.zeros(b, 3, cfg.noise_size, dtype=dt)),
               out / "head.onnx", ["hidden", "noise"], ["latent"],
               {"hidden": ["batch", d], "noise": ["batch", "samples", ns], "latent": ["batch", "samples", l]}, half)
    save_graph(DecoderGraph(ae), (torch.zeros(b, acfg.latent_size, dtype=dt),), out / "decoder.onnx",
               ["latent"], ["token_ids"], {"latent": ["n", l], "token_ids": ["n", k]}, half)
    save_graph(EncoderGraph(ae), (torch.zeros(b, k, dtype=torch.long),), out / "encoder.onnx",
               ["token_ids"], ["mean", "log_std"], {"token_ids": ["n", k], "mean": ["n", l], "log_std": ["n", l]}, half)
    files = {"tokenizer": "tokenizer.json", "backbone": "backbone.onnx", "head": "head.onnx",
             "decoder": "decoder.onnx", "encoder": "encoder.onnx"}
    return _finish(out, tokenizer, "calm", cfg, files, half, name,
                   {"latent_size": cfg.latent_size, "noise_size": cfg.noise_size, "num_mlp_layers": cfg.num_mlp_layers,
                    "autoencoder": {"hidden_size": acfg.hidden_size, "intermediate_size": acfg.intermediate_size,
                                    "num_encoder_layers": acfg.num_encoder_layers, "num_decoder_layers": acfg.num_decoder_layers}})


def export_ar(ar: ARModel, tokenizer: Path, out: Path, half: bool = False, name: str = "ar") -> dict:
    cfg = ar.cfg
    dt = _trace_dtype(half)
    ar = (copy.deepcopy(ar) if half else ar).to(dt).eval()
    out.mkdir(parents=True, exist_ok=True)
    L, hkv, dh = cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim
    b, t, p = 2, 3, 5
    past = [torch.zeros(b, hkv, p, dh, dtype=dt) for _ in range(2 * L)]
    pin, pout = past_names(L)
    dyn = {"input_ids": ["batch", "new"], "past_len": ["batch"], "logits": ["batch", "new", cfg.vocab_size]}
    dyn.update({n: ["batch", hkv, "past", dh] for n in pin})
    dyn.update({n: ["batch", hkv, "new", dh] for n in pout})
    save_graph(BackboneGraph(ar),
               (torch.zeros(b, t, dtype=torch.long), torch.tensor([p, 2]), *past),
               out / "backbone.onnx", ["input_ids", "past_len", *pin], ["logits", *pout], dyn, half, paged=True)
    return _finish(out, tokenizer, "ar", cfg, {"tokenizer": "tokenizer.json", "backbone": "backbone.onnx"}, half, name, {})


def _finish(out: Path, tokenizer: Path, kind: str, cfg: BackboneConfig, files: dict, half: bool, name: str, extra: dict) -> dict:
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    k = cfg.patch_size if kind == "calm" else 1
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "name": name,
        "kind": kind,
        "dtype": "float16" if half else "float32",
        "patch_size": k,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_kv_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "max_positions": cfg.max_position_embeddings,
        "context_tokens": cfg.max_position_embeddings * k,
        "special_tokens": {"pad": cfg.pad_token_id, "bos": cfg.bos_token_id, "eos": cfg.eos_token_id},
        # training sequences are BOS + document, so a prompt must start with BOS too
        "add_bos": True,
        **extra,
        "files": files,
    }
    manifest["macs"] = bundle_macs(out, manifest)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ---- loading checkpoints ----

def load_autoencoder(path: Path) -> Autoencoder:
    ae = Autoencoder(load_config(AutoencoderConfig, path))
    checkpoint.load_strict(ae, checkpoint.read_state_dict(path))
    return ae.eval()


def load_calm(ae_dir: Path, calm_dir: Path) -> CALM:
    ae = load_autoencoder(ae_dir)
    cfg = load_config(BackboneConfig, calm_dir)
    calm = CALM(cfg, Autoencoder(ae.cfg))
    state = {f"ae_model.{n}": t for n, t in ae.state_dict().items()}
    # The authors' CALM checkpoints embed the frozen autoencoder; ours may too. The one in the
    # CALM directory wins, but it must then be complete and well-shaped like any other tensor.
    state.update(checkpoint.read_state_dict(calm_dir))
    checkpoint.load_strict(calm, state)
    return calm.eval()


def load_ar(path: Path) -> ARModel:
    ar = ARModel(load_config(BackboneConfig, path))
    state = checkpoint.read_state_dict(path)
    if ar.cfg.tie_word_embeddings and "lm_head.weight" not in state:
        state = {**state, "lm_head.weight": state["model.embed_tokens.weight"]}
    checkpoint.load_strict(ar, state)
    return ar.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["calm", "ar"])
    ap.add_argument("--ae", type=Path, help="autoencoder checkpoint directory (calm)")
    ap.add_argument("--calm", type=Path, help="CALM checkpoint directory (calm)")
    ap.add_argument("--ar", type=Path, help="AR checkpoint directory (ar)")
    ap.add_argument("--tokenizer", type=Path, required=True, help="Hugging Face tokenizer.json")
    ap.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    ap.add_argument("--name", help="model id the server reports (default: the output directory name)")
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    args = ap.parse_args()
    torch.set_num_threads(2)
    half = args.dtype == "float16"
    name = args.name or args.out.name
    if args.kind == "calm":
        if not (args.ae and args.calm):
            ap.error("calm needs --ae and --calm")
        manifest = export_calm(load_calm(args.ae, args.calm), args.tokenizer, args.out, half, name)
    else:
        if not args.ar:
            ap.error("ar needs --ar")
        manifest = export_ar(load_ar(args.ar), args.tokenizer, args.out, half, name)
    print(json.dumps(manifest, indent=2))


if __name__ == "__main__":
    main()
