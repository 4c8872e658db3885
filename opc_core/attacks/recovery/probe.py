"""Linear probe: logistic regression on the unlearned model's features of D_cal (beyond the paper).

A standard representation-quality probe (reviewers of OPC, arXiv 2507.07754, asked for one): standardise the
unlearned penultimate features of the calibration images, fit a multinomial ``sklearn`` logistic regression on their
true labels, and predict D_f. Classes absent from the calibration set (``cal_exclude_forget``) cannot be predicted:
their scores are filled with a finite value below every other score.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from opc_core.attacks.recovery.base import CalibrationConfig, RecoveryResult, register_attack
from opc_core.attacks.recovery.threat import FeatureBank
from opc_core.config import hp
from opc_core.data import ImageData, Split
from opc_core.train.inference import labels_of


@dataclass(frozen=True)
class Config(CalibrationConfig):
    """Linear-probe settings."""

    C: float = hp(1.0, "Inverse L2 regularisation strength of the logistic regression", 1e-4, 1e4)
    max_iter: int = hp(1000, "L-BFGS iterations", 10, 100000)


def _full_scores(decision: np.ndarray, classes: np.ndarray, k: int) -> torch.Tensor:
    """Scatter sklearn's decision values into (N, K) logits, absent classes far below the rest."""
    if decision.ndim == 1:  # binary problem: sklearn returns the score of classes[1]
        decision = np.stack([-decision / 2, decision / 2], axis=1)
    out = np.full((decision.shape[0], k), decision.min() - 1e3 if decision.size else -1e3, dtype=np.float64)
    out[:, classes] = decision
    return torch.from_numpy(out).float()


@register_attack(
    "probe",
    Config,
    label="probe",
    help="Trains a logistic-regression probe on the unlearned model's features of held-out data.",
    threat_model="The unlearned model and labelled calibration images D_cal, never D_f.",
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
    """Fit the probe on D_cal and return its decision values on D_f."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    bank = bank or FeatureBank(unlearned, original, data, split)
    f_cal, _, cal = bank.get("unlearned", "cal", cfg.cal_exclude_forget)  # (M, D)
    f_forget, _, forget = bank.get("unlearned", "forget")  # (N_f, D)
    y_cal = labels_of(data, cal, "test").numpy()
    scaler = StandardScaler().fit(f_cal.double().numpy())
    if len(np.unique(y_cal)) < 2:
        raise ValueError("the calibration set holds a single class; a probe needs two or more")
    clf = LogisticRegression(C=cfg.C, max_iter=cfg.max_iter)
    clf.fit(scaler.transform(f_cal.double().numpy()), y_cal)
    decision = clf.decision_function(scaler.transform(f_forget.double().numpy()))
    logits = _full_scores(decision, clf.classes_, data.num_classes)  # (N_f, K)
    details = {
        "n_cal": len(cal),
        "train_acc": float(100 * clf.score(scaler.transform(f_cal.double().numpy()), y_cal)),
        "n_iter": int(np.max(clf.n_iter_)),
    }
    return RecoveryResult("probe", logits, forget, details, time.perf_counter() - t0)
