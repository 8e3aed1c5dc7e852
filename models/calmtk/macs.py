"""Multiply-accumulates of a bundle's graphs, from their weights, written into the manifest.

Every MatMul or Gemm one of whose operands is a weight (an initializer) costs, per row it is
applied to, the product of that weight's dimensions: that is all the arithmetic of the
backbone's projections and MLPs, the energy head, the autoencoder's layers and the decoder's
tied output projection. Attention's own products (queries x keys, weights x values) depend on
the context length and are given separately, per position and per context position.

    /usr/bin/python3 -m calmtk.macs BUNDLE_DIR [...]     # adds "macs" to each manifest.json

manifest "macs": {"backbone": per position, "head": per sample (CALM), "decoder": per chunk
(CALM), "attention_per_context_position": per position per cached position}.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx


def weight_macs(path: Path, unknown_rows: int = 1) -> int:
    """MACs of one unit of the graph's dynamic axes (one position, one sample, one chunk) through
    its weight products: a product applied to a tensor with fixed inner dimensions counts once per
    such row. Where shape inference loses an activation's shape (after the decoder's reshape of
    each chunk into its K positions), it counts `unknown_rows` rows."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    g = model.graph
    shapes = {vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
              for vi in list(g.value_info) + list(g.input) + list(g.output)}
    dims = {t.name: list(t.dims) for t in g.initializer}
    # constants produced by Constant nodes count as weights too
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    dims[node.output[0]] = list(a.t.dims)
    total = 0
    for node in g.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        a, b = node.input[0], node.input[1]
        weight = dims.get(b) if dims.get(b) is not None else dims.get(a)
        if weight is None or len(weight) != 2:
            continue
        activation = shapes.get(a if weight is dims.get(b) else b) or []
        rows = 1 if activation else unknown_rows
        for d in activation[:-1]:
            rows *= d if d else 1  # a dynamic axis is the unit counted
        total += rows * weight[0] * weight[1]
    return total


def bundle_macs(bundle: Path, manifest: dict | None = None) -> dict:
    manifest = manifest if manifest is not None else json.loads((bundle / "manifest.json").read_text())
    files = manifest["files"]
    macs = {"backbone": weight_macs(bundle / files["backbone"]),
            "attention_per_context_position": 2 * manifest["num_layers"] * manifest["num_attention_heads"] * manifest["head_dim"]}
    if manifest["kind"] == "calm":
        macs["head"] = weight_macs(bundle / files["head"])
        macs["decoder"] = weight_macs(bundle / files["decoder"], unknown_rows=manifest["patch_size"])
    return macs


def write_macs(bundle: Path) -> dict:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["macs"] = bundle_macs(bundle)
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest["macs"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path, nargs="+")
    for b in ap.parse_args().bundle:
        print(b, json.dumps(write_macs(b)))


if __name__ == "__main__":
    main()
