"""The sweep workflow: a grid of unlearn runs (methods and their variants x config values x forget sets x seeds),
each cell an ordinary stored unlearn run, a child of the sweep run, followed by the recovery attacks.

Grid keys are config fields: ``epochs`` applies to every method, ``opc:lam`` only to the method named ``opc`` (all
of its variants). Every cell is created ``queued`` up front, so a progress view (:func:`progress`) counts cells done,
running and queued from the store alone; an *executor* then runs them: ``local`` (here, one after the other, the
default) or ``ray`` (:mod:`opc_core.jobs.ray_engine`, which registers itself in :data:`EXECUTORS`). Both call
:func:`run_cell`, so a cell leaves the same record whichever ran it. Cancel: the sweep's stop flag stops the cell
that runs and leaves the queued ones ``cancelled``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opc_core.config import parse_variant
from opc_core.registry import Registry
from opc_core.runs.lifecycle import Launch, RunContext, Stage
from opc_core.runs.lifecycle import run as run_lifecycle
from opc_core.runs.record import SEED_MAX, UnlearnParams, _check, _forget_ok, _int_in, forget_text, record
from opc_core.runs.store import RunStore
from opc_core.train.loop import StepInfo
from opc_core.workflows.attack import recovery_for_run
from opc_core.workflows.base import workflow
from opc_core.workflows.unlearn import unlearn

log = logging.getLogger(__name__)

EXECUTORS: Registry[Callable] = Registry("sweep engine")
PROGRESS_EVERY_S = 1.0  # how often an executor refreshes the sweep run's own progress record


@record("sweep")
@dataclass(frozen=True)
class SweepParams:
    """A grid of unlearn runs, each followed by the recovery attacks; mean ± std over seeds in the report."""

    dataset: str = "fashion_mnist_small"
    model: str = "cnn_small"
    methods: list[str] = field(default_factory=lambda: ["opc", "opc:layer=features"])  # names or variants
    grid: dict[str, list[Any]] = field(default_factory=dict)  # {"opc:lam": [0.1, 1], "epochs": [1, 3]}
    forget_sets: list[list[int]] | None = None  # several class sets (default: the dataset's default classes)
    forget_ratios: list[float] | None = None  # or several random-sample ratios
    seeds: list[int] = field(default_factory=lambda: [0])
    attacks: list[str] | None = None  # recovery attacks after each cell (None: every registered one; []: none)
    equal_budget: int = 0  # > 0: every method runs exactly this many optimiser steps (max_steps)
    engine: str = "local"  # "local" (here, one cell at a time) or "ray"
    address: str | None = None  # ray: the cluster to join (None: start a local instance)
    cpus_per_cell: float = 1.0  # ray: the CPU share of one cell
    gpus_per_cell: float = 0.0  # ray: the GPU share of one cell (1 = a GPU per cell)
    checkpoint: str | None = None  # the original model (default: the zoo's best for dataset/model)
    mia: bool = True
    data_root: str | None = None

    def __post_init__(self) -> None:
        grid_ok = isinstance(self.grid, dict) and all(isinstance(v, list) and v for v in self.grid.values())
        _check(
            "sweep",
            {
                "methods": (isinstance(self.methods, list) and self.methods, "a non-empty list"),
                "grid": (grid_ok, "a mapping of config keys to non-empty lists of values"),
                "seeds": (
                    isinstance(self.seeds, list) and self.seeds and all(_int_in(s, 0, SEED_MAX) for s in self.seeds),
                    f"a non-empty list of integers in [0, {SEED_MAX}]",
                ),
                "forget_sets / forget_ratios": (self.forget_sets is None or self.forget_ratios is None, "not both"),
                "equal_budget": (_int_in(self.equal_budget, 0, 10**7), "an integer >= 0 (0: off)"),
                "cpus_per_cell": (_share(self.cpus_per_cell, 0.01), "a number > 0"),
                "gpus_per_cell": (_share(self.gpus_per_cell, 0.0), "a number >= 0"),
            },
        )
        for classes in self.forget_sets or []:
            _check("sweep", _forget_ok(classes, None))
        for ratio in self.forget_ratios or []:
            _check("sweep", _forget_ok(None, ratio))


def _share(x: Any, lo: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and lo <= x <= 1024


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a method variant, its grid values, a forget set and a seed."""

    variant: str  # e.g. "opc[layer=features]"
    method: str
    point: dict[str, str]  # the grid values of this cell, e.g. {"lam": "0.3", "epochs": "3"}
    overrides: dict[str, str]  # the variant's settings, then the point's, then the budget's
    forget_classes: list[int] | None
    forget_ratio: float | None
    seed: int

    @property
    def label(self) -> str:
        """The unlearn run's label: the variant with the point, e.g. ``opc[layer=features,lam=0.3]``."""
        if not self.point:
            return self.variant
        items = ",".join(f"{k}={v}" for k, v in self.point.items())
        return f"{self.variant[:-1]},{items}]" if self.variant.endswith("]") else f"{self.variant}[{items}]"

    @property
    def key(self) -> tuple:
        """What identifies a cell: a grid that lists a value twice gives one cell, not two."""
        return self.label, tuple(self.forget_classes or ()), self.forget_ratio, self.seed

    def params(self, sweep: SweepParams) -> UnlearnParams:
        return UnlearnParams(
            dataset=sweep.dataset,
            model=sweep.model,
            method=self.method,
            label=self.label,
            checkpoint=sweep.checkpoint,
            forget_classes=self.forget_classes,
            forget_ratio=self.forget_ratio,
            seed=self.seed,
            overrides=dict(self.overrides),
            mia=sweep.mia,
            data_root=sweep.data_root,
        )


