"""BE, boundary expanding (Chen et al., "Boundary Unlearning: Rapid Forgetting of Deep Networks via Shifting the
Decision Space", CVPR 2023).

Class-wise only. The classifier gets one extra "shadow" output neuron K (a new Linear(D, 1) column beside the K
original rows); the model is fine-tuned on the forget set towards the shadow class,

    L(θ) = CE([g_θ(f_θ(x_f)), s_θ(f_θ(x_f))], K)

which pushes the forget samples across the expanded decision boundary; the shadow neuron is then pruned, leaving the
forget samples scattered among the remaining classes. Only D_f is used; an epoch is a pass over it. As with GA,
``freeze_bn`` keeps BatchNorm's running statistics from being rewritten by forget-only batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from opc_core.config import hp
from opc_core.methods.base import Plan, UnlearnConfig, UnlearnContext, register_method
from opc_core.methods.common import hold_norm_stats


@dataclass(frozen=True)
class Config(UnlearnConfig):
    epochs: float = hp(1.0, "Passes over the FORGET set", 0.05, 200)
    freeze_bn: bool = hp(
        False,
        "Keep BatchNorm layers in eval mode (the original's running statistics) while training on the forget set "
        "alone, so the statistics of the retained classes are not overwritten",
    )


class ShadowHead(nn.Module):
    """The original classifier plus one shadow output: logits (N, K + 1) in training mode.

    In eval mode (monitors, inference) it answers as the returned model will: the shadow neuron pruned, (N, K).
    """

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.shadow = nn.Linear(base.in_features, 1).to(base.weight.device)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        logits = self.base(f)  # (N, K)
        return torch.cat([logits, self.shadow(f)], dim=1) if self.training else logits  # (N, K + 1) or (N, K)


def expand(work: nn.Module, ctx: UnlearnContext) -> None:
    work.classifier = ShadowHead(work.classifier)


def prune(work: nn.Module, state: None) -> None:
    if isinstance(work.classifier, ShadowHead):
        work.classifier = work.classifier.base  # back to Linear(D, K)


@register_method(
    "be",
    Config,
    "Boundary expanding: fine-tune the forget set into an extra shadow class, then prune it",
    plan=Plan(streams=("forget",), prepare=expand, finish=prune),
    class_wise_only=True,
    paper="Chen et al., Boundary Unlearning, CVPR 2023",
)
def be_loss(model: nn.Module, batch: dict, ctx: UnlearnContext):
    if ctx.cfg.freeze_bn:
        hold_norm_stats(model)
    x_f, _ = batch["forget"]
    logits = model(x_f)  # (B_f, K + 1)
    shadow = torch.full((len(x_f),), logits.shape[1] - 1, dtype=torch.long, device=logits.device)
    shadow_ce = F.cross_entropy(logits, shadow)
    return shadow_ce, {"shadow_ce": shadow_ce.detach(), "loss": shadow_ce.detach()}
