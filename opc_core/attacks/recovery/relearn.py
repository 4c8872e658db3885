"""Relearn: a few optimiser steps on k leaked forget samples, then accuracy on the rest of D_f (beyond the paper).

A relearning attack in the spirit of the reviewers' objection to OPC (arXiv 2507.07754) and of the relearning
literature: if the forgotten knowledge is still latent, a handful of steps on a few leaked samples brings the whole
class back. A copy of the unlearned model takes ``steps`` full-batch steps of cross-entropy on the leaked samples with
their true labels, all parameters trainable. Scored on D_f minus the leaked samples.

Choices (documented options):

- BatchNorm stays in eval mode (running statistics frozen): with k = 5 samples, batch statistics would be meaningless
  and would overwrite the running averages, which measures BatchNorm damage rather than relearning.
- The default optimiser is Adam, lr 1e-3, not SGD. In eval mode the convolution gradients are scaled by
  1/sqrt(running variance) and are badly conditioned: one plain SGD step on a few correctly classified samples can
  wreck the accuracy on the other forget samples, so the attack would destroy what it should recover. Adam's
  per-parameter step size does not blow up that way. ``optimizer="sgd"`` (with momentum and ``grad_clip``) remains.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from opc_core.attacks.recovery.base import LeakConfig, RecoveryResult, register_attack
from opc_core.attacks.recovery.threat import FeatureBank, leak_forget
from opc_core.config import hp
from opc_core.data import ImageData, Split
from opc_core.env.device import model_device
from opc_core.train.inference import labels_of, logits_of


@dataclass(frozen=True)
class Config(LeakConfig):
    """Relearning attack settings."""

    steps: int = hp(20, "Full-batch steps on the leaked samples", 1, 10000)
    optimizer: str = hp(
        "adam", "Optimiser (see the module docstring for why Adam is the default)", choices=("adam", "sgd")
    )
    lr: float = hp(1e-3, "Learning rate", 1e-6, 10.0)
    momentum: float = hp(0.9, "SGD momentum (sgd only)", 0.0, 0.999)
    grad_clip: float = hp(0.0, "Clip the gradient norm to this value (0 = off)", 0.0, 100.0)


def relearn_copy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: Config) -> tuple[nn.Module, list[float]]:
    """A copy of ``model`` after ``cfg.steps`` steps of CE on ``(x, y)``; also the loss of each step."""
    work = copy.deepcopy(model).eval()  # eval: BatchNorm running statistics stay frozen (see module docstring)
    params = list(work.parameters())
    for p in params:
        p.requires_grad_(True)
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=cfg.lr)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    losses = []
    with torch.enable_grad():
        for _ in range(cfg.steps):
            loss = nn.functional.cross_entropy(work(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            losses.append(float(loss.detach()))
    return work.eval(), losses


@register_attack(
    "relearn",
    Config,
    label="relearn",
    help="Takes a few optimiser steps (Adam by default) on the leaked samples and is scored on the rest of D_f.",
    threat_model="The unlearned model and k leaked forget samples with their labels; no calibration data.",
    paper="beyond the paper (reviewers of arXiv 2507.07754)",
)
def attack(
    unlearned: nn.Module,
    original: nn.Module | None,
    data: ImageData,
    split: Split,
    cfg: Config,
    *,
    bank: FeatureBank | None = None,
) -> RecoveryResult:
    """Relearn on the leaked samples and return the relearned copy's logits on the rest of D_f."""
    t0 = time.perf_counter()
    leaked, rest = leak_forget(data, split, cfg.k, cfg.seed)
    device = model_device(unlearned)
    x = data.normalize(data.train_x[leaked.to(data.device)]).to(device)  # (L, C, H, W)
    y = labels_of(data, leaked, "train").to(device)  # (L,)
    model, losses = relearn_copy(unlearned, x, y, cfg)
    logits = logits_of(model, data, rest, "train", batch_size=256)  # (N_f - L, K)
    details = {"n_leaked": len(leaked), "leaked_idx": leaked.tolist(), "loss_first": losses[0], "loss_last": losses[-1]}
    return RecoveryResult("relearn", logits, rest, details, time.perf_counter() - t0)
