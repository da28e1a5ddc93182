"""AdamW and the learning-rate / weight-decay schedules (pure functions of the step).

* ``cosine``: linear warmup to ``lr``, cosine decay to ``min_lr_ratio * lr``.
* ``two_stage`` (BitNet b1.58 2B4T): warmup, then stage 1 follows a cosine over
  the whole run from the high peak ``lr``; at ``stage2_start * max_steps`` the
  cooldown begins: the lr drops to ``stage2_lr_ratio * lr`` and decays by
  cosine to ``min_lr_ratio * lr``, and weight decay becomes
  ``stage2_weight_decay`` (0 in the recipe).
* ``constant``: warmup, then ``lr``.

Both schedules depend on the step only, so resuming needs no schedule state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ternlab.train.config import OptimConfig


def _cosine(frac: float, lo: float) -> float:
    """1 → ``lo`` as ``frac`` goes 0 → 1."""
    frac = min(max(frac, 0.0), 1.0)
    return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * frac))


def stage2_begin(cfg: OptimConfig, max_steps: int) -> int:
    """First optimizer step of the two-stage cooldown."""
    return int(round(cfg.stage2_start * max_steps))


def lr_factor(cfg: OptimConfig, step: int, max_steps: int) -> float:
    """Learning rate at ``step`` as a fraction of the peak ``cfg.lr``."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(max_steps - cfg.warmup_steps, 1)
    if cfg.schedule == "cosine":
        return _cosine((step - cfg.warmup_steps) / span, cfg.min_lr_ratio)
    mid = max(stage2_begin(cfg, max_steps), cfg.warmup_steps)
    if step < mid:
        return _cosine((step - cfg.warmup_steps) / span, cfg.min_lr_ratio)
    lo = cfg.min_lr_ratio / cfg.stage2_lr_ratio if cfg.stage2_lr_ratio > 0 else 0.0
    return cfg.stage2_lr_ratio * _cosine((step - mid) / max(max_steps - mid, 1), min(lo, 1.0))


def weight_decay_at(cfg: OptimConfig, step: int, max_steps: int) -> float:
    """Weight decay of the decayed parameter group at ``step``."""
    if cfg.schedule == "two_stage" and step >= stage2_begin(cfg, max_steps):
        return cfg.stage2_weight_decay
    return cfg.weight_decay


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Matrices (Linear weights, embeddings) decay; norms and biases (1-D) do not."""
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps
    )


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, max_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over :func:`lr_factor` (its state is just the step count)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg, s, max_steps))


def apply_weight_decay(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, step: int, max_steps: int
) -> float:
    """Set the decayed group's weight decay for ``step``; returns it."""
    wd = weight_decay_at(cfg, step, max_steps)
    optimizer.param_groups[0]["weight_decay"] = wd
    return wd
