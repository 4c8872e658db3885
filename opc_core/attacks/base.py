"""The recovery-attack registry, the shared threat model and the scoring (SCIENCE.md §6).

Every recovery attack asks whether the forgotten accuracy on D_f can be brought back. The attacker holds the
unlearned model, the original model, and the calibration set D_cal (the test images ``split.cal_idx``, never D_f);
``prototype`` and ``relearn`` additionally receive k leaked forget samples. Attack and scoring are kept apart (after
JonasGeiping/breaching): an attack returns a :class:`RecoveryResult` holding the recovered logits on the scored forget
images, and :func:`score_recovery` compares them with the true labels. The headline number is the **recovered UA** =
100 - accuracy of the attacked predictor on D_f, in percent; higher means the model is still forgotten.

Features are computed through one :class:`FeatureBank` per (unlearned, original, data, split): it extracts each set
lazily, once, so :func:`run_recovery` (or a benchmark) runs every attack on one extraction. Nothing is cached globally.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from opc_core.data import ImageData, Split
from opc_core.env.device import model_device
from opc_core.methods.base import describe_fields, validate_config
from opc_core.registry import Registry
from opc_core.train.inference import features_and_logits, labels_of
from opc_core.train.loop import hp

log = logging.getLogger(__name__)


# --- configs ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationConfig:
    """Options of the attacks that fit on the calibration set D_cal."""

    cal_exclude_forget: bool = hp(False, "Drop the forget classes' images from D_cal (class-wise splits only)")


@dataclass(frozen=True)
class RidgeConfig(CalibrationConfig):
    """Options of the closed-form ridge attacks (FM, HR); see :func:`ridge_fit`."""

    eps: float = hp(
        1e-3, "Ridge strength, relative to the centred calibration features' mean sum of squares", 1e-9, 1e3
    )


@dataclass(frozen=True)
class LeakConfig:
    """Options of the attacks that receive k leaked forget samples."""

    k: int = hp(5, "Leaked forget samples per forget class (class-wise) or in total (random-sample)", 1, 1000)
    seed: int = hp(0, "Seed of the draw of the leaked samples", 0, 2**31 - 1)


# --- results ----------------------------------------------------------------------------------------------------------
@dataclass
class RecoveryResult:
    """What a recovery attack returns; scoring it is :func:`score_recovery`'s job.

    Attributes:
        name: The attack's registered name.
        recovered_logits: Scores of the attacked predictor on the scored forget images, (N_scored, K), CPU float32.
        scored_idx: Training-set indices of the scored forget images (all of D_f, or D_f minus the leaked samples).
        details: Attack-specific diagnostics (fit residual, ridge strength, leaked indices, ...), JSON-safe.
        seconds: Wall time of the attack, feature extraction included when it had to extract.
    """

    name: str
    recovered_logits: torch.Tensor
    scored_idx: torch.Tensor
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


AttackFn = Callable[..., RecoveryResult]


@dataclass(frozen=True)
class AttackSpec:
    """A registered recovery attack."""

    name: str
    description: str
    config: type  # a frozen dataclass
    fn: AttackFn
    paper: str = ""

    def __call__(
        self,
        unlearned: nn.Module,
        original: nn.Module,
        data: ImageData,
        split: Split,
        cfg: Any = None,
        *,
        bank: FeatureBank | None = None,
    ) -> RecoveryResult:
        cfg = cfg if cfg is not None else self.config()
        if not isinstance(cfg, self.config):
            raise TypeError(f"attack {self.name} expects a {self.config.__qualname__}, got {type(cfg).__qualname__}")
        validate_config(cfg)
        return self.fn(unlearned, original, data, split, cfg, bank=bank)

    def describe(self) -> dict[str, Any]:
        """JSON-safe description: name, description, paper and each config field."""
        return {
            "name": self.name,
            "description": self.description,
            "paper": self.paper,
            "config": describe_fields(self.config),
        }


ATTACKS: Registry[AttackSpec] = Registry("attack")


def register_attack(name: str, config: type, description: str, *, paper: str = ""):
    """Decorator registering ``fn(unlearned, original, data, split, cfg, *, bank=None)`` as attack ``name``."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config of attack {name!r} must be a dataclass")

    def deco(fn: AttackFn) -> AttackFn:
        ATTACKS.add(name, AttackSpec(name, description, config, fn, paper))
        return fn

    return deco


