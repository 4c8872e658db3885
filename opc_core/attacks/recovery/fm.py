"""FM, the feature-mapping recovery attack of the OPC paper (arXiv 2507.07754, §"performance recovery attack").

The attacker fits a linear map from the unlearned model's penultimate features to the original model's, on the
calibration set only, in closed form:

    W = argmin_W ‖[F_u, 1] W − F_o‖² + λ‖W‖²,    F_u = f_u(X_cal), F_o = f_o(X_cal)

and predicts a forget image x with the original head: argmax g_o([f_u(x), 1] W). If unlearning only moved the forget
set's features by something a linear map can undo, FM restores the forgotten accuracy; if the forget set collapsed
to one point (OPC's one-point contraction) every forget image maps to the same output and nothing comes back.

Choices the paper leaves open (documented options): λ = ``eps`` × the mean per-dimension sum of squares of the
centred calibration features (scale-free, see :func:`opc_core.attacks.recovery.ridge.ridge_fit`); the bias row is not
regularised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from opc_core.attacks.recovery.base import RecoveryResult, RidgeConfig, register_attack
from opc_core.attacks.recovery.ridge import apply_affine, ridge_fit
from opc_core.attacks.recovery.threat import FeatureBank
from opc_core.data import ImageData, Split
from opc_core.env.device import model_device


@dataclass(frozen=True)
class Config(RidgeConfig):
    """Feature-mapping attack settings."""


@register_attack(
    "fm",
    Config,
    label="FM",
    help="Fits a linear map from the unlearned to the original features on held-out data, then predicts with the "
    "original head.",
    threat_model="The unlearned and original models plus held-out calibration images D_cal, never D_f.",
    paper="Jung et al. 2025, OPC (arXiv 2507.07754)",
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
    """Fit the ridge feature map on D_cal and return the original head's logits of the mapped forget features."""
    t0 = time.perf_counter()
    bank = bank or FeatureBank(unlearned, original, data, split)
    f_u, _, cal = bank.get("unlearned", "cal", cfg.cal_exclude_forget)  # (M, D_u)
    f_o, _, _ = bank.get("original", "cal", cfg.cal_exclude_forget)  # (M, D_o)
    f_forget, _, forget = bank.get("unlearned", "forget")  # (N_f, D_u)
    logits, diag = fm_logits(original, f_u, f_o, f_forget, cfg.eps)
    details = {**diag, "n_cal": len(cal), "feature_dim": int(f_u.shape[1])}
    return RecoveryResult("fm", logits, forget, details, time.perf_counter() - t0)


def fm_logits(
    original: nn.Module, f_u_cal: torch.Tensor, f_o_cal: torch.Tensor, f_u_forget: torch.Tensor, eps: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """FM's prediction: the ridge map from ``f_u_cal`` (M, D_u) to ``f_o_cal`` (M, D_o) applied to ``f_u_forget``
    (N, D_u), read by the original head. Returns the logits (N, K) on the CPU and the fit's diagnostics."""
    w, diag = ridge_fit(f_u_cal, f_o_cal, eps)  # (D_u+1, D_o)
    mapped = apply_affine(f_u_forget, w)  # (N, D_o)
    with torch.inference_mode():
        logits = original.head(mapped.to(model_device(original))).float().cpu()  # (N, K)
    return logits, diag
