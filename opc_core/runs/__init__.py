"""The run store: one typed record per run, its steps, metrics and artifact files, and the run lifecycle."""

from opc_core.runs.record import AttackParams, BenchParams, TrainParams, UnlearnParams, make_params
from opc_core.runs.run import FINAL, STATUSES, Run
from opc_core.runs.store import RunStore

__all__ = [
    "FINAL",
    "STATUSES",
    "AttackParams",
    "BenchParams",
    "Run",
    "RunStore",
    "TrainParams",
    "UnlearnParams",
    "make_params",
]
