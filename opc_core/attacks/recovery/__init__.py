"""Recovery attacks (docs/science.md §6): can the forgotten accuracy on D_f be brought back?

Importing the package registers every attack in :data:`ATTACKS`, one module per attack, in the order the dashboard
lists them (the paper's attack first). Adding an attack is adding one module here and its name to ``_MODULES``.
"""

import importlib

from opc_core.attacks.recovery.base import (
    ATTACKS,
    AttackSpec,
    CalibrationConfig,
    LeakConfig,
    RecoveryResult,
    RidgeConfig,
    get_attack,
    list_attacks,
    register_attack,
    run_recovery,
    score_recovery,
    shared_settings,
)
from opc_core.attacks.recovery.threat import FeatureBank, calibration_idx, leak_forget

_MODULES = ("fm", "hr", "prototype", "probe", "relearn")  # registration order = display order
for _name in _MODULES:
    importlib.import_module(f"opc_core.attacks.recovery.{_name}")

__all__ = [
    "ATTACKS",
    "AttackSpec",
    "CalibrationConfig",
    "FeatureBank",
    "LeakConfig",
    "RecoveryResult",
    "RidgeConfig",
    "calibration_idx",
    "get_attack",
    "leak_forget",
    "list_attacks",
    "register_attack",
    "run_recovery",
    "score_recovery",
    "shared_settings",
]
