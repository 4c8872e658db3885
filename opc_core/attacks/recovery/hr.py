"""HR, head re-fitting: a new linear head on the unlearned features, fitted on D_cal in closed form.

    W = argmin_W ‖[F_u, 1] W − T‖² + λ‖W‖²,    F_u = f_u(X_cal)

with T the one-hot true labels of D_cal (default, ``target="onehot"``) or the original model's logits on D_cal
(``target="logits"``); a forget image x is predicted as argmax([f_u(x), 1] W). λ is relative to the centred features'
scale, as for FM; the bias is not regularised. See docs/science.md §6.

The logit target makes HR **identical to FM** by construction: the original head is affine, so its logits are an
affine function of FM's targets, and ridge regression is linear in its targets; both predict the same class for every
image. The paper's figure shows the two differing, so its HR is something else; re-fitting a head on the calibration
labels is the nearest distinct reading, hence the default. The option stays, labelled "≡ FM".
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from opc_core.attacks.recovery.base import RecoveryResult, RidgeConfig, register_attack
from opc_core.attacks.recovery.ridge import apply_affine, ridge_fit
from opc_core.attacks.recovery.threat import FeatureBank
from opc_core.config import hp
from opc_core.data import ImageData, Split
from opc_core.train.inference import labels_of


@dataclass(frozen=True)
class Config(RidgeConfig):
    """Head re-fitting settings."""

    target: str = hp(
        "onehot",
        "Regression target on D_cal: 'onehot' = the true labels (a head re-fitted on the calibration labels, the "
        "default) or 'logits' = the original model's logits (≡ FM: same predictions by construction)",
        choices=("onehot", "logits"),
    )


@register_attack(
    "hr",
    Config,
    label="HR",
    help="Re-fits a linear head on the unlearned features of held-out data and their labels (the logit-target option "
    "is identical to FM).",
    threat_model="The unlearned model and labelled calibration images D_cal (or the original model's logits on them), "
    "never D_f.",
    paper="named in Jung et al. 2025 (arXiv 2507.07754), whose exact form is not given; here a head re-fitted on "
    "the calibration labels",
)
def attack(
    unlearned: nn.Module,
    original: nn.Module,
    data: ImageData,
    split: Split,
    cfg: Config,
    *,
    bank: FeatureBank | None = None,
) -> RecoveryResult:
    """Fit a ridge head on D_cal and return its logits on the forget features."""
    t0 = time.perf_counter()
    bank = bank or FeatureBank(unlearned, original, data, split)
    f_u, _, cal = bank.get("unlearned", "cal", cfg.cal_exclude_forget)  # (M, D)
    if cfg.target == "logits":
        target = bank.get("original", "cal", cfg.cal_exclude_forget)[1]  # (M, K)
    else:
        k = data.num_classes
        target = torch.nn.functional.one_hot(labels_of(data, cal, "test"), k).float()  # (M, K)
    f_forget, _, forget = bank.get("unlearned", "forget")  # (N_f, D)
    w, diag = ridge_fit(f_u, target, cfg.eps)  # (D+1, K)
    logits = apply_affine(f_forget, w)  # (N_f, K)
    details = {**diag, "n_cal": len(cal), "target": cfg.target}
    return RecoveryResult("hr", logits, forget, details, time.perf_counter() - t0)
