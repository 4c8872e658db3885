"""The objectives a gradient-inversion attack minimises (docs/science.md §7): a gradient mismatch plus an image prior.

- ``"ig"``, Inverting Gradients (Geiping, Bauermeister, Dröge & Moeller, NeurIPS 2020, Eq. 4):
  1 − ⟨∇_θ L(x̂, y), g⟩ / (‖∇_θ L(x̂, y)‖ ‖g‖), the cosine taken over the concatenation of all parameter gradients.
- ``"dlg"``, Deep Leakage from Gradients (Zhu, Liu & Han, NeurIPS 2019, Eq. 4): ‖∇_θ L(x̂, y) − g‖². The labels are
  known, so only the image is optimised (as in iDLG).

Both add a prior α · TV(x̂). Priors are small objects with a ``scale`` in a lookup dict (breaching's
``regularizer_lookup``). :func:`batched_objective` and :func:`single_objective` turn a model, labels and observed
gradients into ``x -> (d objective / dx, objective)``, for a batch of independent problems or for one image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap


# --- priors -----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TotalVariation:
    """Anisotropic total variation (Geiping et al. 2020): mean |horizontal| + mean |vertical| pixel differences.

    Works on one image (C, H, W) -> scalar or a batch (N, C, H, W) -> (N,); multiplied by ``scale``.
    """

    scale: float = 1e-2

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(-3, -2, -1))
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(-3, -2, -1))
        return self.scale * (dx + dy)


PRIORS: dict[str, Any] = {"tv": TotalVariation(scale=1e-2)}
"""Image priors by name, each a small object with a ``scale``."""


def make_prior(name: str, scale: float) -> Any:
    """The prior ``name`` with its ``scale`` replaced."""
    if name not in PRIORS:
        raise KeyError(f"unknown prior {name!r}; valid: {sorted(PRIORS)}")
    return dataclasses.replace(PRIORS[name], scale=scale)


# --- gradient mismatches ----------------------------------------------------------------------------------------------
def cosine_mismatch(g: Sequence[torch.Tensor], t: Sequence[torch.Tensor]) -> torch.Tensor:
    """1 − cos(g, t) over the concatenation of all parameter gradients (Inverting Gradients)."""
    dot = sum((a * b).sum() for a, b in zip(g, t, strict=True))
    g_norm = torch.sqrt(sum((a * a).sum() for a in g))
    t_norm = torch.sqrt(sum((b * b).sum() for b in t))
    return 1 - dot / (g_norm * t_norm).clamp_min(1e-30)


def l2_mismatch(g: Sequence[torch.Tensor], t: Sequence[torch.Tensor]) -> torch.Tensor:
    """Squared L2 distance between the concatenated gradients (DLG)."""
    return sum(((a - b) ** 2).sum() for a, b in zip(g, t, strict=True))


Mismatch = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """A gradient-matching objective and what the dashboard says about it."""

    label: str
    help: str
    paper: str
    mismatch: Mismatch


OBJECTIVES: dict[str, Objective] = {
    "ig": Objective(
        "Inverting Gradients",
        "Optimises a dummy image until its gradient's cosine similarity with the observed gradient is maximal, "
        "plus a total-variation prior; the label is known.",
        "Geiping et al. 2020 (NeurIPS)",
        cosine_mismatch,
    ),
    "dlg": Objective(
        "DLG",
        "Optimises a dummy image until its gradient matches the observed gradient in L2.",
        "Zhu et al. 2019 (NeurIPS)",
        l2_mismatch,
    ),
}


# --- objective gradients with respect to the image --------------------------------------------------------------------
GradFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # x (n, C, H, W) -> (dobj/dx, objective (n,))


def batched_objective(
    work: nn.Module, y: torch.Tensor, targets: list[torch.Tensor], mismatch: Mismatch, prior: Any
) -> GradFn:
    """Per-problem objective gradients of a whole batch at once: vmap over grad of a functional model.

    Each problem's parameter gradient is a per-sample gradient of a functional copy of ``work``, and the image
    gradient is taken through it (double backward), so image i's update depends on image i only.
    """
    params = {k: v.detach() for k, v in work.named_parameters()}
    buffers = {k: v.detach() for k, v in work.named_buffers()}

    def ce(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:  # one image (C, H, W)
        return F.cross_entropy(functional_call(work, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    def objective(xi: torch.Tensor, yi: torch.Tensor, ti: list[torch.Tensor]) -> torch.Tensor:
        g = grad(ce)(params, xi, yi)  # per-sample parameter gradient, kept differentiable in xi
        return mismatch(list(g.values()), ti) + prior(xi)

    step = vmap(grad_and_value(objective))
    return lambda x: step(x, y, targets)


def single_objective(
    work: nn.Module, y: torch.Tensor, targets: list[torch.Tensor], mismatch: Mismatch, prior: Any
) -> GradFn:
    """The same objective for one image with plain autograd (double backward); the sequential reference path."""
    params = list(work.parameters())

    def fn(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # x (1, C, H, W)
        x = x.detach().requires_grad_(True)
        g = torch.autograd.grad(F.cross_entropy(work(x), y), params, create_graph=True)
        obj = mismatch(g, targets) + prior(x[0])
        (gx,) = torch.autograd.grad(obj, [x])
        return gx, obj.detach().reshape(1)

    return fn
