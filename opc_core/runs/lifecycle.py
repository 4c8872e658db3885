"""The one run lifecycle: create (or claim) a run, run its body, finish it as done / failed / cancelled / interrupted.

Whoever starts a run (a dashboard job's worker, the CLI, the benchmark for its children) goes through :func:`run`, so
the same action leaves the same record from every entry point, and no exit path leaves a run ``running``:

* the body returns -> ``done`` (its dict merged into the metrics), or ``cancelled`` when the stop flag was set;
* ``InterruptedError`` or Ctrl-C (``KeyboardInterrupt``) -> ``cancelled``; a stop whose flag carries a ``reason``
  (the job server went away), ``SystemExit`` or :class:`Terminated` (SIGTERM) -> ``interrupted``;
* any other exception (a NaN caught by a check, a bad setting, a missing file) -> ``failed`` with its text.

The exception is re-raised after it is recorded. A parent (a benchmark) finishes the children it leaves unfinished
with its own final status.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opc_core.runs.record import make_params
from opc_core.runs.run import Run
from opc_core.runs.store import RunStore

log = logging.getLogger(__name__)

STEP_FLUSH_S = 0.1  # at most ~10 step writes per second per run
CANCEL_POLL_S = 0.3  # how often a running body reads the run's cancel flag from the store


class Terminated(BaseException):
    """Raised in the main thread by a SIGTERM handler (the CLI installs one), so the run ends ``interrupted``."""


@dataclass(frozen=True)
class Stage:
    """Which part of a multi-part run a step belongs to: e.g. the 2nd of 5 methods of a benchmark, its attacks."""

    label: str  # e.g. "opc[layer=features]"
    phase: str  # "unlearn" | "recovery" | "inversion" | ...
    index: int = 0  # 0-based position among ``count`` parts
    count: int = 1


class CancelFlag:
    """A run's stop flag: a fast event (a worker's stdin pipe, or any ``is_set()`` object) OR the store's flag.

    ``is_set()`` is cheap enough to call every step: the store is read at most every ``poll_s`` seconds.
    """

    def __init__(self, store: RunStore, run_id: str, event: Any = None, poll_s: float = CANCEL_POLL_S) -> None:
        self.store, self.run_id, self.event, self.poll_s = store, run_id, event, poll_s
        self._set = False
        self._polled = float("-inf")

    @property
    def reason(self) -> str | None:
        """Why the run must stop when it is not a user's cancel (e.g. the job server exited)."""
        return getattr(self.event, "reason", None)

    def is_set(self) -> bool:
        if self._set or (self.event is not None and self.event.is_set()):
            return True
        now = time.monotonic()
        if now - self._polled >= self.poll_s:
            self._polled = now
            self._set = self.store.cancel_requested(self.run_id)
        return self._set

    def set(self) -> None:
        self._set = True
        if self.event is not None:
            self.event.set()
        self.store.request_cancel(self.run_id)


