"""NGD, negative gradient (Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020, baseline "NegGrad").

One mixed mini-batch of retain and forget samples; retain samples descend their cross-entropy, forget samples ascend
theirs, each sample weighted alike:

    L(θ) = (1/|B|) [ Σ_{(x,y) ∈ B_r} CE(m_θ(x), y) − Σ_{(x,y) ∈ B_f} CE(m_θ(x), y) ],   B = B_r ∪ B_f
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from opc_core.methods.base import UnlearnConfig, register_method
from opc_core.methods.common import mixed_forward


@dataclass(frozen=True)
class Config(UnlearnConfig):
    pass


@register_method(
    "ngd",
    Config,
    "Negative gradient: one mixed batch, descend the retain cross-entropy and ascend the forget cross-entropy",
    paper="Golatkar et al., CVPR 2020 (NegGrad baseline)",
)
def ngd_loss(model: nn.Module, batch: dict, ctx):
    (_, y_r), (_, y_f) = batch["retain"], batch["forget"]
    z_r, z_f = mixed_forward(model, batch)  # (B_r, K), (B_f, K)
    ce_r = F.cross_entropy(z_r, y_r, reduction="sum")
    ce_f = F.cross_entropy(z_f, y_f, reduction="sum")
    n = len(y_r) + len(y_f)
    loss = (ce_r - ce_f) / n
    return loss, {"retain_ce": ce_r.detach() / len(y_r), "forget_ce": ce_f.detach() / len(y_f), "loss": loss.detach()}
