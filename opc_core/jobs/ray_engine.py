"""The Ray engine of a sweep: its cells fan out as Ray tasks over the cores and GPUs of one machine or a cluster.

Importing this module registers the engine ``ray`` (:data:`opc_core.workflows.sweep.EXECUTORS`); ``ray`` itself is
imported only when a sweep uses it (an optional extra: ``pip install -r requirements-ray.txt -c constraints.txt``).

The driver (the process running the sweep) has already stored every cell as a queued child run. Each Ray task calls
the same :func:`opc_core.workflows.sweep.run_cell` as the local engine, in one of two ways:

* **in place** (a task on the driver's machine): on the driver's run store itself, so the cell's steps stream into
  the store the dashboard reads while it runs;
* **written back** (a task on another node of a cluster, or every task when ``$OPC_LAB_RAY_WRITE_BACK=always``): on
  a scratch store of its own node, from the original checkpoint the driver put once into Ray's object store (each
  node fetches it once); the task returns the cell's record (status, split, steps, metrics, artifact files) and the
  driver writes it into its store, with the scratch paths replaced by the driver's. SQLite never crosses a network
  filesystem. The node needs the dataset (the embedded ones ship with the code; others under its data root).

A task takes ``cpus_per_cell`` CPUs (torch uses as many threads) and ``gpus_per_cell`` GPUs (Ray sets
``CUDA_VISIBLE_DEVICES``). Tasks are never retried: a worker that dies (out of memory, a crash, ``os._exit``) fails
its own cell, recorded by the driver, and the sweep goes on. Cancel: queued cells end ``cancelled`` at once, running
ones are interrupted (in place also through their run's stop flag in the store); a written-back record that arrives
after the cancel is dropped.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from opc_core.runs.lifecycle import RunContext, Stage
from opc_core.workflows.sweep import PROGRESS_EVERY_S, Cell, SweepParams, cancel_queued, executor, report_progress

log = logging.getLogger(__name__)

WRITE_BACK_ENV = "OPC_LAB_RAY_WRITE_BACK"  # "always": every task runs on a scratch store and ships its record back
ENV_KEYS = ("OPC_LAB_HOME", "OPC_LAB_DEVICE", "OPC_LAB_DATA", "OPC_LAB_PLUGINS", "OMP_WAIT_POLICY", WRITE_BACK_ENV)
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
        # Ray starts its workers at nice +15 by default: here they do the sweep's work, at the sweep's own priority
        os.environ.setdefault("RAY_worker_niceness", "0")
        cpus = int(num_cpus) if num_cpus else os.cpu_count() or 1
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    return True


def cell_task(job: dict[str, Any], original: dict[str, Any]) -> str | dict[str, Any]:
    """The body of one Ray task: run one cell in place (returns its status) or on a scratch store (returns its
    record for the driver to write back). ``job``: run_id, home, params, attacks, threads, driver_node;
    ``original``: the original checkpoint's file names and bytes."""
    import ray
    import torch

    from opc_core.runs.store import RunStore
    from opc_core.workflows.base import load_plugins
    from opc_core.workflows.sweep import run_cell

    torch.set_num_threads(max(1, job["threads"]))
    load_plugins()
    here = ray.get_runtime_context().get_node_id() == job["driver_node"]
    if here and os.environ.get(WRITE_BACK_ENV) != "always":
        return run_cell(job["run_id"], RunStore(job["home"]), job["attacks"])
    with tempfile.TemporaryDirectory(prefix="opc-cell-") as tmp:
        for name, data in original["files"].items():
            Path(tmp, name).write_bytes(data)
        scratch = RunStore(Path(tmp) / "home")
        params = {**job["params"], "checkpoint": str(Path(tmp, original["weights"]))}
        run_id = scratch.create("unlearn", params, title=job["run_id"]).id
        run_cell(run_id, scratch, job["attacks"])
        run = scratch.get(run_id)
        files = {str(f.relative_to(run.folder)): f.read_bytes() for f in run.folder.rglob("*") if f.is_file()}
        paths = {str(run.folder): "{folder}", str(Path(tmp, original["weights"])): "{original}", run_id: "{run_id}"}
        return {
            "status": run.status,
            "error": run.error,
            "split": run.split,
            "metrics": run.metrics,
            "steps": scratch.steps(run_id),
            "artifacts": run.artifacts,
            "files": files,
            "paths": paths,
        }


def original_files(params: SweepParams) -> dict[str, Any]:
    """The sweep's original checkpoint as file names and bytes, for the object store (shared by every cell)."""
    from opc_core.train.zoo import find_checkpoint

    path = params.checkpoint
    if path is None:
        entry = find_checkpoint(params.dataset, params.model)
        if entry is None:
            raise ValueError(f"no pretrained {params.model} for {params.dataset} in the zoo")
        path = entry.path
    stem = Path(path).with_suffix("") if Path(path).suffix in (".safetensors", ".json") else Path(path)
    files = {f.name: f.read_bytes() for f in (stem.with_suffix(".safetensors"), stem.with_suffix(".json"))}
    return {
        "files": files,
        "weights": stem.with_suffix(".safetensors").name,
        "path": str(stem.with_suffix(".safetensors")),
    }


