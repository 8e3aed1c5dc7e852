"""Recover PyTorch checkpoints (the official layout checkpoint.py reads) from a bundle's ONNX graphs.

The shipped bundles hold their weights as ONNX initializers. torch.onnx.export keeps the
parameter names of most of them; the weights of Linear layers applied to 3-D inputs are stored
transposed under generated names (`onnx::MatMul_123`), and the decoder's tied output matrix is
the encoder's embedding, transposed. This tool rebuilds the model from the bundle's manifest,
exports it once with "fingerprint" weights (every parameter random and distinct) to learn which
initializer each parameter becomes (and whether transposed), pairs the fingerprint graph's
initializers with the bundle's by the graph structure (the order in which the nodes consume
them, with the op type and the shape checked), and copies the values back. It then re-exports
the recovered model and checks that every initializer and every node of the result equals the
bundle's: the same graph with the same weights computes the same outputs.

    /usr/bin/python3 -m calmtk.from_bundle calm bundles/calm-k4 --out runs/recovered/calm-k4
        # -> runs/recovered/calm-k4/ae and runs/recovered/calm-k4/calm
    /usr/bin/python3 -m calmtk.from_bundle ar bundles/ar-baseline --out runs/recovered/ar-baseline
        # -> runs/recovered/ar-baseline/ar
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from . import checkpoint, export
from .ar import ARModel
from .autoencoder import Autoencoder
from .calm import CALM
from .config import AutoencoderConfig, BackboneConfig


class RecoveryError(ValueError):
    pass


def _initializers_in_use_order(model: onnx.ModelProto) -> list[tuple[str, str, np.ndarray]]:
    """(name, op type of the first consumer, value) of every initializer, in the order the graph's
    nodes first consume them."""
    inits = {t.name: t for t in model.graph.initializer}
    seen: list[tuple[str, str, np.ndarray]] = []
    done = set()
    for node in model.graph.node:
        for name in node.input:
            if name in inits and name not in done:
                done.add(name)
                seen.append((name, node.op_type, numpy_helper.to_array(inits[name])))
    for name, t in inits.items():  # unused initializers (none expected) keep their file order
        if name not in done:
            seen.append((name, "", numpy_helper.to_array(t)))
    return seen


def _fingerprint(module: torch.nn.Module, seed: int = 1234) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    values = {}
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g))
            values[name] = p.detach().clone()
    return values


def _source_of(value: np.ndarray, params: dict[str, torch.Tensor]) -> tuple[str, bool]:
    """Which parameter a fingerprint-graph initializer holds, and whether transposed."""
    hits = []
    for name, p in params.items():
        a = p.numpy()
        if a.shape == value.shape and np.array_equal(a, value):
            hits.append((name, False))
        elif a.ndim == 2 and a.T.shape == value.shape and np.array_equal(a.T, value):
            hits.append((name, True))
    if len(hits) != 1:
        raise RecoveryError(f"fingerprint initializer of shape {value.shape} matches {len(hits)} parameters")
    return hits[0]


def recover_graph(shipped: onnx.ModelProto, fingerprint: onnx.ModelProto, params: dict[str, torch.Tensor],
                  prefix: str) -> dict[str, torch.Tensor]:
    """Parameter values (names without `prefix`) read from the shipped graph."""
    a, b = _initializers_in_use_order(shipped), _initializers_in_use_order(fingerprint)
    if len(a) != len(b):
        raise RecoveryError(f"the bundle graph has {len(a)} initializers, the model's export {len(b)}")
    out: dict[str, torch.Tensor] = {}
    for (sname, sop, sval), (fname, fop, fval) in zip(a, b):
        if sop != fop or sval.shape != fval.shape:
            raise RecoveryError(f"graph structure differs at {sname} ({sop} {sval.shape}) vs {fname} ({fop} {fval.shape})")
        pname, transposed = _source_of(fval, params)
        if not pname.startswith(prefix):
            raise RecoveryError(f"{fname} comes from {pname}, outside {prefix}")
        value = torch.from_numpy(np.ascontiguousarray(sval.T if transposed else sval).copy())
        key = pname[len(prefix):]
        if key in out and not torch.equal(out[key], value):
            raise RecoveryError(f"{key} appears twice with different values")
        out[key] = value
    return out


def _export_one(kind: str, model, tokenizer: Path, out: Path) -> None:
    if kind == "calm":
        export.export_calm(model, tokenizer, out)
    else:
        export.export_ar(model, tokenizer, out)


def _configs(manifest: dict, shipped: dict[str, onnx.ModelProto]) -> tuple[AutoencoderConfig | None, BackboneConfig]:
    sp = manifest["special_tokens"]
    specials = dict(pad_token_id=sp["pad"], bos_token_id=sp["bos"], eos_token_id=sp["eos"])
    # the FFN width is not in the manifest: a SwiGLU is three consecutive matrices [d, I], [d, I], [I, d]
    d = manifest["hidden_size"]
    mats = [v.shape for _, op, v in _initializers_in_use_order(shipped["backbone"]) if op == "MatMul" and v.ndim == 2]
    widths = [a[1] for a, b, c in zip(mats, mats[1:], mats[2:]) if a[0] == d and a == b and c == (a[1], d)]
    if not widths:
        raise RecoveryError("cannot find the FFN width in backbone.onnx")
    # q, k, v look the same when there are as many KV heads as heads: prefer a width other than d
    # (a wrong guess fails the structural check below)
    widths = [w for w in widths if w != d] or widths
    common = dict(vocab_size=manifest["vocab_size"], hidden_size=manifest["hidden_size"], intermediate_size=int(widths[0]),
                  num_hidden_layers=manifest["num_layers"], num_attention_heads=manifest["num_attention_heads"],
                  num_key_value_heads=manifest["num_kv_heads"], max_position_embeddings=manifest["max_positions"], **specials)
    if manifest["kind"] == "ar":
        return None, BackboneConfig(**common)
    a = manifest["autoencoder"]
    acfg = AutoencoderConfig(vocab_size=manifest["vocab_size"], patch_size=manifest["patch_size"], hidden_size=a["hidden_size"],
                             intermediate_size=a["intermediate_size"], latent_size=manifest["latent_size"],
                             num_encoder_layers=a["num_encoder_layers"], num_decoder_layers=a["num_decoder_layers"], **specials)
    cfg = BackboneConfig(**common, patch_size=manifest["patch_size"], latent_size=manifest["latent_size"],
                         noise_size=manifest["noise_size"], num_mlp_layers=manifest["num_mlp_layers"])
    return acfg, cfg


# graph file -> the parameter-name prefix its wrapper module gives (export.py's graph classes)
CALM_GRAPHS = {"backbone": "model.", "head": "head.", "decoder": "ae.", "encoder": "ae."}
AR_GRAPHS = {"backbone": "model."}


def recover(bundle: Path):
    """Rebuild the bundle's model(s) with the bundle's weights: a CALM (with its autoencoder) or an ARModel."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    if manifest.get("dtype", "float32") != "float32":
        raise RecoveryError("only float32 bundles can be recovered exactly")
    graphs = CALM_GRAPHS if manifest["kind"] == "calm" else AR_GRAPHS
    shipped = {g: onnx.load(str(bundle / manifest["files"][g])) for g in graphs}
    acfg, cfg = _configs(manifest, shipped)
    if manifest["kind"] == "calm":
        probe = CALM(cfg, Autoencoder(acfg))
        model = CALM(cfg, Autoencoder(acfg))
        # wrapper prefix -> the module the graph wraps, in the probe
        wrapped = {"backbone": ("model.", probe), "head": ("head.", probe.mlp_generator),
                   "decoder": ("ae.", probe.ae_model), "encoder": ("ae.", probe.ae_model)}
        targets = {"backbone": "", "head": "mlp_generator.", "decoder": "ae_model.", "encoder": "ae_model."}
    else:
        probe = ARModel(cfg)
        model = ARModel(cfg)
        wrapped = {"backbone": ("model.", probe)}
        targets = {"backbone": ""}
    fp_values = _fingerprint(probe)
    state: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory() as d:
        _export_one(manifest["kind"], probe.eval(), bundle / manifest["files"]["tokenizer"], Path(d))
        for g in graphs:
            prefix, module = wrapped[g]
            # names of the module's parameters as the graph wrapper sees them
            if module is probe:
                params = {prefix + n: v for n, v in fp_values.items()}
            else:
                own = {id(p): n for n, p in module.named_parameters()}
                params = {prefix + own[id(p)]: fp_values[n] for n, p in probe.named_parameters() if id(p) in own}
            got = recover_graph(shipped[g], onnx.load(str(Path(d) / manifest["files"][g])), params, prefix)
            for k, v in got.items():
                key = targets[g] + k
                if key in state and not torch.equal(state[key], v):
                    raise RecoveryError(f"{key} differs between graphs")
                state[key] = v
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
        raise RecoveryError("the bundle does not hold " + ", ".join(missing))
    checkpoint.load_strict(model, state)
    return model.eval(), manifest


