"""A small resumable training loop shared by the autoencoder, CALM and AR scripts.

Budgets are wall-clock (`--minutes`) so that CALM and AR can be compared at equal training
time; the learning rate follows warmup + cosine over the fraction of the budget spent, so a
resumed run continues the same schedule. A checkpoint holds the model, the optimiser, the
step, the elapsed time and every random state; `--resume` picks it up exactly.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch


@dataclass
class TrainSettings:
    out: Path
    minutes: float
    lr: float
    warmup_steps: int = 200
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 2
    # cuda: the model and every batch on the GPU (the random streams there differ from the CPU's,
    # so a GPU run is seeded but not bit-identical to a CPU one)
    device: str = "cpu"
    save_every_s: float = 300.0
    eval_every_s: float = 300.0
    # A step budget instead of a time budget (the schedule then follows steps): for tests and
    # exactly repeatable runs.
    max_steps: int = 0
    # what --minutes counts: "wall" (seconds of the training steps, the default; what the shipped
    # models used) or "cpu" (the process's CPU seconds in those steps: on a shared machine, and
    # when another job pauses the run with SIGSTOP, neither contention nor pauses use up the budget)
    clock: str = "wall"


def add_train_args(ap, lr: float, minutes: float) -> None:
    ap.add_argument("--out", type=Path, required=True, help="run directory (checkpoint, logs, export)")
    ap.add_argument("--minutes", type=float, default=minutes, help="wall-clock training budget")
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--warmup-steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N steps instead of --minutes")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="what --minutes counts: wall-clock or CPU seconds of the training steps")


def settings_from_args(args) -> TrainSettings:
    return TrainSettings(out=args.out, minutes=args.minutes, lr=args.lr, warmup_steps=args.warmup_steps, seed=args.seed,
                         threads=args.threads, max_steps=args.max_steps, device=args.device,
                         clock=getattr(args, "clock", "wall"))


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def lr_at(s: TrainSettings, step: int, frac: float) -> float:
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    cos = 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * cos)


def _fmt(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def train(
    s: TrainSettings,
    model: torch.nn.Module,
    step_fn: Callable[[np.random.Generator], tuple[torch.Tensor, dict[str, float]]],
    eval_fn: Callable[[], dict[str, float]],
    save_fn: Callable[[Path], None],
    resume: bool,
    lr_scales: dict[int, float] | None = None,
) -> None:
    """step_fn draws a batch with the given generator and returns (loss, stats);
    save_fn writes the model in its final (exportable) form into a directory.
    lr_scales: id(parameter) -> a factor on the learning rate for that parameter (default 1)."""
    torch.set_num_threads(s.threads)
    s.out.mkdir(parents=True, exist_ok=True)
    rng = seed_everything(s.seed)
    model.to(s.device)
    params = [p for p in model.parameters() if p.requires_grad]
    lr_scales = lr_scales or {}
    groups = []
    for scale in sorted({lr_scales.get(id(p), 1.0) for p in params}, reverse=True):
        mine = [p for p in params if lr_scales.get(id(p), 1.0) == scale]
        groups.append({"params": [p for p in mine if p.dim() >= 2], "weight_decay": s.weight_decay, "lr_scale": scale})
        groups.append({"params": [p for p in mine if p.dim() < 2], "weight_decay": 0.0, "lr_scale": scale})
    groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups, lr=s.lr, betas=(0.9, 0.95))
    step, elapsed = 0, 0.0
    ckpt = s.out / "checkpoint.pt"
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        print(f"resumed at step {step}, {_fmt(elapsed)} elapsed", flush=True)

    def checkpoint() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save(
            {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "elapsed": elapsed,
             "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "python_rng": random.getstate()},
            tmp,
        )
        os.replace(tmp, ckpt)
        save_fn(s.out / "final")

    budget = s.minutes * 60
    clock = time.process_time if s.clock == "cpu" else time.time
    last_save = last_eval = elapsed
    ema: dict[str, float] = {}
    model.train()

    def progress() -> float:
        return step / s.max_steps if s.max_steps else elapsed / budget

    while progress() < 1:
        t0 = clock()
        lr = lr_at(s, step, progress())
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        loss, stats = step_fn(rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
        opt.step()
        step += 1
        elapsed += clock() - t0
        stats = {"loss": loss.item(), **stats}
        for k, v in stats.items():
            ema[k] = v if k not in ema else 0.98 * ema[k] + 0.02 * v
        if step % 20 == 0:
            line = " ".join(f"{k} {v:.4f}" for k, v in ema.items())
            eta = elapsed / progress() - elapsed
            sys.stdout.write(f"step {step} {line} lr {lr:.2e} | {_fmt(elapsed)} elapsed, {progress():.1%}, ETA {_fmt(eta)}\n")
            sys.stdout.flush()
        if elapsed - last_eval >= s.eval_every_s:
            model.eval()
            with torch.no_grad():
                print("eval " + " ".join(f"{k} {v:.4f}" for k, v in eval_fn().items()), flush=True)
            model.train()
            last_eval = elapsed
        if elapsed - last_save >= s.save_every_s:
            checkpoint()
            last_save = elapsed
    checkpoint()
    model.eval()
    with torch.no_grad():
        print("final eval " + " ".join(f"{k} {v:.4f}" for k, v in eval_fn().items()), f"steps {step} time {_fmt(elapsed)}", flush=True)
