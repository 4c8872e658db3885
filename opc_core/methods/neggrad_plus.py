"""NegGrad+ (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023, the improved NegGrad baseline).

A weighted difference of the retain and forget cross-entropies, each averaged over its own batch:

    L(θ) = α · CE(m_θ(x_r), y_r) − (1 − α) · CE(m_θ(x_f), y_f),   α = 0.95
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from opc_core.config import hp
from opc_core.methods.base import UnlearnConfig, UnlearnContext, register_method
from opc_core.methods.common import mixed_forward


@dataclass(frozen=True)
class Config(UnlearnConfig):
    alpha: float = hp(0.95, "α, weight of the retain cross-entropy; the forget ascent gets 1 − α", 0.0, 1.0)


@register_method(
    "neggrad_plus",
    Config,
    "NegGrad+: α·CE(retain) − (1−α)·CE(forget)",
    paper="Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023",
)
def neggrad_plus_loss(model: nn.Module, batch: dict, ctx: UnlearnContext):
    alpha = ctx.cfg.alpha
    (_, y_r), (_, y_f) = batch["retain"], batch["forget"]
    z_r, z_f = mixed_forward(model, batch)  # (B_r, K), (B_f, K)
    retain_ce, forget_ce = F.cross_entropy(z_r, y_r), F.cross_entropy(z_f, y_f)
    loss = alpha * retain_ce - (1.0 - alpha) * forget_ce
    return loss, {"retain_ce": retain_ce.detach(), "forget_ce": forget_ce.detach(), "loss": loss.detach()}