def graphs_equal(a: onnx.ModelProto, b: onnx.ModelProto) -> list[str]:
    """Differences between two graphs: node ops and wiring (up to initializer names) and every value."""
    problems = []
    ia, ib = _initializers_in_use_order(a), _initializers_in_use_order(b)
    rename = {x[0]: y[0] for x, y in zip(ia, ib)}
    if len(ia) != len(ib):
        problems.append(f"{len(ia)} vs {len(ib)} initializers")
    for (na, _, va), (nb, _, vb) in zip(ia, ib):
        if va.shape != vb.shape or va.dtype != vb.dtype or not np.array_equal(va, vb):
            problems.append(f"initializer {na} != {nb}")
    if len(a.graph.node) != len(b.graph.node):
        problems.append(f"{len(a.graph.node)} vs {len(b.graph.node)} nodes")
    for x, y in zip(a.graph.node, b.graph.node):
        if x.op_type != y.op_type or [rename.get(i, i) for i in x.input] != list(y.input) or list(x.output) != list(y.output) \
                or [at.SerializeToString() for at in x.attribute] != [at.SerializeToString() for at in y.attribute]:
            problems.append(f"node {x.name} ({x.op_type}) != {y.name} ({y.op_type})")
            break
    return problems


def verify(model, manifest: dict, bundle: Path) -> list[str]:
    """Re-export `model` and compare every graph with the bundle's."""
    graphs = CALM_GRAPHS if manifest["kind"] == "calm" else AR_GRAPHS
    problems = []
    with tempfile.TemporaryDirectory() as d:
        _export_one(manifest["kind"], model, bundle / manifest["files"]["tokenizer"], Path(d))
        for g in graphs:
            f = manifest["files"][g]
            problems += [f"{f}: {p}" for p in graphs_equal(onnx.load(str(bundle / f)), onnx.load(str(Path(d) / f)))]
    return problems