def parse_values(text: str) -> list[str]:
    """``"[0.1,0.3,1]"`` or ``"0.1,0.3,1"`` -> ``["0.1", "0.3", "1"]`` (strings: each config coerces its own)."""
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    values = [v.strip() for v in inner.split(",") if v.strip()]
    if not values:
        raise ValueError(f"grid values {text!r}: expected a list such as [0.1,0.3,1]")
    return values


def _split_key(key: str) -> tuple[str | None, str]:
    method, sep, name = key.rpartition(":")
    return (method.strip() or None) if sep else None, name.strip()


def _budget(method: str, steps: int) -> dict[str, str]:
    """Settings that make ``method`` run exactly ``steps`` steps: enough epochs, capped by max_steps."""
    from opc_core.methods import get_method

    (epochs,) = [f for f in get_method(method).describe()["config"] if f["name"] == "epochs"]
    return {"epochs": str(epochs["max"]), "max_steps": str(steps)}


def expand(params: SweepParams) -> list[Cell]:
    """Every cell of the grid, in order (method variant, grid point, forget set, seed); each cell's config is built
    once here so a typo or an out-of-range value fails before anything runs."""
    from opc_core.methods import make_config

    variants = [parse_variant(m) for m in params.methods]
    names = {m for _, m, _ in variants}
    keys = {k: _split_key(k) for k in params.grid}
    for key, (method, name) in keys.items():
        if method is not None and method not in names:
            raise ValueError(f"grid key {key!r} names method {method!r}, which is not among {sorted(names)}")
        if params.equal_budget and name in ("epochs", "max_steps"):
            raise ValueError(f"grid key {key!r}: equal-budget mode sets epochs and max_steps itself")
    forgets = (
        [(list(c), None) for c in params.forget_sets]
        if params.forget_sets
        else [(None, r) for r in params.forget_ratios]
        if params.forget_ratios
        else [(None, None)]
    )
    cells, seen = [], set()
    for variant, method, over in variants:
        mine = [(name, [str(v) for v in params.grid[k]]) for k, (m, name) in keys.items() if m in (None, method)]
        for values in itertools.product(*(vals for _, vals in mine)):
            point = dict(zip((name for name, _ in mine), values))
            budget = _budget(method, params.equal_budget) if params.equal_budget else {}
            overrides = {**over, **point, **budget}
            make_config(method, overrides, params.dataset)
            for (classes, ratio), seed in itertools.product(forgets, params.seeds):
                cell = Cell(variant, method, point, overrides, classes, ratio, seed)
                if cell.key not in seen:
                    seen.add(cell.key)
                    cells.append(cell)
    return cells


# --- one cell ---------------------------------------------------------------------------------------------------------
def _cell_body(params: UnlearnParams, ctx: RunContext, attacks: list[str] | None) -> dict[str, Any]:
    summary = unlearn(params, ctx)
    if attacks is None or attacks:
        ctx.set_stage(Stage(params.name, "recovery"))
        # the original model's own attack scores are the same for every cell: the report needs no per-cell copy
        summary["recovery"] = recovery_for_run(ctx.run_id, ctx.store, names=attacks, reference=False)
    return summary


def run_cell(
    run_id: str,
    store: RunStore,
    attacks: list[str] | None,
    *,
    stop: Any = None,
    device: str | None = None,
) -> str:
    """Run the queued cell ``run_id`` (its unlearning, then the recovery attacks) through the one lifecycle; returns
    its final status. Any process that sees the store can call it (the local executor, a Ray task); a cell that is
    already final (cancelled while queued) is not started, and a failed cell never raises."""
    run = store.get(run_id)
    if run.final:
        return run.status
    body = functools.partial(_cell_body, attacks=attacks)
    try:
        run_lifecycle(store, run.params, body, Launch(run_id=run_id, stop=stop, device=device))
    except Exception:  # recorded in the cell's run (failed or cancelled); the sweep goes on
        pass
    return store.get(run_id).status


