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

from opc_core.data import ImageData, Split
from opc_core.methods.base import UnlearnConfig, loop_unlearn, register_method
from opc_core.methods.common import hold_norm_stats
from opc_core.train.loop import Monitor, hp


@dataclass(frozen=True)
class Config(UnlearnConfig):
    epochs: float = hp(1.0, "Passes over the FORGET set", 0.05, 200)
    freeze_bn: bool = hp(
        False,
        "Keep BatchNorm layers in eval mode (the original's running statistics) while training on the forget set "
        "alone, so the statistics of the retained classes are not overwritten",
    )


class ShadowHead(nn.Module):
    """The original classifier plus one shadow output: logits (N, K + 1)."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.shadow = nn.Linear(base.in_features, 1).to(base.weight.device)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.base(f), self.shadow(f)], dim=1)  # (N, K + 1)


def be_loss(model: nn.Module, batch: dict, state: dict):
    if state["freeze_bn"]:
        hold_norm_stats(model)
    x_f, _ = batch["forget"]
    logits = model(x_f)  # (B_f, K + 1)
    shadow = torch.full((len(x_f),), logits.shape[1] - 1, dtype=torch.long, device=logits.device)
    shadow_ce = F.cross_entropy(logits, shadow)
    return shadow_ce, {"shadow_ce": shadow_ce.detach(), "loss": shadow_ce.detach()}


def _pruned_view(monitor: Monitor | None) -> Monitor | None:
    """Monitors see the model as it will be returned: the shadow neuron pruned."""
    if monitor is None:
        return None

    def fn(model: nn.Module, step: int) -> dict[str, float]:
        head = model.classifier
        model.classifier = head.base
        try:
            return monitor.fn(model, step)
        finally:
            model.classifier = head

    return Monitor(monitor.every, fn)


def _expand(work: nn.Module, state: dict) -> None:
    work.classifier = ShadowHead(work.classifier)


@register_method(
    "be",
    Config,
    "Boundary expanding: fine-tune the forget set into an extra shadow class, then prune it",
    class_wise_only=True,
    paper="Chen et al., Boundary Unlearning, CVPR 2023",
    epoch_stream="forget",
)
def unlearn(
    model: nn.Module, data: ImageData, split: Split, cfg: Config, *, on_step=None, stop=None, monitor=None
) -> nn.Module:
    work = loop_unlearn(
        model,
        data,
        split,
        cfg,
        be_loss,
        streams=("forget",),
        epoch_stream="forget",
        on_step=on_step,
        stop=stop,
        monitor=_pruned_view(monitor),
        prepare=_expand,
        state={"freeze_bn": cfg.freeze_bn},
    )
    work.classifier = work.classifier.base  # prune the shadow neuron: back to Linear(D, K)
    return work
