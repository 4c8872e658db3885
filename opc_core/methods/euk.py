"""EU-k, exact unlearning of the last k layers (Goel et al., "Towards Adversarial Evaluation of Unlearning
Algorithms", arXiv 2201.06640, 2022).

The last k feature-extractor stages and the classifier are re-initialised and trained from scratch on the retain set
while everything below stays frozen (weights fixed, BatchNorm statistics held in eval mode):

    θ_top ← init;   θ_top = argmin E_{(x,y) ∈ D_r} CE(g(f_top(f_bottom(x))), y),   f_bottom frozen
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from opc_core.config import hp
from opc_core.methods.base import Plan, UnlearnConfig, UnlearnContext, register_method
from opc_core.methods.common import freeze_all_but, last_stages, reinitialise, retain_ce, train_only


@dataclass(frozen=True)
class Config(UnlearnConfig):
    k: int = hp(1, "Number of last feature-extractor stages re-initialised and retrained (the head always is)", 0, 64)
    lr: float = hp(0.05, "Learning rate (the re-initialised layers train from scratch)", 1e-6, 10.0)
    schedule: str = hp("cosine", "Learning-rate schedule", choices=("constant", "cosine"))


@dataclass
class Top:
    modules: list[nn.Module]  # the last k stages and the head: trained, the rest frozen


def prepare_top(reinit: bool):
    """A prepare hook: pick the last ``cfg.k`` stages + head, re-initialise them (EU-k) or not (CF-k), freeze the rest
    (weights and BatchNorm statistics)."""

    def prepare(work: nn.Module, ctx: UnlearnContext) -> Top:
        top = last_stages(work, ctx.cfg.k)
        if reinit:
            reinitialise(top)  # seeded by cfg.seed
        freeze_all_but(work, top)
        return Top(top)

    return prepare


def top_ce_loss(model: nn.Module, batch: dict, ctx: UnlearnContext[Top]):
    """CE on the retain set through the whole model, training only the top (the frozen rest kept in eval mode)."""
    train_only(model, ctx.state.modules)
    return retain_ce(model, batch)


register_method(
    "euk",
    Config,
    "EU-k: re-initialise the last k stages and the head, retrain them on the retain set with the rest frozen",
    plan=Plan(streams=("retain",), prepare=prepare_top(reinit=True)),
    paper="Goel et al., Towards Adversarial Evaluation of Unlearning, 2022",
)(top_ce_loss)
