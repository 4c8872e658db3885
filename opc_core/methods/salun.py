"""SalUn, saliency unlearning (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency
in Both Image Classification and Generation", ICLR 2024).

A weight-saliency mask is computed once from the forget loss at the original weights, with one global threshold
over all parameters:

    m_S = 1[ |∇_θ CE(θ_o; D_f)| ≥ γ ],   γ = the (1 − sparsity) quantile of all |∇_θ| entries

and random-label unlearning (see ``rl``) then updates only the salient weights: θ ← θ − η (m_S ⊙ ∇_θ L_RL).

Masking: gradient hooks multiply every gradient by the mask, and the L2 weight decay is moved from the optimiser
into the loss as ½·wd·‖θ‖² (its gradient wd·θ is masked by the same hooks). The unmasked weights therefore receive an
exactly zero gradient at every step, so neither momentum nor Adam's moments nor weight decay can move them. BatchNorm
running statistics are buffers, not weights, and are updated as in the reference code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from opc_core.config import hp
from opc_core.data import ImageData
from opc_core.env.device import model_device
from opc_core.methods.base import Plan, UnlearnConfig, UnlearnContext, register_method
from opc_core.methods.rl import rl_loss


@dataclass(frozen=True)
class Config(UnlearnConfig):
    sparsity: float = hp(
        0.5, "Share of weights updated: the most salient fraction by |∇ forget CE| (0.5 = top 50%)", 0.01, 1.0
    )


def saliency_mask(
    model: nn.Module, data: ImageData, idx: torch.Tensor, sparsity: float, batch_size: int = 256
) -> list[torch.Tensor]:
    """One 0/1 mask per parameter: the top ``sparsity`` share of |∇ CE(D_f)| under one global threshold."""
    device = model_device(model)
    was_training = model.training
    model.eval()  # the saliency of the original model, with its running BatchNorm statistics
    model.zero_grad(set_to_none=True)
    for start in range(0, len(idx), batch_size):
        sel = idx[start : start + batch_size].to(data.train_x.device)
        x = data.normalize(data.train_x[sel]).to(device)  # (B, C, H, W)
        F.cross_entropy(model(x), data.train_y[sel].to(device), reduction="sum").backward()
    params = list(model.parameters())
    scores = torch.cat([p.grad.abs().flatten() for p in params])  # (P,)
    keep = max(1, round(sparsity * scores.numel()))
    threshold = torch.topk(scores, keep, sorted=False).values.min()
    masks = [(p.grad.abs() >= threshold).to(p.dtype) for p in params]
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return masks


@dataclass
class MaskHooks:
    """The gradient hooks that apply the saliency mask to the working model (removed when the run ends)."""

    handles: list[torch.utils.hooks.RemovableHandle]


def mask_gradients(work: nn.Module, ctx: UnlearnContext) -> MaskHooks:
    """Compute the mask at the original weights and multiply every later gradient by it."""
    masks = saliency_mask(work, ctx.data, ctx.split.forget_idx, ctx.cfg.sparsity)
    return MaskHooks([p.register_hook(lambda g, m=m: g * m) for p, m in zip(work.parameters(), masks, strict=True)])


def remove_mask(work: nn.Module, hooks: MaskHooks) -> None:
    for h in hooks.handles:
        h.remove()


def decay_in_loss(cfg: Config) -> Config:
    """The optimiser runs without weight decay: the loss carries it, so the mask covers it too."""
    return dataclasses.replace(cfg, weight_decay=0.0)


@register_method(
    "salun",
    Config,
    "Saliency unlearning: random labels, updating only the weights most salient to the forget loss",
    plan=Plan(prepare=mask_gradients, finish=remove_mask, optim=decay_in_loss),
    paper="Fan et al., SalUn, ICLR 2024",
)
def salun_loss(model: nn.Module, batch: dict, ctx: UnlearnContext[MaskHooks]):
    loss, logs = rl_loss(model, batch, ctx)
    wd = ctx.cfg.weight_decay
    if wd > 0:  # weight decay through the loss (not the optimiser), so the mask hooks cover it too
        loss = loss + 0.5 * wd * sum(p.pow(2).sum() for p in model.parameters())
    return loss, {**logs, "loss": loss.detach()}
