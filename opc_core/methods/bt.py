"""BT, bad teacher (Chundawat et al., "Can Bad Teaching Induce Forgetting? Unlearning in Deep Networks Using an
Incompetent Teacher", AAAI 2023).

The student (a copy of the original) distils two frozen teachers at once: the competent teacher T_s (the original
model) on retain samples and an incompetent teacher T_d (a randomly initialised model of the same architecture) on
forget samples. Over a mixed batch B = B_r ∪ B_f, with l_f(x) = 1 for forget samples:

    L(θ) = (1/|B|) Σ_{x ∈ B} KL( (1 − l_f(x)) · p_{T_s}(x) + l_f(x) · p_{T_d}(x)  ‖  p_θ(x) ),   temperature T = 1
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from opc_core.config import hp
from opc_core.methods.base import Plan, UnlearnConfig, UnlearnContext, register_method
from opc_core.methods.common import distill_kl, frozen, mixed_forward, random_twin


@dataclass(frozen=True)
class Config(UnlearnConfig):
    temperature: float = hp(1.0, "Distillation temperature T of both teachers' softmax", 0.1, 20.0)


@dataclass
class Teachers:
    good: nn.Module  # the original, frozen: followed on the retain set
    bad: nn.Module  # a random network of the same architecture, frozen: followed on the forget set


def teachers(work: nn.Module, ctx: UnlearnContext) -> Teachers:
    return Teachers(good=frozen(work), bad=frozen(random_twin(work)))  # the random one seeded by cfg.seed


@register_method(
    "bt",
    Config,
    "Bad teacher: distil the original on the retain set and a random network on the forget set",
    plan=Plan(prepare=teachers),
    paper="Chundawat et al., Can Bad Teaching Induce Forgetting?, AAAI 2023",
)
def bt_loss(model: nn.Module, batch: dict, ctx: UnlearnContext[Teachers]):
    (x_r, _), (x_f, _) = batch["retain"], batch["forget"]
    z_r, z_f = mixed_forward(model, batch)  # (B_r, K), (B_f, K)
    with torch.no_grad():
        t_r = ctx.state.good(x_r)  # (B_r, K)
        t_f = ctx.state.bad(x_f)  # (B_f, K)
    temp = ctx.cfg.temperature
    kl_r, kl_f = distill_kl(z_r, t_r, temp), distill_kl(z_f, t_f, temp)
    n_r, n_f = len(x_r), len(x_f)
    loss = (n_r * kl_r + n_f * kl_f) / (n_r + n_f)
    return loss, {"retain_kl": kl_r.detach(), "forget_kl": kl_f.detach(), "loss": loss.detach()}
