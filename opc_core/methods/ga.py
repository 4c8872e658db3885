"""GA, gradient ascent on the forget set (Thudi et al., "Unrolling SGD", EuroS&P 2022; Graves et al., AAAI 2021).

Maximise the cross-entropy of the forget set, with no retain term:

    L(θ) = −CE(m_θ(x_f), y_f)

An epoch is one pass over the forget set. The loss is unbounded below, so the budget (epochs, lr) is the only brake.
Training on forget batches alone also rewrites BatchNorm's running statistics with the forget classes' (the reference
behaviour); ``freeze_bn`` keeps the original statistics instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from opc_core.config import hp
from opc_core.methods.base import Plan, UnlearnConfig, UnlearnContext, register_method
from opc_core.methods.common import hold_norm_stats


@dataclass(frozen=True)
class Config(UnlearnConfig):
    epochs: float = hp(1.0, "Passes over the FORGET set (gradient ascent diverges if run too long)", 0.05, 200)
    freeze_bn: bool = hp(
        False,
        "Keep BatchNorm layers in eval mode (the original's running statistics) while training on the forget set "
        "alone, so the statistics of the retained classes are not overwritten",
    )


@register_method(
    "ga",
    Config,
    "Gradient ascent: maximise the cross-entropy of the forget set",
    plan=Plan(streams=("forget",)),
    paper="Thudi et al., EuroS&P 2022; Graves et al., AAAI 2021",
)
def ga_loss(model: nn.Module, batch: dict, ctx: UnlearnContext):
    if ctx.cfg.freeze_bn:
        hold_norm_stats(model)
    x_f, y_f = batch["forget"]
    forget_ce = F.cross_entropy(model(x_f), y_f)
    loss = -forget_ce
    return loss, {"forget_ce": forget_ce.detach(), "loss": loss.detach()}
