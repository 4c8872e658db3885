"""ℓ1-sparse unlearning (Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023).

Fine-tune on the retain set with an ℓ1 penalty on all weights whose strength decays linearly to zero over the run
(step t of T):

    L(θ) = CE(m_θ(x_r), y_r) + α_t · ‖θ‖₁,   α_t = α · (1 − t / T)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from opc_core.config import hp
from opc_core.methods.base import Plan, UnlearnConfig, UnlearnContext, register_method


@dataclass(frozen=True)
class Config(UnlearnConfig):
    alpha: float = hp(5e-4, "Initial ℓ1 strength α on Σ|θ| (decays linearly to 0 over the run)", 0.0, 0.1)


@register_method(
    "l1_sparse",
    Config,
    "Fine-tune on the retain set with an ℓ1 penalty on the weights, decayed linearly to 0",
    plan=Plan(streams=("retain",)),
    paper="Jia et al., Model Sparsity Can Simplify Machine Unlearning, NeurIPS 2023",
)
def l1_sparse_loss(model: nn.Module, batch: dict, ctx: UnlearnContext):
    x_r, y_r = batch["retain"]
    retain_ce = F.cross_entropy(model(x_r), y_r)
    alpha_t = ctx.cfg.alpha * (1.0 - ctx.step / max(ctx.total, 1))
    l1 = sum(p.abs().sum() for p in model.parameters())
    loss = retain_ce + alpha_t * l1
    return loss, {"retain_ce": retain_ce.detach(), "l1_norm": l1.detach(), "l1_weight": alpha_t, "loss": loss.detach()}
