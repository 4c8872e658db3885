"""What a gradient-inversion attacker observes (docs/science.md §7), after JonasGeiping/breaching's threat models.

For each forget image x with known label y, the attacker sees the gradient ∇_θ CE(m(x), y) of the attacked model,
computed on a batch of size 1 over *all* parameters θ, and knows the model. The model runs in **eval mode**, for the
observed gradients and the reconstruction alike: BatchNorm uses its running statistics, because batch statistics would
couple the images of a batch (and are degenerate for a batch of one). Attention runs on the math kernel, the only one
with a double backward, which the reconstruction needs.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


def math_attention(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn`` with the math attention kernel: the fused ones have no double backward (needed for ViT)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with sdpa_kernel(SDPBackend.MATH):
            return fn(*args, **kwargs)

    return wrapper


def eval_copy(model: nn.Module) -> nn.Module:
    """A copy in eval mode with every parameter differentiable; the caller's model is never touched.

    The copy is in the default (contiguous) layout: the double backward of gradient matching on a few small images is
    ~10% slower in channels-last on the 2-core CPU (measured on cnn_small, 2 and 8 images).
    """
    work = copy.deepcopy(model).eval().to(memory_format=torch.contiguous_format)
    for p in work.parameters():
        p.requires_grad_(True)
    return work


@math_attention
def observed_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """What the attacker observes: ∇_θ CE(m(x_i), y_i) of each image on its own (batch of size 1), eval mode.

    Args:
        model: the attacked model. x: normalised images (N, C, H, W) on its device. y: labels (N,).

    Returns:
        One tensor (N, *param.shape) per parameter, in ``model.parameters()`` order.
    """
    work = eval_copy(model)
    params = list(work.parameters())
    out = [torch.empty((len(x), *p.shape), device=p.device, dtype=p.dtype) for p in params]
    for i in range(len(x)):
        loss = F.cross_entropy(work(x[i : i + 1]), y[i : i + 1])
        for o, g in zip(out, torch.autograd.grad(loss, params), strict=True):
            o[i] = g
    return out
