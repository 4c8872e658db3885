"""The train workflow: a base model trained from scratch and saved as a checkpoint."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from opc_core.runs.lifecycle import RunContext
from opc_core.runs.record import TrainParams
from opc_core.workflows.base import workflow


@workflow("train")
def train(params: TrainParams, ctx: RunContext) -> dict[str, Any]:
    """Train ``params.model`` on ``params.dataset``; returns the checkpoint's path and measured test accuracy."""
    from opc_core.train.zoo import TrainConfig, train_base_model

    over = {k: getattr(params, k) for k in ("epochs", "lr", "batch_size") if getattr(params, k) is not None}
    cfg = replace(TrainConfig(), seed=params.seed, **over)
    _, meta = train_base_model(
        params.dataset,
        params.model,
        cfg,
        device=ctx.device,
        on_step=ctx.on_step,
        stop=ctx.stop,
        out=params.out,
        data_root=params.data_root,
    )
    ctx.add_artifact("checkpoint", meta["path"])
    return {
        "test_accuracy": meta["test_accuracy"],
        "checkpoint": meta["path"],
        "dataset": params.dataset,
        "model": params.model,
        "meta": meta,
    }