def get_attack(name: str) -> AttackSpec:
    """The registered attack; an unknown name raises KeyError listing the valid ones."""
    return ATTACKS.get(name)


def list_attacks() -> list[str]:
    """Registered recovery-attack names, in registration order."""
    return ATTACKS.names()


# --- the threat model -------------------------------------------------------------------------------------------------
def calibration_idx(data: ImageData, split: Split, exclude_forget: bool = False) -> torch.Tensor:
    """The attacker's calibration images (indices into the test set), optionally without the forget classes.

    In random-sample splits every class is retained, so ``exclude_forget`` has nothing to drop there.
    """
    cal = split.cal_idx.cpu()
    if exclude_forget and split.forget_classes:
        y = labels_of(data, cal, "test")
        cal = cal[~torch.isin(y, torch.tensor(split.forget_classes, dtype=torch.int64))]
    if len(cal) == 0:
        raise ValueError("the calibration set is empty")
    return cal


def leak_forget(data: ImageData, split: Split, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the leaked forget samples: ``(leaked_idx, rest_idx)``, both sorted training indices.

    Class-wise splits leak ``k`` samples of each forget class (so every forgotten class is represented); random-sample
    splits leak ``k`` samples of D_f in total. The draw uses one ``torch.Generator`` seeded with ``seed``.
    """
    forget = split.forget_idx.cpu()
    g = torch.Generator().manual_seed(seed)
    if split.forget_classes:
        y = labels_of(data, forget, "train")
        parts = []
        for c in split.forget_classes:
            members = forget[y == c]
            parts.append(members[torch.randperm(len(members), generator=g)[:k]])
        leaked = torch.cat(parts)
    else:
        leaked = forget[torch.randperm(len(forget), generator=g)[:k]]
    if len(leaked) >= len(forget):
        raise ValueError(f"k={k} leaks the whole forget set ({len(forget)} samples); nothing is left to score")
    leaked = leaked.sort().values
    rest = forget[~torch.isin(forget, leaked)]
    return leaked, rest


class FeatureBank:
    """Lazily extracted, per-call cached features and logits of the sets the attacks read.

    Keys are ``(model_role, part, exclude_forget)`` with role "unlearned" | "original" and part "cal" | "forget";
    the values are ``(F (N, D), Z (N, K), idx)`` on the CPU. One bank serves every attack on the same models and split.
    On the CPU, extraction runs on a channels_last copy of each model in batches of 128: mkldnn's convolutions take
    about 25% less time that way (measured on cnn_small, 28x28), and the features agree to float32 rounding.
    """

    def __init__(
        self, unlearned: nn.Module, original: nn.Module | None, data: ImageData, split: Split, batch_size: int = 128
    ) -> None:
        self.models = {"unlearned": unlearned, "original": original}
        self.data, self.split, self.batch_size = data, split, batch_size
        self._store: dict[tuple[str, str, bool], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._fast: dict[str, nn.Module] = {}
        self.seconds = 0.0  # total extraction time so far

    def _model(self, role: str) -> nn.Module:
        model = self.models[role]
        if model is None:
            raise ValueError(f"this attack needs the {role} model")
        if model_device(model).type != "cpu":
            return model
        if role not in self._fast:
            self._fast[role] = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        return self._fast[role]

    def put(
        self, role: str, part: str, features: torch.Tensor, logits: torch.Tensor, exclude_forget: bool = False
    ) -> None:
        """Hand the bank features a caller already has (rows in the order of the split's indices for ``part``)."""
        if part == "cal":
            idx = calibration_idx(self.data, self.split, exclude_forget)
        elif part == "forget":
            idx, exclude_forget = self.split.forget_idx.cpu(), False
        else:
            raise ValueError(f"part must be 'cal' or 'forget', got {part!r}")
        if len(features) != len(idx) or len(logits) != len(idx):
            raise ValueError(f"expected {len(idx)} rows for {role}/{part}, got {len(features)} and {len(logits)}")
        self._store[(role, part, bool(exclude_forget))] = (features.float().cpu(), logits.float().cpu(), idx)

    def get(
        self, role: str, part: str, exclude_forget: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features, logits, idx)`` of ``role``'s model on ``part`` ("cal" test images or "forget" train images)."""
        key = (role, part, bool(exclude_forget) if part == "cal" else False)
        if key not in self._store:
            if part == "cal":
                idx, which = calibration_idx(self.data, self.split, key[2]), "test"
            elif part == "forget":
                idx, which = self.split.forget_idx.cpu(), "train"
            else:
                raise ValueError(f"part must be 'cal' or 'forget', got {part!r}")
            t0 = time.perf_counter()
            f, z = features_and_logits(self._model(role), self.data, idx, which, batch_size=self.batch_size)
            self.seconds += time.perf_counter() - t0
            self._store[key] = (f, z, idx)
        return self._store[key]


# --- scoring ----------------------------------------------------------------------------------------------------------
def score_recovery(result: RecoveryResult, data: ImageData) -> dict[str, float]:
    """Accuracy of the attacked predictor on its scored forget images and the recovered UA (= 100 - accuracy), %."""
    y = labels_of(data, result.scored_idx, "train")
    if len(y) == 0:
        return {"recovered_ua": float("nan"), "recovered_acc": float("nan")}
    acc = 100.0 * (result.recovered_logits.argmax(1).cpu() == y).float().mean().item()
    return {"recovered_ua": 100.0 - acc, "recovered_acc": acc}


def run_recovery(
    unlearned: nn.Module,
    original: nn.Module,
    data: ImageData,
    split: Split,
    names: Sequence[str] | None = None,
    cfgs: Mapping[str, Any] | None = None,
    bank: FeatureBank | None = None,
) -> dict[str, dict[str, Any]]:
    """Run several recovery attacks on one feature extraction and score them.

    Args:
        names: attacks to run (all registered when None).
        cfgs: per-attack config objects (defaults where absent).
        bank: a :class:`FeatureBank` to share with other callers (a fresh one when None).

    Returns:
        ``{name: {"recovered_ua", "recovered_acc", "seconds", "n_scored", "details"}}``.
    """
    bank = bank or FeatureBank(unlearned, original, data, split)
    cfgs = dict(cfgs or {})
    out: dict[str, dict[str, Any]] = {}
    for name in names or list_attacks():
        res = get_attack(name)(unlearned, original, data, split, cfgs.get(name), bank=bank)
        out[name] = {
            **score_recovery(res, data),
            "seconds": res.seconds,
            "n_scored": len(res.scored_idx),
            "details": res.details,
        }
        log.info("%s: recovered UA %.1f%% in %.2fs", name, out[name]["recovered_ua"], res.seconds)
    return out


def ridge_fit(x: torch.Tensor, y: torch.Tensor, eps: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Closed-form ridge regression with an unregularised bias: ``W = argmin ||[x, 1] W - y||² + λ||W_x||²``.

    λ is relative: ``eps`` times the mean per-dimension sum of squares of the *centred* inputs, so the fit does not
    change when the unlearned features are rescaled (a collapsed model's tiny features get a tiny λ; a linear map
    could undo any rescaling anyway). The bias row is not regularised, which makes the fit equal to ridge on centred
    inputs. A floor of 1e-12 per sample keeps the normal equations solvable when the inputs are exactly constant.
    The (D+1)x(D+1) normal equations are solved in float64.

    Args:
        x: inputs (N, D). y: targets (N, T). eps: relative ridge strength.

    Returns:
        ``W`` (D+1, T) in float64 (last row = bias) and diagnostics (``lambda``, relative ``residual``).
    """
    xd, yd = x.double(), y.double()
    n, d = xd.shape
    a = torch.cat([xd, torch.ones(n, 1, dtype=torch.float64)], dim=1)  # (N, D+1)
    centred = xd - xd.mean(0, keepdim=True)
    lam = eps * max(float((centred * centred).sum()) / max(d, 1), 1e-12 * n)
    reg = torch.full((d + 1,), lam, dtype=torch.float64)
    reg[-1] = 0.0  # the bias is not regularised
    w = torch.linalg.solve(a.T @ a + torch.diag(reg), a.T @ yd)  # (D+1, T)
    fit = a @ w  # (N, T)
    total = float(((yd - yd.mean(0)) ** 2).sum())
    resid = float(((fit - yd) ** 2).sum()) / max(total, 1e-30)  # share of the targets' variance left unexplained
    return w, {"lambda": lam, "residual": resid}


def apply_affine(f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``[f, 1] @ W`` in float64, returned as float32: (N, D) x (D+1, T) -> (N, T)."""
    return (f.double() @ w[:-1] + w[-1]).float()
