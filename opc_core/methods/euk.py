"""EU-k, exact unlearning of the last k layers (Goel et al., "Towards Adversarial Evaluation of Unlearning
Algorithms", arXiv 2201.06640, 2022).

The last k feature-extractor stages and the classifier are re-initialised and trained from scratch on the retain set
while everything below stays frozen (weights fixed, BatchNorm statistics held in eval mode):

    θ_top ← init;   θ_top = argmin E_{(x,y) ∈ D_r} CE(g(f_top(f_bottom(x))), y),   f_bottom frozen
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from opc_core.data import ImageData, Split
from opc_core.methods.base import UnlearnConfig, loop_unlearn, register_method
from opc_core.methods.common import freeze_all_but, last_stages, reinitialise, train_only, unfreeze
from opc_core.train.loop import hp


@dataclass(frozen=True)
class Config(UnlearnConfig):
    k: int = hp(1, "Number of last feature-extractor stages re-initialised and retrained (the head always is)", 0, 64)
    lr: float = hp(0.05, "Learning rate (the re-initialised layers train from scratch)", 1e-6, 10.0)
    schedule: str = hp("cosine", "Learning-rate schedule", choices=("constant", "cosine"))


def top_ce_loss(model: nn.Module, batch: dict, state: dict):
    """CE on the retain set, training only ``state["trainable"]`` (the frozen rest kept in eval mode)."""
    train_only(model, state["trainable"])
    x_r, y_r = batch["retain"]
    retain_ce = F.cross_entropy(model(x_r), y_r)
    return retain_ce, {"retain_ce": retain_ce.detach(), "loss": retain_ce.detach()}


def trainable_top(k: int, reinit: bool):
    """A ``prepare`` hook: pick the last k stages + head, optionally re-initialise them, freeze the rest."""

    def prepare(work: nn.Module, state: dict) -> None:
        top = last_stages(work, k)
        if reinit:
            reinitialise(top)  # seeded by the loop's seed_everything(cfg.seed)
        freeze_all_but(work, top)
        state["trainable"] = top

    return prepare


def top_params(work: nn.Module):
    return [p for p in work.parameters() if p.requires_grad]


def train_top_k(
    model: nn.Module, data: ImageData, split: Split, cfg, *, reinit: bool, on_step=None, stop=None, monitor=None
) -> nn.Module:
    """Train only the last ``cfg.k`` stages and the head on the retain set, the rest frozen: from a re-initialisation
    (EU-k) or from the original weights (CF-k)."""
    work = loop_unlearn(
        model,
        data,
        split,
        cfg,
        top_ce_loss,
        streams=("retain",),
        on_step=on_step,
        stop=stop,
        monitor=monitor,
        prepare=trainable_top(cfg.k, reinit=reinit),
        params=top_params,
    )
    return unfreeze(work)


@register_method(
    "euk",
    Config,
    "EU-k: re-initialise the last k stages and the head, retrain them on the retain set with the rest frozen",
    paper="Goel et al., Towards Adversarial Evaluation of Unlearning, 2022",
)
def unlearn(
    model: nn.Module, data: ImageData, split: Split, cfg: Config, *, on_step=None, stop=None, monitor=None
) -> nn.Module:
    return train_top_k(model, data, split, cfg, reinit=True, on_step=on_step, stop=stop, monitor=monitor)