@executor("ray")
def run_ray(cells: list[tuple[Cell, str]], ctx: RunContext, params: SweepParams) -> None:
    """Fan the cells out as Ray tasks and wait for them, refreshing the sweep's progress and honouring its stop flag."""
    ray = import_ray()
    started = connect(params.address)
    try:
        remote = ray.remote(cell_task).options(
            num_cpus=params.cpus_per_cell, num_gpus=params.gpus_per_cell, max_retries=0
        )
        original = original_files(params)
        shared = ray.put(original)  # one copy in the object store, fetched once per node
        job = {
            "home": str(ctx.store.home),
            "attacks": params.attacks,
            "threads": max(1, int(params.cpus_per_cell)),
            "driver_node": ray.get_runtime_context().get_node_id(),
        }
        pending = {}
        for cell, run_id in cells:
            task = {**job, "run_id": run_id, "params": ctx.store.get(run_id).config}
            pending[remote.remote(task, shared)] = (cell, run_id)
        log.info("sweep %s: %d Ray tasks submitted (%s)", ctx.run_id, len(pending), ray.cluster_resources())
        _wait(ray, pending, ctx, original["path"])
    finally:
        if started:
            ray.shutdown()


def _wait(ray: Any, pending: dict, ctx: RunContext, original: str) -> None:
    stopping, done = False, 0
    last = time.monotonic()
    while pending:
        if ctx.stop.is_set() and not stopping:
            stopping = True
            cancel_queued(ctx.store, [run_id for _, run_id in pending.values()], "cancelled: the sweep was cancelled")
            for ref in pending:  # a task not started never starts; a running one gets KeyboardInterrupt (cancelled)
                ray.cancel(ref)
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_EVERY_S)
        for ref in ready:
            cell, run_id = pending.pop(ref)
            done += 1
            ctx.set_stage(Stage(cell.label, "cell", done - 1, done + len(pending)))
            _record_outcome(ray, ref, run_id, ctx, original)
        if ready or time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            report_progress(ctx)


def _record_outcome(ray: Any, ref: Any, run_id: str, ctx: RunContext, original: str) -> None:
    """An in-place task recorded its cell itself; a scratch one's record is written back here; a task whose worker
    died leaves its cell failed, with the reason."""
    try:
        out = ray.get(ref)
        if isinstance(out, dict):
            write_back(ctx.store, run_id, out, original)
        log.info("cell %s: %s", run_id, out["status"] if isinstance(out, dict) else out)
    except Exception as exc:  # ray.exceptions.WorkerCrashedError, TaskCancelledError, RayTaskError, ...
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if ctx.stop.is_set():  # the sweep's cancel interrupted it
            status, why = "cancelled", f"cancelled: the sweep was cancelled ({type(exc).__name__})"
        else:
            status, why = (
                "failed",
                f"the Ray worker running this cell died before it finished ({type(exc).__name__}: {text})",
            )
        if ctx.store.set_status(run_id, status, error=why, expect=("queued", "running")):
            log.warning("cell %s: %s", run_id, why)


def _repath(obj: Any, paths: dict[str, str]) -> Any:
    """``obj`` with every string that starts with one of ``paths``' keys rewritten to start with its value."""
    if isinstance(obj, str):
        for old, new in paths.items():
            if obj.startswith(old):
                return new + obj[len(old) :]
        return obj
    if isinstance(obj, dict):
        return {k: _repath(v, paths) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_repath(v, paths) for v in obj]
    return obj


def write_back(store: Any, run_id: str, out: dict[str, Any], original: str) -> None:
    """Write a cell run on another node into the driver's store: its files into the run's folder (JSON files with
    the scratch paths replaced), its split, steps, metrics and artifacts, then its final status."""
    if store.get(run_id).final:  # cancelled while its task ran elsewhere: the cancel stands
        return
    folder = store.artifact_dir(run_id)
    ours = {"{folder}": str(folder), "{original}": original, "{run_id}": run_id}
    paths = {old: ours[new] for old, new in out["paths"].items()}
    for rel, data in out["files"].items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".json":
            data = json.dumps(_repath(json.loads(data), paths), indent=2).encode()
        target.write_bytes(data)
    store.set_status(run_id, "running")
    if out["split"]:
        store.update(run_id, split=out["split"])
    store.append_steps(run_id, out["steps"])
    store.update_metrics(run_id, _repath(out["metrics"], paths))
    for name, rel in out["artifacts"].items():
        store.add_artifact(run_id, name, folder / _repath(rel, paths))
    store.set_status(run_id, out["status"], error=out["error"])