class RunContext:
    """What a run's body receives besides its parameters: progress, stage, artifacts, metrics, log and stop flag."""

    def __init__(
        self, run: Run, store: RunStore, stop: CancelFlag, on_step: Callable | None = None, device: str | None = None
    ) -> None:
        self.run, self.run_id, self.store, self.stop, self.device = run, run.id, store, stop, device
        self.artifact_dir: Path = store.artifact_dir(run.id)
        self.stage: Stage | None = None
        self._forward = on_step
        self._pending: list[dict] = []
        self._last_flush = float("-inf")
        self._lock = threading.Lock()

    def set_stage(self, stage: Stage | None) -> None:
        """Tag the following steps with ``stage`` (shown by the pages as the current method and phase)."""
        self.stage = stage

    def on_step(self, info: Any) -> None:
        """Record a step (a ``StepInfo`` or a mapping of its fields); writes are batched to at most ~10/s and the
        final step (``step >= total``) is written at once. Also forwarded to the caller's ``on_step``."""
        get = info.get if isinstance(info, Mapping) else lambda k, d=None: getattr(info, k, d)
        rec = {
            "step": int(get("step")),
            "total": int(get("total")),
            "losses": dict(get("losses") or {}),
            "elapsed_s": float(get("elapsed_s", 0.0)),
            "evals": dict(get("evals") or {}),
            "epoch": get("epoch"),
            "lr": get("lr"),
            "stage": None if self.stage is None else asdict(self.stage),
        }
        with self._lock:
            self._pending.append(rec)
            due = time.monotonic() - self._last_flush >= STEP_FLUSH_S or rec["step"] >= rec["total"]
        if due:
            self.flush()
        if self._forward is not None:
            self._forward(info)

    def flush(self) -> None:
        """Write any buffered step records now."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        self.store.append_steps(self.run_id, pending)

    def add_artifact(self, name: str, path: Path | str) -> None:
        self.store.add_artifact(self.run_id, name, path)

    def update_metrics(self, metrics: dict) -> None:
        self.store.update_metrics(self.run_id, metrics)

    def log(self, text: str) -> None:
        """Append a timestamped line to ``<run folder>/log.txt``."""
        with open(self.artifact_dir / "log.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {text.rstrip()}\n")


Body = Callable[[Any, RunContext], Mapping | None]


@dataclass(frozen=True)
class Launch:
    """How a run is started: a new run (``run_id`` None) or an existing queued/claimed one; its parent and title;
    an extra stop event; a progress callback; the device to run on."""

    run_id: str | None = None
    parent: str | None = None
    title: str | None = None
    stop: Any = None
    on_step: Callable | None = None
    device: str | None = None


def run(store: RunStore, params: Any, body: Body, launch: Launch = Launch()) -> dict[str, Any]:
    """Run ``body(params, ctx)`` as a stored run and record how it ended; returns its metrics and ``run_id``.

    ``params`` is the typed record of the run's kind (its class names the kind). Exceptions are re-raised after the
    run is finished (see the module docstring for which status each one gives).
    """
    kind = type(params).kind
    params = make_params(kind, params)
    if launch.run_id is None:
        run_id = store.create(kind, params, parent=launch.parent, title=launch.title, status="running").id
    else:
        run_id = launch.run_id
        store.set_status(run_id, "running", pid=os.getpid())
    flag = CancelFlag(store, run_id, launch.stop)
    ctx = RunContext(store.get(run_id), store, flag, launch.on_step, launch.device)
    handler = _ThreadFileHandler(ctx.artifact_dir / "log.txt")
    logging.getLogger("opc_core").addHandler(handler)
    status, error = "failed", "the run ended without a status"
    try:
        if flag.is_set():
            raise InterruptedError("cancelled before it started")
        log.info("run %s: %s started (pid %d)", run_id, kind, os.getpid())
        result = body(params, ctx)
        ctx.flush()
        if result is not None:
            ctx.update_metrics(dict(result))
        status, error = ("cancelled", _stop_text(ctx)) if flag.is_set() else ("done", None)
    except (InterruptedError, KeyboardInterrupt) as exc:
        status, error = ("interrupted" if flag.reason else "cancelled"), _stop_text(ctx, exc)
        raise
    except (Terminated, SystemExit) as exc:
        status, error = "interrupted", f"interrupted: {type(exc).__name__} (at step {_step(ctx)})"
        raise
    except BaseException as exc:
        status, error = "failed", _error_text(exc)
        log.error("run %s failed: %s: %s", run_id, type(exc).__name__, exc)
        raise
    finally:
        _finish(ctx, status, error)
        logging.getLogger("opc_core").removeHandler(handler)
        handler.close()
    return {**store.get(run_id).metrics, "run_id": run_id}


def _step(ctx: RunContext) -> int:
    try:
        return int(ctx.store.get(ctx.run_id).progress.get("step") or 0)
    except Exception:  # the store itself may be what failed
        return 0


def _stop_text(ctx: RunContext, exc: BaseException | None = None) -> str:
    if ctx.stop.reason:
        return f"interrupted: {ctx.stop.reason} (at step {_step(ctx)})"
    if isinstance(exc, KeyboardInterrupt):
        return f"cancelled by Ctrl-C at step {_step(ctx)}"
    if isinstance(exc, InterruptedError) and "before it started" in str(exc):
        return str(exc)
    return f"cancelled by request at step {_step(ctx)}"


def _finish(ctx: RunContext, status: str, error: str | None) -> None:
    """Write the last steps, the run's final status, and the same status for children it leaves unfinished."""
    try:
        ctx.flush()
    except Exception:  # never let a failed flush hide the run's outcome
        log.exception("run %s: could not write the last steps", ctx.run_id)
    ctx.store.set_status(ctx.run_id, status, error=error)
    for child in ctx.store.list(parent=ctx.run_id, status=("queued", "running")):
        why = f"{status}: its parent run {ctx.run_id} ended {status} before it finished"
        ctx.store.set_status(child.id, status, error=why, expect=("queued", "running"))
    log.info("run %s: %s", ctx.run_id, status)


class _ThreadFileHandler(logging.FileHandler):
    """Copies ``opc_core`` log records emitted on one thread into the run's log.txt."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        ident = threading.get_ident()
        self.addFilter(lambda record: record.thread == ident)


def _error_text(exc: BaseException, limit_chars: int = 4000) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-8))
    return f"{type(exc).__name__}: {exc}\n\n{tb[-limit_chars:]}"
