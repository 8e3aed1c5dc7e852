"""The paged KV interface of bundle version 2: the backbone reads its past from a block pool.

A version-1 backbone takes each row's past keys/values as a dense `past_key.i` tensor
[batch, kv_heads, past, head_dim], so the server had to keep one contiguous cache row per
sequence. Version 2 takes instead, per layer, the whole pool `key_cache.i` / `value_cache.i`
[blocks, kv_heads, block_size, head_dim] and one `block_table` int64 [batch, table] naming
each row's blocks in order; the graph gathers row b's past as blocks
block_table[b, 0..table-1] laid end to end (positions past `past_len[b]` are masked, as before,
so a short row's table may be padded with any valid block id). Outputs are unchanged: the new
positions' keys/values, which the server scatters into the blocks it chose for them.

The transformation is a prefix of three nodes per cache input (Gather on the block axis,
Transpose, Reshape) that recreates the version-1 `past_*` values inside the graph, so every
backbone exported by this toolkit and every version-1 bundle converts the same way:

    /usr/bin/python3 -m calmtk.paged BUNDLE_DIR     # upgrade a version-1 bundle in place
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import onnx
from onnx import TensorProto, helper

BLOCK_TABLE = "block_table"


def cache_name(past_name: str) -> str:
    """past_key.3 -> key_cache.3"""
    kind, layer = past_name[len("past_"):].split(".")
    return f"{kind}_cache.{layer}"


def page_backbone(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrites a version-1 backbone (dense past inputs) into the paged interface, in place."""
    g = model.graph
    pasts = [vi for vi in g.input if vi.name.startswith("past_key.") or vi.name.startswith("past_value.")]
    if not pasts:
        raise ValueError("not a version-1 backbone: it has no past_key.i / past_value.i inputs")
    head_dim = pasts[0].type.tensor_type.shape.dim[3].dim_value
    if head_dim <= 0:
        raise ValueError("the past inputs' head_dim (dimension 3) must be fixed")
    shape_name = "paged_past_shape"
    nodes = [helper.make_node("Constant", [], [shape_name], name="paged_past_shape",
                              value=helper.make_tensor(shape_name, TensorProto.INT64, [4], [0, 0, -1, head_dim]))]
    new_inputs = []
    for vi in pasts:
        tt = vi.type.tensor_type
        kv_heads = tt.shape.dim[1].dim_value
        cache = cache_name(vi.name)
        new_inputs.append(helper.make_tensor_value_info(cache, tt.elem_type, ["blocks", kv_heads, "block_size", head_dim]))
        gathered, moved = f"{cache}/gathered", f"{cache}/by_head"
        nodes += [
            # [batch, table, kv_heads, block_size, head_dim]
            helper.make_node("Gather", [cache, BLOCK_TABLE], [gathered], name=f"{cache}/gather", axis=0),
            helper.make_node("Transpose", [gathered], [moved], name=f"{cache}/transpose", perm=[0, 2, 1, 3, 4]),
            # [batch, kv_heads, table * block_size, head_dim]: the version-1 past tensor
            helper.make_node("Reshape", [moved, shape_name], [vi.name], name=f"{cache}/reshape"),
        ]
    kept = [vi for vi in g.input if vi not in pasts]
    del g.input[:]
    g.input.extend(kept)
    g.input.append(helper.make_tensor_value_info(BLOCK_TABLE, TensorProto.INT64, ["batch", "table"]))
    g.input.extend(new_inputs)
    old = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old)
    return model


def upgrade_bundle(bundle: Path) -> bool:
    """Converts a version-1 bundle's backbone to version 2 in place; False if it already is."""
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("version") == 2:
        return False
    if manifest.get("version") != 1:
        raise ValueError(f"{bundle}: manifest version {manifest.get('version')!r} is not 1")
    path = bundle / manifest["files"]["backbone"]
    model = onnx.load(str(path), load_external_data=False)
    page_backbone(model)
    onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))
    manifest["version"] = 2
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path, nargs="+", help="bundle directories to upgrade in place")
    args = ap.parse_args()
    for b in args.bundle:
        print(f"{b}: {'upgraded to version 2' if upgrade_bundle(b) else 'already version 2'}")


if __name__ == "__main__":
    main()
