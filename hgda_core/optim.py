"""Optimiser set-up shared by meta-training, transfer training and adaptation (Appendix)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn


@dataclass
class OptimConfig:
    """The optimiser keys shared by the ``meta`` and ``adapt`` sections (Appendix): eq. 3's
    default rate and reference K, SGD momentum, weight decay and gradient clipping."""

    default_lr: float = 1e-2
    reference_k: int = 32
    momentum: float = 0.9
    weight_decay: float = 1e-6
    grad_clip: float = 5.0


def scaled_lr(default_lr: float, k: int, reference_k: int = 32) -> float:
    """Eq. 3: α = β = default learning rate · sqrt(K / 32)."""
    if k <= 0:
        raise ValueError(f"K must be positive, got {k}")
    return default_lr * math.sqrt(k / reference_k)


def param_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float, theta_lr: float | None = None) -> list[dict]:
    """Optimiser groups: the encoder θ (``encoder.*``) at ``theta_lr`` when given (BERT's
    1e-5 scaled by eq. 3, Appendix), every other trainable weight at ``lr``."""
    theta, rest = [], []
    for name, p in named:
        if p.requires_grad:
            (theta if name.startswith("encoder.") else rest).append(p)
    return [{"params": theta, "lr": lr if theta_lr is None else theta_lr}, {"params": rest, "lr": lr}]


def sgd(params: Iterable[nn.Parameter] | Iterable[dict], lr: float, momentum: float = 0.9, weight_decay: float = 1e-6) -> torch.optim.SGD:
    """SGD with the Appendix's momentum (0.9) and weight decay (1e-6)."""
    return torch.optim.SGD(list(params), lr=lr, momentum=momentum, weight_decay=weight_decay)


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear decay of the learning rate from its initial value to 0 over ``total_steps``
    (the Appendix's linear scheduler; after ``total_steps`` the rate stays 0).

    Meta-training passes its schedule horizon here (``meta.schedule_horizon``), which may
    lie beyond the iteration cap, so that early stopping, not the schedule, ends a run."""
    total = max(1, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total))
