"""RL, random labels (Golatkar et al., CVPR 2020; Hayase et al., ICML 2020; as run by Fan et al., SalUn, ICLR 2024).

Relabel every forget sample with a random WRONG class (a fresh draw each step, never the true label) and train on the
relabelled forget batch together with a retain batch, one cross-entropy over the mixed batch B = B_r ∪ B_f:

    L(θ) = (1/|B|) [ Σ_{(x,y) ∈ B_r} CE(m_θ(x), y) + Σ_{(x,y) ∈ B_f} CE(m_θ(x), ỹ) ],   ỹ ~ U{classes ≠ y}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from opc_core.methods.base import UnlearnConfig, UnlearnContext, register_method
from opc_core.methods.common import mixed_forward, wrong_labels


@dataclass(frozen=True)
class Config(UnlearnConfig):
    pass


@register_method(
    "rl",
    Config,
    "Random labels: train the forget set towards random wrong classes, and the retain set as usual",
    paper="Golatkar et al., CVPR 2020; Fan et al., SalUn, ICLR 2024",
)
def rl_loss(model: nn.Module, batch: dict, ctx: UnlearnContext):
    (_, y_r), (_, y_f) = batch["retain"], batch["forget"]
    z_r, z_f = mixed_forward(model, batch)  # (B_r, K), (B_f, K)
    y_wrong = wrong_labels(y_f, z_f.shape[1], ctx.generator)  # (B_f,)
    ce_r = F.cross_entropy(z_r, y_r, reduction="sum")
    ce_f = F.cross_entropy(z_f, y_wrong, reduction="sum")
    loss = (ce_r + ce_f) / (len(y_r) + len(y_f))
    return loss, {
        "retain_ce": ce_r.detach() / len(y_r),
        "forget_random_ce": ce_f.detach() / len(y_f),
        "loss": loss.detach(),
    }
