"""The Ray engine of a sweep: its cells fan out as Ray tasks over the cores and GPUs of one machine or a cluster.

Importing this module registers the engine ``ray`` (:data:`opc_core.workflows.sweep.EXECUTORS`); ``ray`` itself is
imported only when a sweep uses it (an optional extra: ``pip install -r requirements-ray.txt -c constraints.txt``).

The driver (the process running the sweep) has already stored every cell as a queued child run. Each Ray task calls
the same :func:`opc_core.workflows.sweep.run_cell` as the local engine, with the store's home, so a cell's steps,
metrics and artifacts land in the run store the dashboard reads while it runs; the node running a task must see that
home (one machine, or a folder every node mounts: see docs/scaling.md). A task takes ``cpus_per_cell`` CPUs (torch
uses as many threads) and ``gpus_per_cell`` GPUs (Ray sets ``CUDA_VISIBLE_DEVICES``). Tasks are never retried: a
worker that dies (out of memory, a crash, ``os._exit``) fails its own cell, recorded by the driver, and the sweep goes
on. Cancel: queued cells end ``cancelled`` at once, running ones through their run's stop flag in the store.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from opc_core.runs.lifecycle import RunContext, Stage
from opc_core.workflows.sweep import PROGRESS_EVERY_S, Cell, SweepParams, cancel_queued, executor, report_progress

log = logging.getLogger(__name__)

ENV_KEYS = ("OPC_LAB_HOME", "OPC_LAB_DEVICE", "OPC_LAB_DATA", "OPC_LAB_PLUGINS", "OMP_WAIT_POLICY")
ROOT = Path(__file__).resolve().parents[2]  # the folder holding opc_core, put on the workers' path


def import_ray():
    """The ``ray`` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "the ray engine needs Ray, an optional extra: pip install -r requirements-ray.txt -c constraints.txt"
        ) from exc
    return ray


def worker_env() -> dict[str, str]:
    """What a Ray worker needs from the driver's environment: the home, device and plug-ins, and opc_core's folder."""
    env = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    path = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    return env


def connect(address: str | None, num_cpus: float | None = None) -> bool:
    """Join the Ray cluster at ``address``, or start a local instance (no dashboard, offline); True when this call
    started or joined it (the caller shuts it down), False when Ray was already initialised in this process."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": worker_env()}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        cpus = int(num_cpus) if num_cpus else os.cpu_count() or 1
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    return True


def cell_task(run_id: str, home: str, attacks: list[str] | None, threads: int) -> str:
    """The body of one Ray task: run the stored cell ``run_id`` of the store at ``home``; returns its status."""
    import torch

    from opc_core.runs.store import RunStore
    from opc_core.workflows.base import load_plugins
    from opc_core.workflows.sweep import run_cell

    os.environ["OPC_LAB_HOME"] = home
    torch.set_num_threads(max(1, threads))
    load_plugins()
    return run_cell(run_id, RunStore(home), attacks)


@executor("ray")
def run_ray(cells: list[tuple[Cell, str]], ctx: RunContext, params: SweepParams) -> None:
    """Fan the cells out as Ray tasks and wait for them, refreshing the sweep's progress and honouring its stop flag."""
    ray = import_ray()
    started = connect(params.address)
    try:
        remote = ray.remote(cell_task).options(
            num_cpus=params.cpus_per_cell, num_gpus=params.gpus_per_cell, max_retries=0
        )
        threads = max(1, int(params.cpus_per_cell))
        home = str(ctx.store.home)
        pending = {remote.remote(run_id, home, params.attacks, threads): (cell, run_id) for cell, run_id in cells}
        log.info("sweep %s: %d Ray tasks submitted (%s)", ctx.run_id, len(pending), ray.cluster_resources())
        _wait(ray, pending, ctx)
    finally:
        if started:
            ray.shutdown()


def _wait(ray: Any, pending: dict, ctx: RunContext) -> None:
    stopping, done = False, 0
    last = time.monotonic()
    while pending:
        if ctx.stop.is_set() and not stopping:
            stopping = True
            cancel_queued(ctx.store, [run_id for _, run_id in pending.values()], "cancelled: the sweep was cancelled")
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_EVERY_S)
        for ref in ready:
            cell, run_id = pending.pop(ref)
            done += 1
            ctx.set_stage(Stage(cell.label, "cell", done - 1, done + len(pending)))
            _record_outcome(ray, ref, run_id, ctx)
        if ready or time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            report_progress(ctx)


def _record_outcome(ray: Any, ref: Any, run_id: str, ctx: RunContext) -> None:
    """A task that returned recorded its cell itself; one whose worker died leaves its cell failed, with the reason."""
    try:
        status = ray.get(ref)
        log.info("cell %s: %s", run_id, status)
    except Exception as exc:  # ray.exceptions.WorkerCrashedError, RayTaskError, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        why = f"the Ray worker running this cell died before it finished ({type(exc).__name__}: {text})"
        if ctx.store.set_status(run_id, "failed", error=why, expect=("queued", "running")):
            log.error("cell %s: %s", run_id, why)
