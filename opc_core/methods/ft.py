"""FT, fine-tuning on the retain set (Warnecke et al., "Machine Unlearning of Features and Labels", NDSS 2023;
the "FT" baseline of Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023).

Forgetting by catastrophic forgetting: keep training the original model on D_r only,

    L(θ) = CE(m_θ(x_r), y_r).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from opc_core.data import ImageData, Split
from opc_core.methods.base import UnlearnConfig, loop_unlearn, register_method


@dataclass(frozen=True)
class Config(UnlearnConfig):
    pass


def ft_loss(model: nn.Module, batch: dict, state: dict):
    x_r, y_r = batch["retain"]
    retain_ce = F.cross_entropy(model(x_r), y_r)
    return retain_ce, {"retain_ce": retain_ce.detach(), "loss": retain_ce.detach()}


@register_method(
    "ft",
    Config,
    "Fine-tune on the retain set only (forgetting by catastrophic forgetting)",
    paper="Warnecke et al., NDSS 2023; Jia et al., NeurIPS 2023",
)
def unlearn(
    model: nn.Module, data: ImageData, split: Split, cfg: Config, *, on_step=None, stop=None, monitor=None
) -> nn.Module:
    return loop_unlearn(
        model, data, split, cfg, ft_loss, streams=("retain",), on_step=on_step, stop=stop, monitor=monitor
    )
