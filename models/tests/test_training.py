"""The training loop is seeded, checkpoints everything, and resumes exactly."""
from __future__ import annotations

import torch

from calmtk import checkpoint
from calmtk.autoencoder import Autoencoder
from calmtk.calm import CALM
from calmtk.export import load_autoencoder
from calmtk.trainer import TrainSettings, train
from conftest import VOCAB, tiny_ae_config, tiny_backbone_config


class Interrupted(Exception):
    pass


def run(out, steps, resume=False, seed=0, crash_at=None):
    torch.manual_seed(123)
    ae = Autoencoder(tiny_ae_config())
    data = torch.randint(3, VOCAB, (256, 4))
    # save_every_s=0: a checkpoint after every step, so a crash loses nothing
    s = TrainSettings(out=out, minutes=60, lr=3e-3, warmup_steps=2, seed=seed, threads=1, max_steps=steps,
                      save_every_s=0 if crash_at else 1e9, eval_every_s=1e9)
    calls = []

    def step_fn(rng):
        calls.append(1)
        if crash_at is not None and len(calls) == crash_at:
            raise Interrupted
        return ae.loss(data[torch.from_numpy(rng.integers(0, len(data), size=32))])

    train(s, ae, step_fn, lambda: {}, lambda d: checkpoint.save(ae, ae.cfg, d), resume)
    return ae


def test_same_seed_same_weights_and_resume_is_exact(tmp_path):
    straight = run(tmp_path / "a", 6)
    again = run(tmp_path / "b", 6)
    for (name, p), q in zip(straight.state_dict().items(), again.state_dict().values()):
        assert torch.equal(p, q), name
    try:
        run(tmp_path / "c", 6, crash_at=4)
    except Interrupted:
        pass
    assert torch.load(tmp_path / "c" / "checkpoint.pt")["step"] == 3
    resumed = run(tmp_path / "c", 6, resume=True)
    for (name, p), q in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), name
    assert torch.load(tmp_path / "c" / "checkpoint.pt")["step"] == 6
    other = run(tmp_path / "d", 6, seed=1)
    assert not torch.equal(other.encoder.embed_tokens.weight, straight.encoder.embed_tokens.weight)


def test_final_directory_is_a_loadable_checkpoint(tmp_path):
    ae = run(tmp_path, 2)
    loaded = load_autoencoder(tmp_path / "final")
    assert torch.equal(loaded.encoder.embed_tokens.weight, ae.encoder.embed_tokens.weight)


def test_losses_are_finite_and_learn():
    torch.manual_seed(0)
    ae = Autoencoder(tiny_ae_config())
    calm = CALM(tiny_backbone_config(), ae)
    tokens = torch.randint(3, VOCAB, (2, 16))
    loss, stats = calm.loss(tokens)
    assert torch.isfinite(loss) and stats["diversity"] >= 0
    loss.backward()
    assert all(p.grad is None for p in calm.ae_model.parameters()), "the autoencoder must stay frozen"
    assert calm.mlp_generator.final_layer.linears[2].weight.grad is not None


def test_cpu_clock_budget_ends_the_run(tmp_path):
    torch.manual_seed(0)
    ae = Autoencoder(tiny_ae_config())
    data = torch.randint(3, VOCAB, (64, 4))
    s = TrainSettings(out=tmp_path, minutes=0.005, lr=1e-3, warmup_steps=1, threads=1, clock="cpu",
                      save_every_s=1e9, eval_every_s=1e9)
    train(s, ae, lambda rng: ae.loss(data[torch.from_numpy(rng.integers(0, 64, size=8))]), lambda: {},
          lambda d: checkpoint.save(ae, ae.cfg, d), False)
    state = torch.load(tmp_path / "checkpoint.pt")
    assert state["step"] >= 1 and 0.3 <= state["elapsed"] < 5


def test_energy_score_with_beta_below_one_has_finite_gradients():
    torch.manual_seed(0)
    calm = CALM(tiny_backbone_config(beta=0.5, num_samples=3), Autoencoder(tiny_ae_config()))
    loss, _ = calm.loss(torch.randint(3, VOCAB, (2, 16)))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in calm.parameters() if p.grad is not None)
