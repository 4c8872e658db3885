"""Prototype: write the mean feature of k leaked forget samples into their class's head row (beyond the paper).

Public reviewers of OPC (arXiv 2507.07754) called the linear FM attack circular for a method that collapses features;
this attack needs no calibration set at all. For every class c among the leaked samples' labels (each forget class in
a class-wise split), the unlearned model's head row c becomes the prototype direction μ_c / ‖μ_c‖, with μ_c the mean
unlearned feature of the leaked samples of class c, and is then scaled to the mean norm of the head rows that were
not replaced, so the new row speaks as loudly as the others. Its bias (option ``bias``):

- ``"mean"`` (default): the mean bias of the rows not replaced;
- ``"tie"``: the bias that makes class c tie with the best other class on the prototype μ_c itself.

The model is a copy; the input model is never changed. Scored on all of D_f.
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
from opc_core.train.inference import labels_of


@dataclass(frozen=True)
class Config(LeakConfig):
    """Prototype attack settings."""

    bias: str = hp(
        "mean",
        "Bias of a written row: mean of the other rows, or a tie with the best other class on the prototype",
        choices=("mean", "tie"),
    )


def write_prototypes(head: nn.Linear, protos: dict[int, torch.Tensor], bias: str) -> None:
    """Overwrite ``head``'s rows ``protos`` keys with scaled prototype directions, in place (see module docstring)."""
    with torch.no_grad():
        w, b = head.weight, head.bias  # (K, D), (K,)
        others = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
        others[list(protos)] = False
        if not others.any():
            raise ValueError("every class would be replaced by a prototype; leave at least one head row")
        scale = w[others].norm(dim=1).mean()
        for c, mu in protos.items():
            mu = mu.to(w)
            w[c] = scale * mu / mu.norm().clamp_min(1e-12)
        if b is None:
            return
        for c, mu in protos.items():
            mu = mu.to(w)
            if bias == "mean":
                b[c] = b[others].mean()
            else:
                rivals = w[others] @ mu + b[others]  # (K_other,)
                b[c] = rivals.max() - w[c] @ mu


@register_attack(
    "prototype",
    Config,
    label="prototype",
    help="Writes the mean unlearned feature of the leaked samples into the head row of their class.",
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
    """Copy the unlearned model, write the prototypes into its head, and return its logits on D_f."""
    t0 = time.perf_counter()
    bank = bank or FeatureBank(unlearned, original, data, split)
    leaked, _ = leak_forget(data, split, cfg.k, cfg.seed)
    f_forget, _, forget = bank.get("unlearned", "forget")  # (N_f, D)
    pos = torch.searchsorted(forget, leaked)  # positions of the leaked samples in D_f (both sorted)
    f_leaked, y_leaked = f_forget[pos], labels_of(data, leaked, "train")  # (L, D), (L,)
    protos = {int(c): f_leaked[y_leaked == c].mean(0) for c in torch.unique(y_leaked)}
    model = copy.deepcopy(unlearned).eval()
    write_prototypes(model.classifier, protos, cfg.bias)
    with torch.inference_mode():
        logits = model.head(f_forget.to(model_device(model))).float().cpu()  # (N_f, K)
    details = {"classes": sorted(protos), "n_leaked": len(leaked), "leaked_idx": leaked.tolist()}
    return RecoveryResult("prototype", logits, forget, details, time.perf_counter() - t0)
