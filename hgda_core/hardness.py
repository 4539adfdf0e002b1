"""Task hardness Γ_i (paper §3.4, eq. 2) and the task weights of each method."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Weighting = Literal["hardness", "uniform"]


def hardness(losses: Tensor) -> Tensor:
    """Eq. 2: γ_i = L_i / Σ_j L_j over the m tasks of a batch.

    The losses are detached first, so the weights are constants of the outer update.
    When every loss is zero (nothing to learn from any task) the weights fall back to
    uniform 1/m instead of dividing by zero.

    Args:
        losses: the m non-negative task losses.

    Returns:
        The m hardness scores, summing to 1.
    """
    losses = losses.detach().to(torch.float64)
    if (losses < 0).any():
        raise ValueError(f"hardness needs non-negative losses, got {losses.tolist()}")
    total = losses.sum()
    if not torch.isfinite(total) or total <= 0:
        return torch.full_like(losses, 1.0 / losses.numel())
    return losses / total


def task_weights(lab: Tensor, cls: Tensor, lam: float, weighting: Weighting) -> dict[str, Tensor]:
    """Γ_1..Γ_m per parameter group (Alg. 1 line 9).

    ``hardness``: γ^θ from L_i = L^lab_i + λ·L^cls_i, γ^φ from L^lab_i, γ^ω from L^cls_i
    (eq. 2).  ``uniform``: 1/m for every group (MetaNER, and the ablation of eq. 2).
    """
    if weighting == "uniform":
        uniform = torch.full((lab.numel(),), 1.0 / lab.numel(), dtype=torch.float64)
        return {"theta": uniform, "phi": uniform, "omega": uniform}
    if weighting != "hardness":
        raise ValueError(f"weighting must be hardness or uniform, got {weighting!r}")
    return {"theta": hardness(lab + lam * cls), "phi": hardness(lab), "omega": hardness(cls)}
