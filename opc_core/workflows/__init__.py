"""One function per user action (train, unlearn, attack, bench; explore for the feature views); the CLI, jobs and
pages call these. Importing the package registers every workflow."""

from opc_core.workflows import attack, bench, sweep, train, unlearn  # noqa: F401  (each registers its workflow)
from opc_core.workflows.base import WORKFLOWS, Options, execute, start, workflow

__all__ = ["WORKFLOWS", "Options", "execute", "start", "workflow"]
