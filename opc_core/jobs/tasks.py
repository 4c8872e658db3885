"""The job kinds the dashboard runs in worker processes: train, unlearn, attack and bench.

Each task is ``fn(params, ctx) -> dict | None`` (see :mod:`opc_core.jobs.manager`): it calls the same headless functions as
the CLI, streams progress through ``ctx.on_step``, honours ``ctx.stop`` and stores its results in the run store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any


def train_task(params: dict[str, Any], ctx) -> dict[str, Any]:
    """Train a base model: params dataset, model, and optionally epochs, seed, lr, batch_size."""
    from opc_core.train.zoo import TrainConfig, train_base_model

    over = {k: params[k] for k in ("epochs", "lr", "batch_size") if params.get(k) is not None}
    cfg = replace(TrainConfig(), seed=int(params.get("seed", 0)), **over)
    _, meta = train_base_model(params["dataset"], params["model"], cfg, on_step=ctx.on_step, stop=ctx.stop)
    ctx.add_artifact("checkpoint", meta["path"])
    return {"test_accuracy": meta["test_accuracy"], "checkpoint": meta["path"], "dataset": params["dataset"],
            "model": params["model"]}


def unlearn_task(params: dict[str, Any], ctx) -> dict[str, Any]:
    """One unlearning run: params dataset, model, method, and optionally checkpoint, forget_classes / forget_ratio,
    seed, overrides ({field: value})."""
    from opc_core.workflows.unlearn import unlearn_run

    return unlearn_run(params["dataset"], params["model"], params["method"], checkpoint=params.get("checkpoint"),
                       forget_classes=params.get("forget_classes"), forget_ratio=params.get("forget_ratio"),
                       seed=int(params.get("seed", 0)), overrides=params.get("overrides") or {}, store=ctx.store,
                       run_id=ctx.run_id, on_step=ctx.on_step, stop=ctx.stop, mia=params.get("mia", True))


def attack_task(params: dict[str, Any], ctx) -> dict[str, Any]:
    """An attack on stored unlearn run(s): params run_id (or run_ids), attack "recovery" | "inversion", settings."""
    from opc_core.workflows import attack as analysis

    if params["attack"] == "recovery":
        return {"recovery": analysis.recovery_for_run(params["run_id"], store=ctx.store,
                                                      settings=params.get("settings") or {})}
    if params["attack"] == "inversion":
        run_ids = params.get("run_ids") or [params["run_id"]]
        return analysis.inversion_for_runs(run_ids, store=ctx.store, out_run=ctx.run_id,
                                           n_images=int(params.get("n_images", 8)),
                                           settings=params.get("settings") or {}, on_step=ctx.on_step,
                                           stop=ctx.stop)
    raise ValueError(f"unknown attack {params['attack']!r}; valid: recovery, inversion")


def bench_task(params: dict[str, Any], ctx) -> dict[str, Any]:
    """The shallow-vs-deep benchmark: several methods from one original model and split, then every attack."""
    from opc_core.workflows.bench import run_bench

    return run_bench(params.get("dataset", "fashion_mnist_small"), params.get("model", "cnn_small"),
                     methods=params.get("methods") or ["opc", "ft", "ga", "rl"],
                     forget_classes=params.get("forget_classes"), forget_ratio=params.get("forget_ratio"),
                     seed=int(params.get("seed", 0)), store=ctx.store, parent=ctx.run_id,
                     inversion_images=int(params.get("inversion_images", 4)), on_step=ctx.on_step, stop=ctx.stop)
