"""CF-k, catastrophic forgetting of the last k layers (Goel et al., "Towards Adversarial Evaluation of Unlearning
Algorithms", arXiv 2201.06640, 2022).

Everything but the last k feature-extractor stages and the classifier is frozen (weights fixed, BatchNorm statistics
held in eval mode); the top is fine-tuned from its current weights on the retain set:

    θ_top = argmin E_{(x,y) ∈ D_r} CE(g(f_top(f_bottom(x))), y),   starting from θ_top of the original, f_bottom frozen
"""

from __future__ import annotations

from dataclasses import dataclass

from opc_core.config import hp
from opc_core.methods.base import Plan, UnlearnConfig, register_method
from opc_core.methods.euk import prepare_top, top_ce_loss


@dataclass(frozen=True)
class Config(UnlearnConfig):
    k: int = hp(1, "Number of last feature-extractor stages fine-tuned (the head always is); the rest is frozen", 0, 64)


register_method(
    "cfk",
    Config,
    "CF-k: fine-tune only the last k stages and the head on the retain set",
    plan=Plan(streams=("retain",), prepare=prepare_top(reinit=False)),
    paper="Goel et al., Towards Adversarial Evaluation of Unlearning, 2022",
)(top_ce_loss)
