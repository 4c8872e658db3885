"""ℓ1-sparse unlearning (Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023).

Fine-tune on the retain set with an ℓ1 penalty on all weights whose strength decays linearly to zero over the run
(step t of T):

    L(θ) = CE(m_θ(x_r), y_r) + α_t · ‖θ‖₁,   α_t = α · (1 − t / T)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from opc_core.data import ImageData, Split
from opc_core.methods.base import UnlearnConfig, loop_unlearn, register_method
from opc_core.train.loop import hp


@dataclass(frozen=True)
class Config(UnlearnConfig):
    alpha: float = hp(5e-4, "Initial ℓ1 strength α on Σ|θ| (decays linearly to 0 over the run)", 0.0, 0.1)


def l1_sparse_loss(model: nn.Module, batch: dict, state: dict):
    x_r, y_r = batch["retain"]
    retain_ce = F.cross_entropy(model(x_r), y_r)
    alpha_t = state["cfg"].alpha * (1.0 - state["step"] / max(state["total"], 1))
    l1 = sum(p.abs().sum() for p in model.parameters())
    loss = retain_ce + alpha_t * l1
    return loss, {"retain_ce": retain_ce.detach(), "l1_norm": l1.detach(), "l1_weight": alpha_t, "loss": loss.detach()}


@register_method(
    "l1_sparse",
    Config,
    "Fine-tune on the retain set with an ℓ1 penalty on the weights, decayed linearly to 0",
    paper="Jia et al., Model Sparsity Can Simplify Machine Unlearning, NeurIPS 2023",
)
def unlearn(
    model: nn.Module, data: ImageData, split: Split, cfg: Config, *, on_step=None, stop=None, monitor=None
) -> nn.Module:
    return loop_unlearn(
        model,
        data,
        split,
        cfg,
        l1_sparse_loss,
        streams=("retain",),
        on_step=on_step,
        stop=stop,
        monitor=monitor,
        state={"cfg": cfg},
    )
