"""SCRUB (Kurmanji, Triantafillou, Hayes, Triantafillou, "Towards Unbounded Machine Unlearning", NeurIPS 2023).

Teacher = the original model (frozen), student = a copy. With d(x) = KL(p_teacher(x) ‖ p_student(x)) at temperature
T, the student alternates

    max-step on a forget batch:   L = −d(x_f)                          (move away from the teacher on D_f)
    min-step on a retain batch:   L = d(x_r) + α · CE(m_θ(x_r), y_r)   (stay close to it on D_r)

Steps alternate max, min, max, min, ... during the first ``msteps`` epochs (one epoch = one pass over the retain set);
after that only min-steps run, which repair the retain performance the max-steps cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from opc_core.config import hp
from opc_core.methods.base import Plan, UnlearnConfig, UnlearnContext, register_method
from opc_core.methods.common import distill_kl, frozen


@dataclass(frozen=True)
class Config(UnlearnConfig):
    lr: float = hp(5e-4, "Learning rate", 1e-6, 10.0)
    msteps: float = hp(
        3.0,
        "Epochs (over the retain set) during which max-steps on the forget set alternate with "
        "min-steps; afterwards only min-steps",
        0.0,
        200,
    )
    temperature: float = hp(2.0, "Distillation temperature T of the KL terms", 0.1, 20.0)
    ce_weight: float = hp(
        0.5, "α, weight of the retain cross-entropy in the min-step (next to the KL to the teacher)", 0.0, 100.0
    )


def teacher(work: nn.Module, ctx: UnlearnContext) -> nn.Module:
    return frozen(work)  # the original, before any step


@register_method(
    "scrub",
    Config,
    "SCRUB: a student moves away from the original (teacher) on the forget set and stays close to it on the retain set",
    plan=Plan(prepare=teacher),
    paper="Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023",
)
def scrub_loss(model: nn.Module, batch: dict, ctx: UnlearnContext[nn.Module]):
    cfg: Config = ctx.cfg
    max_phase_steps = round(cfg.msteps * ctx.steps_per_epoch)  # an epoch is a pass over the retain set
    if ctx.step < max_phase_steps and ctx.step % 2 == 0:  # max-step on D_f
        x_f, _ = batch["forget"]
        with torch.no_grad():
            t_f = ctx.state(x_f)  # (B_f, K)
        forget_kl = distill_kl(model(x_f), t_f, cfg.temperature)
        loss = -forget_kl
        return loss, {"forget_kl": forget_kl.detach(), "loss": loss.detach()}
    x_r, y_r = batch["retain"]  # min-step on D_r
    with torch.no_grad():
        t_r = ctx.state(x_r)  # (B_r, K)
    z_r = model(x_r)  # (B_r, K)
    retain_kl = distill_kl(z_r, t_r, cfg.temperature)
    retain_ce = F.cross_entropy(z_r, y_r)
    loss = retain_kl + cfg.ce_weight * retain_ce
    return loss, {"retain_kl": retain_kl.detach(), "retain_ce": retain_ce.detach(), "loss": loss.detach()}
