"""OPC, One-Point-Contraction unlearning (Jung, Jung, Bae, Lee, arXiv 2507.07754, 2025).

Deep forgetting as one-point contraction: the forget set is pulled to the origin of a representation while the
retain set keeps its cross-entropy. Per step, with a retain batch and a forget batch drawn together:

    L(θ) = CE(m_θ(x_r), y_r) + λ · mean_{x ∈ forget batch} ‖h_θ(x)‖₂^p

The paper contracts the logits (h = m, ``layer="logits"``). Reviewers objected that a small logit norm can be reached
through the head alone, so ``layer="features"`` contracts the penultimate features f instead. Whether the paper's
"ℓ2 norm" is squared is not stated: ``p`` is 1 (default) or 2. Both batches go through ONE forward pass, so
BatchNorm's batch statistics mix retain and forget samples. A fixed epoch budget, no early stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from opc_core.config import hp
from opc_core.methods.base import UnlearnConfig, UnlearnContext, register_method


@dataclass(frozen=True)
class Config(UnlearnConfig):
    layer: str = hp(
        "logits",
        "Representation pulled to the origin: 'logits' (the paper) or 'features' "
        "(penultimate layer, the deeper variant)",
        choices=("logits", "features"),
    )
    p: int = hp(1, "Exponent of the norm: 1 = ‖h‖₂ (default), 2 = squared ‖h‖₂²", choices=(1, 2))
    lam: float = hp(1.0, "λ, weight of the forget-norm term against the retain cross-entropy", 0.0, 100.0)


@register_method(
    "opc",
    Config,
    "One-point contraction: CE on the retain set + λ·‖h(x)‖^p pulls the forget set to the origin",
    paper="Jung et al., OPC: One-Point-Contraction Unlearning, arXiv 2507.07754 (2025)",
)
def opc_loss(model: nn.Module, batch: dict, ctx: UnlearnContext) -> tuple[torch.Tensor, dict]:
    cfg: Config = ctx.cfg
    (x_r, y_r), (x_f, _) = batch["retain"], batch["forget"]
    feats = model.features(torch.cat([x_r, x_f]))  # (B_r + B_f, D)
    logits = model.head(feats)  # (B_r + B_f, K)
    n_r = len(x_r)
    retain_ce = F.cross_entropy(logits[:n_r], y_r)
    h = (logits if cfg.layer == "logits" else feats)[n_r:].float()  # (B_f, K) or (B_f, D)
    forget_norm = h.norm(dim=1).pow(cfg.p).mean()
    loss = retain_ce + cfg.lam * forget_norm
    return loss, {"retain_ce": retain_ce.detach(), "forget_norm": forget_norm.detach(), "loss": loss.detach()}
