"""Pieces several unlearning methods share: working copies, mixed forward passes, wrong-label sampling, distillation
KL, frozen teachers and partial freezing of a model."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from opc_core.env.device import model_device
from opc_core.models import UnlearnableModel, create_model


def working_copy(model: nn.Module) -> nn.Module:
    """A deep copy with gradients enabled, so the caller's model is never changed."""
    clone = copy.deepcopy(model)
    for p in clone.parameters():
        p.requires_grad_(True)
    return clone


def mixed_forward(model: nn.Module, batch: dict, names: tuple[str, ...] = ("retain", "forget")) -> list[torch.Tensor]:
    """Logits of several streams' batches in ONE forward pass (so BatchNorm sees one mixed batch), split back.

    Returns:
        One (B_i, K) logit tensor per stream name, in order.
    """
    xs = [batch[n][0] for n in names]
    logits = model(torch.cat(xs))  # (sum B_i, K)
    return list(logits.split([len(x) for x in xs]))


def wrong_labels(y: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random label different from each true label: (y + U{1..K-1}) mod K, never the true one."""
    shift = torch.randint(1, num_classes, y.shape, generator=generator)  # on the generator's (CPU) device
    return (y + shift.to(y.device)) % num_classes


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p_teacher || p_student) with temperature T, averaged over the batch and scaled by T^2 (Hinton et al.)."""
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)  # (B, K)
    p_t = F.softmax(teacher_logits.float() / t, dim=1)  # (B, K)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * (t * t)


def frozen(model: nn.Module) -> nn.Module:
    """A frozen copy for use as a teacher: eval mode, no gradients (call it under ``torch.no_grad()``)."""
    clone = copy.deepcopy(model).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def random_twin(model: UnlearnableModel) -> UnlearnableModel:
    """A freshly initialised model of the same architecture, on the same device (uses the global, seeded RNG)."""
    twin = create_model(model.arch, model.in_channels, model.num_classes, model.image_size)
    return twin.to(model_device(model))


def last_stages(model: UnlearnableModel, k: int) -> list[nn.Module]:
    """The last ``k`` feature-extractor stages plus the classifier: the part EU-k / CF-k train."""
    stages = [m for _, m in model.stages()]
    if not 0 <= k <= len(stages):
        raise ValueError(f"k must be between 0 and {len(stages)} (this model has {len(stages)} stages), got {k}")
    return stages[len(stages) - k :] + [model.classifier]


def params_of(modules: Iterable[nn.Module]) -> Iterator[nn.Parameter]:
    for m in modules:
        yield from m.parameters()


def freeze_all_but(model: nn.Module, trainable: list[nn.Module]) -> None:
    """Set requires_grad False on every parameter outside ``trainable`` (no gradient flows into the frozen part)."""
    keep = {id(p) for p in params_of(trainable)}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def train_only(model: nn.Module, trainable: list[nn.Module]) -> None:
    """Eval mode everywhere except ``trainable``, so frozen BatchNorm layers keep their running statistics.

    The shared loop puts the whole model in train mode once; loss functions call this every step.
    """
    model.eval()
    for m in trainable:
        m.train()


def unfreeze(model: nn.Module) -> nn.Module:
    """Restore requires_grad on every parameter (so the returned model behaves like any other)."""
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def reinitialise(modules: Iterable[nn.Module]) -> None:
    """Call ``reset_parameters`` on every sub-module that has one (conv, linear, norm layers; norm stats too)."""
    for m in modules:
        for sub in m.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()


def hold_norm_stats(model: nn.Module) -> None:
    """Put every BatchNorm layer in eval mode: it normalises with, and no longer updates, its running statistics.

    For methods that train on the forget set alone: in train mode each step would overwrite the running statistics
    with those of the forget classes, which breaks the retained classes at test time for a reason unrelated to the
    method's loss. Loss functions call this every step (the shared loop puts the model in train mode once).
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def retain_ce(model: nn.Module, batch: dict, ctx: object = None) -> tuple[torch.Tensor, dict]:
    """Cross-entropy on the retain batch, logged as "retain_ce" and "loss": the loss of FT, retrain, EU-k and CF-k."""
    x_r, y_r = batch["retain"]
    ce = F.cross_entropy(model(x_r), y_r)
    return ce, {"retain_ce": ce.detach(), "loss": ce.detach()}