# --- progress ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep stands: its cells by status, elapsed time and an ETA (None until a cell has moved)."""

    total: int
    counts: dict[str, int]  # status -> cells
    elapsed_s: float
    eta_s: float | None

    @property
    def finished(self) -> int:
        return sum(n for s, n in self.counts.items() if s not in ("queued", "running"))

    def text(self) -> str:
        c = self.counts
        eta = "" if self.eta_s is None or self.finished == self.total else f" · ETA {self.eta_s:.0f} s"
        bad = ", ".join(f"{c[s]} {s}" for s in ("failed", "cancelled", "interrupted") if c.get(s))
        return (
            f"cells {c.get('done', 0)}/{self.total} done · {c.get('running', 0)} running · {c.get('queued', 0)} "
            f"queued{' · ' + bad if bad else ''} · {self.elapsed_s:.0f} s{eta}"
        )


def progress(store: RunStore, sweep_id: str) -> SweepProgress:
    """The progress of sweep ``sweep_id`` read from the store: running cells count by their steps for the ETA."""
    sweep = store.get(sweep_id)
    children = store.list(parent=sweep_id)
    counts: dict[str, int] = {}
    moved = 0.0
    for run in children:
        counts[run.status] = counts.get(run.status, 0) + 1
        if run.final:
            moved += 1
        elif run.status == "running" and run.progress.get("total"):
            moved += 0.9 * min(1.0, run.progress.get("step", 0) / run.progress["total"])  # attacks follow the steps
    total = max(len(children), len(sweep.metrics.get("cells") or []))
    elapsed = sweep.duration_s or 0.0
    eta = elapsed / moved * (total - moved) if moved > 0 else None
    return SweepProgress(total, counts, elapsed, eta)


def report_progress(ctx: RunContext) -> SweepProgress:
    """Write the sweep's progress as its step record (step = cells finished), which the job panels and the CLI show."""
    p = progress(ctx.store, ctx.run_id)
    evals = {k: float(v) for k, v in p.counts.items()} | ({"eta_s": p.eta_s} if p.eta_s is not None else {})
    ctx.on_step(StepInfo(p.finished, max(1, p.total), {}, p.elapsed_s, evals=evals))
    return p


# --- executors --------------------------------------------------------------------------------------------------------
def executor(name: str):
    """Decorator: register ``fn(cells, ctx, params)`` as a sweep engine; ``cells`` pairs each Cell with its queued run
    id. It must run every cell through :func:`run_cell` and return when none is left running."""

    def deco(fn: Callable) -> Callable:
        EXECUTORS.add(name, fn)
        return fn

    return deco


@executor("local")
def run_local(cells: list[tuple[Cell, str]], ctx: RunContext, params: SweepParams) -> None:
    """Here, one cell after the other, with the sweep's stop flag."""
    for i, (cell, run_id) in enumerate(cells):
        if ctx.stop.is_set():
            return
        ctx.set_stage(Stage(cell.label, "cell", i, len(cells)))
        run_cell(run_id, ctx.store, params.attacks, stop=ctx.stop, device=ctx.device)
        report_progress(ctx)


def cancel_queued(store: RunStore, run_ids: Sequence[str], why: str) -> None:
    """Cells that have not started end ``cancelled``; running ones are asked to stop (within a step)."""
    for run_id in run_ids:
        if not store.set_status(run_id, "cancelled", error=why, expect="queued"):
            store.request_cancel(run_id)


@workflow("sweep")
def sweep(params: SweepParams, ctx: RunContext) -> dict[str, Any]:
    """Expand the grid, queue every cell as a child unlearn run, run them with the chosen engine.

    Returns ``{"cells": [{run_id, label, variant, method, point, forget, seed, status}], "engine", "seconds"}``; the
    numbers stay in the cells' runs (:mod:`opc_core.report.sweep` aggregates them).
    """
    run_cells = EXECUTORS.get(params.engine)  # KeyError naming the engines registered here
    cells = expand(params)
    t0 = time.perf_counter()
    queued = []
    for cell in cells:
        title = f"{cell.label} on {params.dataset} (sweep, seed {cell.seed})"
        child = ctx.store.create("unlearn", cell.params(params), parent=ctx.run_id, title=title, pid=os.getpid())
        queued.append((cell, child.id))
    ctx.update_metrics({"cells": [_cell_entry(c, run_id) for c, run_id in queued], "engine": params.engine})
    report_progress(ctx)
    log.info("sweep %s: %d cells on the %s engine", ctx.run_id, len(cells), params.engine)
    try:
        run_cells(queued, ctx, params)
    finally:
        if ctx.stop.is_set():
            cancel_queued(ctx.store, [run_id for _, run_id in queued], "cancelled: the sweep was cancelled")
    p = report_progress(ctx)
    if ctx.stop.is_set():
        raise InterruptedError(f"sweep cancelled: {p.text()}")
    entries = [{**_cell_entry(c, run_id), "status": ctx.store.get(run_id).status} for c, run_id in queued]
    return {"cells": entries, "engine": params.engine, "seconds": round(time.perf_counter() - t0, 1)}


def _cell_entry(cell: Cell, run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "label": cell.label,
        "variant": cell.variant,
        "method": cell.method,
        "point": cell.point,
        "forget": forget_text(cell.forget_classes, cell.forget_ratio),
        "seed": cell.seed,
    }
