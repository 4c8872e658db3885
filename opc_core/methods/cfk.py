"""CF-k, catastrophic forgetting of the last k layers (Goel et al., "Towards Adversarial Evaluation of Unlearning
Algorithms", arXiv 2201.06640, 2022).

Everything but the last k feature-extractor stages and the classifier is frozen (weights fixed, BatchNorm statistics
held in eval mode); the top is fine-tuned from its current weights on the retain set:

    θ_top = argmin E_{(x,y) ∈ D_r} CE(g(f_top(f_bottom(x))), y),   starting from θ_top of the original, f_bottom frozen
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from opc_core.data import ImageData, Split
from opc_core.methods.base import UnlearnConfig, register_method
from opc_core.methods.euk import train_top_k
from opc_core.train.loop import hp


@dataclass(frozen=True)
class Config(UnlearnConfig):
    k: int = hp(1, "Number of last feature-extractor stages fine-tuned (the head always is); the rest is frozen", 0, 64)


@register_method(
    "cfk",
    Config,
    "CF-k: fine-tune only the last k stages and the head on the retain set",
    paper="Goel et al., Towards Adversarial Evaluation of Unlearning, 2022",
)
def unlearn(
    model: nn.Module, data: ImageData, split: Split, cfg: Config, *, on_step=None, stop=None, monitor=None
) -> nn.Module:
    return train_top_k(model, data, split, cfg, reinit=False, on_step=on_step, stop=stop, monitor=monitor)
