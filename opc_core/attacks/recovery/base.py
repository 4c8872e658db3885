"""The recovery-attack registry, its shared configs, and scoring (docs/science.md §6).

Every recovery attack asks whether the forgotten accuracy on D_f can be brought back. An attack returns a
:class:`RecoveryResult` holding the recovered logits on the scored forget images, and :func:`score_recovery` compares
them with the true labels (attack and scoring kept apart, after JonasGeiping/breaching). The headline number is the
**recovered UA** = 100 - accuracy of the attacked predictor on D_f, in percent; higher means still forgotten.

Each attack registers itself with :func:`register_attack`, carrying the metadata the dashboard and the report show
(label, one-sentence help, threat model, paper), so adding an attack is adding one file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from opc_core.attacks.recovery.threat import FeatureBank
from opc_core.config import describe_fields, hp, validate_config
from opc_core.data import ImageData, Split
from opc_core.registry import Registry
from opc_core.train.inference import labels_of

log = logging.getLogger(__name__)


# --- configs ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationConfig:
    """Options of the attacks that fit on the calibration set D_cal."""

    cal_exclude_forget: bool = hp(False, "Drop the forget classes' images from D_cal (class-wise splits only)")


@dataclass(frozen=True)
class RidgeConfig(CalibrationConfig):
    """Options of the closed-form ridge attacks (FM, HR); see :func:`opc_core.attacks.recovery.ridge.ridge_fit`."""

    eps: float = hp(
        1e-3, "Ridge strength, relative to the centred calibration features' mean sum of squares", 1e-9, 1e3
    )


@dataclass(frozen=True)
class LeakConfig:
    """Options of the attacks that receive k leaked forget samples."""

    k: int = hp(5, "Leaked forget samples per forget class (class-wise) or in total (random-sample)", 1, 1000)
    seed: int = hp(0, "Seed of the draw of the leaked samples", 0, 2**31 - 1)


# --- results and the registry -----------------------------------------------------------------------------------------
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
    """A registered recovery attack and what the dashboard says about it.

    Attributes:
        name: Registry key. label: Display name ("FM"). help: One plain sentence on what the attack does.
        threat_model: What the attacker holds (models, calibration data, k leaked forget samples, ...).
        paper: Where the attack comes from. config: Its frozen config dataclass. fn: The attack itself.
    """

    name: str
    label: str
    help: str
    threat_model: str
    paper: str
    config: type
    fn: AttackFn

    def __call__(
        self,
        unlearned: nn.Module,
        original: nn.Module | None,
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
        """JSON-safe description: the metadata and each config field."""
        return {
            "name": self.name,
            "label": self.label,
            "help": self.help,
            "threat_model": self.threat_model,
            "paper": self.paper,
            "config": describe_fields(self.config),
        }


ATTACKS: Registry[AttackSpec] = Registry("attack")


def register_attack(name: str, config: type, *, label: str, help: str, threat_model: str, paper: str):
    """Decorator registering ``fn(unlearned, original, data, split, cfg, *, bank=None)`` as attack ``name``."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config of attack {name!r} must be a dataclass")

    def deco(fn: AttackFn) -> AttackFn:
        ATTACKS.add(name, AttackSpec(name, label, help, threat_model, paper, config, fn))
        return fn

    return deco


def get_attack(name: str) -> AttackSpec:
    """The registered attack; an unknown name raises KeyError listing the valid ones."""
    return ATTACKS.get(name)


def list_attacks() -> list[str]:
    """Registered recovery-attack names, in registration order."""
    return ATTACKS.names()


def shared_settings() -> list[dict[str, Any]]:
    """The config fields that two or more registered attacks read (``describe_fields`` rows, first seen first).

    These are the settings one form can offer for all attacks at once (D_cal, ridge strength, leak size and seed);
    a flat ``{field: value}`` dict then reaches every attack whose config has that field.
    """
    rows = [f for name in list_attacks() for f in describe_fields(get_attack(name).config)]
    counts = Counter(f["name"] for f in rows)
    first: dict[str, dict[str, Any]] = {}
    for f in rows:
        first.setdefault(f["name"], f)
    return [f for name, f in first.items() if counts[name] > 1]


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
