"""The registry of workflows (one per run kind) and the two ways to run one: here and now, or a stored queued run.

A workflow is ``fn(params, ctx) -> dict | None``: ``params`` the typed record of its kind
(:mod:`opc_core.runs.record`), ``ctx`` a :class:`~opc_core.runs.lifecycle.RunContext`. :func:`start` runs it in
this process as a new run (the CLI, a benchmark's children); :func:`execute` runs an already stored run (a job's
worker process, or a task of a distributed engine such as Ray, given only the run id and the store's home).
Both go through the one lifecycle, so they leave the same records.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opc_core.registry import Registry
from opc_core.runs.lifecycle import Launch, RunContext
from opc_core.runs.lifecycle import run as run_lifecycle
from opc_core.runs.record import RECORDS
from opc_core.runs.store import RunStore

log = logging.getLogger(__name__)

WORKFLOWS: Registry[Callable] = Registry("workflow")
PLUGINS_ENV = "OPC_LAB_PLUGINS"  # comma-separated modules that register further workflows (tests, extensions)


def workflow(kind: str):
    """Decorator: register ``fn(params, ctx)`` as the workflow of run kind ``kind`` (its record must exist)."""
    RECORDS.get(kind)  # KeyError listing the valid kinds

    def deco(fn: Callable[[Any, RunContext], Any]) -> Callable:
        WORKFLOWS.add(kind, fn)
        return fn

    return deco


def load_plugins() -> None:
    """Import the modules named in ``$OPC_LAB_PLUGINS`` (each registers its own records and workflows)."""
    for name in filter(None, (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(","))):
        importlib.import_module(name)


@dataclass(frozen=True)
class Options:
    """How :func:`start` runs: the parent run, a title, progress callback, extra stop event and device."""

    parent: str | None = None
    title: str | None = None
    on_step: Callable | None = None
    stop: Any = None
    device: str | None = None


def start(params: Any, store: RunStore | None = None, options: Options = Options()) -> dict[str, Any]:
    """Run the workflow of ``params``'s kind in this process as a new stored run; returns its metrics (with
    ``run_id``)."""
    store = store if store is not None else RunStore()
    fn = WORKFLOWS.get(type(params).kind)
    launch = Launch(
        parent=options.parent,
        title=options.title or default_title(params),
        stop=options.stop,
        on_step=options.on_step,
        device=options.device,
    )
    return run_lifecycle(store, params, fn, launch)


def execute(run_id: str, home: str | None = None, stop: Any = None) -> None:
    """Run the stored run ``run_id`` here and record its outcome (a worker's entry; never raises for a failed run).

    A run that is already final is not started. ``stop``: an extra stop event (e.g. the worker's stdin pipe); when it
    carries a ``reason`` (the server went away), a stopped run ends ``interrupted``.
    """
    store = RunStore(home)
    run = store.get(run_id)
    if run.final:
        log.warning("run %s is already %s; not executing it", run_id, run.status)
        return
    load_plugins()
    try:
        run_lifecycle(store, run.params, WORKFLOWS.get(run.kind), Launch(run_id=run_id, stop=stop))
    except Exception:  # recorded in the run; the worker itself exits cleanly
        pass


def default_title(params: Any) -> str:
    """A run's human title from its parameters, e.g. ``opc on fashion_mnist_small``."""
    name = getattr(params, "name", None) or getattr(params, "attack", None) or type(params).kind
    where = getattr(params, "dataset", None)
    return f"{name} on {where}" if where else str(name)
