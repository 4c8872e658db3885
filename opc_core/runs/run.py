"""One row of the run store, as the pages, the report and the CLI read it."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opc_core.runs.record import params_of

STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINAL = frozenset({"done", "failed", "cancelled", "interrupted"})


@dataclass
class Run:
    """One row of the run store. ``artifacts`` maps a name to a path relative to the run folder (or absolute)."""

    id: str
    kind: str
    status: str
    title: str
    config: dict
    split: dict | None
    parent: str | None
    created: float
    started: float | None
    finished: float | None
    error: str | None
    metrics: dict
    artifacts: dict[str, str]
    pid: int | None
    cancel_requested: bool
    progress: dict
    folder: Path = field(default=Path("."), repr=False, compare=False)  # the run's artifact folder (absolute)

    @property
    def params(self) -> Any:
        """What the run was asked to do, as the typed record of its kind (``ValueError`` for an unreadable one)."""
        return params_of(self.kind, self.config)

    @property
    def final(self) -> bool:
        """True once the run reached done / failed / cancelled / interrupted."""
        return self.status in FINAL

    @property
    def active(self) -> bool:
        """True while queued or running."""
        return self.status in ("queued", "running")

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to finish (or to now while running); None before it started."""
        if self.started is None:
            return None
        return (self.finished if self.finished is not None else time.time()) - self.started

    def artifact_path(self, name: str) -> Path | None:
        """Absolute path of artifact ``name``, or None when the run has no such artifact."""
        rel = self.artifacts.get(name)
        return None if rel is None else (self.folder / rel)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["folder"] = str(self.folder)
        return d
