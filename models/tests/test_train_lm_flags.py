"""train_lm's CALM options run, stay out of the saved checkpoint, and resume exactly."""
from __future__ import annotations

import json
import sys

import pytest
import torch

from calmtk import checkpoint, train_lm
from calmtk.ar import ARModel
from calmtk.autoencoder import Autoencoder
from calmtk.config import BackboneConfig
from calmtk.export import load_ar, load_calm
from calmtk.tokenizer import Tokenizer
from conftest import randomize, tiny_ae_config

TEXTS = ["In the beginning God created the heaven and the earth.", "A hacker's hack: 42 bytes, 3.14 ms!"]


@pytest.fixture(scope="module")
def setup(tokenizer_file, tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    for split, n in (("train", 40), ("eval", 8)):
        with open(d / f"{split}.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"text": " ".join(TEXTS[(i + j) % 2] for j in range(3))}) + "\n")
    vocab = Tokenizer(tokenizer_file).vocab_size
    cfg = tiny_ae_config()
    cfg.vocab_size = vocab
    ae = randomize(Autoencoder(cfg), 1)
    checkpoint.save(ae, ae.cfg, d / "ae", model_type="autoencoder")
    ar = randomize(ARModel(BackboneConfig(vocab_size=vocab, hidden_size=32, intermediate_size=88, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=4, pad_token_id=0, bos_token_id=1,
                                          eos_token_id=2, max_position_embeddings=2048)), 2)
    checkpoint.save(ar, ar.cfg, d / "ar", model_type="llama")
    return d, tokenizer_file


class Interrupted(Exception):
    pass


def crashing_train(crash_at):
    """train_lm's train(), checkpointing after every step and stopping at the crash_at-th step."""
    real = train_lm.train

    def wrapped(settings, model, step_fn, eval_fn, save_fn, resume, lr_scales=None):
        settings.save_every_s = 0
        calls = []

        def step(rng):
            calls.append(1)
            if len(calls) == crash_at:
                raise Interrupted
            return step_fn(rng)
        real(settings, model, step, eval_fn, save_fn, resume, lr_scales)
    return wrapped


def run(setup, out, *extra):
    d, tok = setup
    argv = ["train_lm", "calm", "--ae", str(d / "ae"), "--tokenizer", str(tok), "--train", str(d / "train.jsonl"),
            "--eval", str(d / "eval.jsonl"), "--out", str(out), "--hidden", "32", "--intermediate", "88",
            "--layers", "2", "--heads", "4", "--block", "16", "--batch", "2", "--threads", "1", "--warmup-steps", "1",
            *extra]
    old = sys.argv
    sys.argv = argv
    try:
        train_lm.main()
    finally:
        sys.argv = old
    return load_calm(d / "ae", out / "final")


def test_aux_ce_and_energy_options_run_and_resume_exactly(setup, tmp_path, monkeypatch):
    flags = ["--aux-ce", "1", "--num-samples", "2", "--n-targets", "5", "--head-lr-mult", "3", "--beta", "0.5"]
    straight = run(setup, tmp_path / "a", "--max-steps", "4", *flags)
    # the auxiliary head is in the training checkpoint (for --resume) but not in the exported one
    assert any(k.startswith("aux.") for k in torch.load(tmp_path / "a" / "checkpoint.pt")["model"])
    saved = torch.load(tmp_path / "a" / "final" / "pytorch_model.bin")
    assert not any(k.startswith("aux") for k in saved)
    config = json.loads((tmp_path / "a" / "final" / "config.json").read_text())
    assert config["num_samples"] == 2 and config["beta"] == 0.5
    with monkeypatch.context() as m:
        m.setattr(train_lm, "train", crashing_train(3))
        with pytest.raises(Interrupted):
            run(setup, tmp_path / "b", "--max-steps", "4", *flags)
    assert torch.load(tmp_path / "b" / "checkpoint.pt")["step"] == 2
    resumed = run(setup, tmp_path / "b", "--max-steps", "4", "--resume", *flags)
    for (k, v), w in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(v, w), k


def test_init_ar_copies_the_backbone(setup, tmp_path):
    d, _ = setup
    calm = run(setup, tmp_path / "c", "--max-steps", "1", "--lr", "1e-12", "--init-ar", str(d / "ar"), "--aux-ce", "1")
    ar = load_ar(d / "ar")
    for k, v in ar.model.state_dict().items():
        torch.testing.assert_close(calm.transformer.state_dict()[k], v, atol=1e-6, rtol=0)


def test_init_calm_copies_everything_but_the_autoencoder(setup, tmp_path):
    first = run(setup, tmp_path / "e", "--max-steps", "2")
    again = run(setup, tmp_path / "f", "--max-steps", "1", "--lr", "1e-12", "--init-calm", str(tmp_path / "e" / "final"))
    for k, v in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v, atol=1e-6, rtol=0)
