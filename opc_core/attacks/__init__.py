"""Attacks on unlearned models: recovery attacks (docs/science.md §6) and gradient inversion (§7).

:mod:`opc_core.attacks.recovery` holds the recovery-attack registry (importing it registers every attack);
:mod:`opc_core.attacks.inversion` holds the gradient inversion. The names most callers need are re-exported here.
"""

from opc_core.attacks.inversion import Gallery, InversionConfig, InversionResult, invert
from opc_core.attacks.recovery import (
    ATTACKS,
    AttackSpec,
    FeatureBank,
    RecoveryResult,
    calibration_idx,
    get_attack,
    leak_forget,
    list_attacks,
    register_attack,
    run_recovery,
    score_recovery,
    shared_settings,
)

__all__ = [
    "ATTACKS",
    "AttackSpec",
    "FeatureBank",
    "Gallery",
    "InversionConfig",
    "InversionResult",
    "RecoveryResult",
    "calibration_idx",
    "get_attack",
    "invert",
    "leak_forget",
    "list_attacks",
    "register_attack",
    "run_recovery",
    "score_recovery",
    "shared_settings",
]
