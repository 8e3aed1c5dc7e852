"""calmtk.from_bundle recovers checkpoints from a bundle's ONNX initializers, exactly."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from calmtk import from_bundle
from calmtk.export import export_ar, export_calm, load_ar, load_calm

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_tiny_calm_round_trip(tiny_calm, tokenizer_file, tmp_path):
    export_calm(tiny_calm, tokenizer_file, tmp_path / "bundle")
    model, manifest = from_bundle.recover(tmp_path / "bundle")
    assert_same_state(model, tiny_calm)
    assert from_bundle.verify(model, manifest, tmp_path / "bundle") == []
    dirs = from_bundle.save(model, manifest, tmp_path / "ckpt")
    assert_same_state(load_calm(dirs["ae"], dirs["calm"]), tiny_calm)


def test_tiny_ar_round_trip(tiny_ar, tokenizer_file, tmp_path):
    export_ar(tiny_ar, tokenizer_file, tmp_path / "bundle")
    model, manifest = from_bundle.recover(tmp_path / "bundle")
    assert_same_state(model, tiny_ar)
    dirs = from_bundle.save(model, manifest, tmp_path / "ckpt")
    assert_same_state(load_ar(dirs["ar"]), tiny_ar)


def test_a_changed_weight_is_reported(tiny_ar, tokenizer_file, tmp_path):
    export_ar(tiny_ar, tokenizer_file, tmp_path / "bundle")
    model, manifest = from_bundle.recover(tmp_path / "bundle")
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] += 1
    assert from_bundle.verify(model, manifest, tmp_path / "bundle")


@pytest.mark.parametrize("name", ["calm-k4", "ar-baseline"])
def test_shipped_bundles_are_recovered_exactly(name):
    bundle = BUNDLES / name
    if not (bundle / "manifest.json").exists():
        pytest.skip(f"{bundle} is absent")
    manifest = json.loads((bundle / "manifest.json").read_text())
    if manifest.get("dtype") != "float32":
        pytest.skip("only float32 bundles are recoverable")
    model, manifest = from_bundle.recover(bundle)
    assert from_bundle.verify(model, manifest, bundle) == []