def save(model, manifest: dict, out: Path) -> dict[str, Path]:
    if manifest["kind"] == "calm":
        ae_dir, calm_dir = out / "ae", out / "calm"
        checkpoint.save(model.ae_model, model.ae_model.cfg, ae_dir, model_type="autoencoder")
        # the CALM directory holds the backbone and head; the autoencoder is loaded from ae/
        calm_state = {k: v for k, v in model.state_dict().items() if not k.startswith("ae_model.")}
        from .config import save_config
        save_config(model.cfg, calm_dir, model_type="energy")
        torch.save({k: v.detach().clone() for k, v in calm_state.items()}, calm_dir / "pytorch_model.bin")
        return {"ae": ae_dir, "calm": calm_dir}
    ar_dir = out / "ar"
    checkpoint.save(model, model.cfg, ar_dir, model_type="llama")
    return {"ar": ar_dir}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["calm", "ar"])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--no-verify", action="store_true", help="skip the re-export check")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, manifest = recover(args.bundle)
    if manifest["kind"] != args.kind:
        ap.error(f"{args.bundle} is a {manifest['kind']} bundle")
    dirs = save(model, manifest, args.out)
    report = {k: str(v) for k, v in dirs.items()}
    if not args.no_verify:
        problems = verify(model, manifest, args.bundle)
        report["verified"] = not problems
        if problems:
            report["problems"] = problems[:20]
    print(json.dumps(report, indent=2))
    if report.get("problems"):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
