"""The unlearn workflow: one method on a pretrained model, to a stored checkpoint, feature snapshots and metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from opc_core.data import ImageData, Split, make_split, seeded_subset
from opc_core.metrics import evaluate
from opc_core.runs.lifecycle import RunContext
from opc_core.runs.record import UnlearnParams
from opc_core.train.inference import features_and_logits
from opc_core.train.loop import Monitor, StepInfo
from opc_core.train.zoo import save_checkpoint
from opc_core.workflows.base import workflow

log = logging.getLogger(__name__)

SNAPSHOT_FORGET, SNAPSHOT_RETAIN = 300, 300  # points per set in the stored feature snapshots (and the periodic UA/RA)
N_SNAPSHOTS = 12  # feature snapshots per run (plus the start)


def sample_indices(
    split: Split, n_forget: int = SNAPSHOT_FORGET, n_retain: int = SNAPSHOT_RETAIN, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A fixed, seeded sample of forget and retain training indices (the points of the feature-space views)."""
    return {
        "forget": seeded_subset(split.forget_idx, n_forget, seed),
        "retain": seeded_subset(split.retain_idx, n_retain, seed + 10_000),
    }


class SnapshotMonitor:
    """Feature snapshots of a fixed sample of D_f and D_r during unlearning, and the periodic UA / RA on the same
    sample (one forward pass serves both: the monitor costs ~40% of the loop otherwise, measured with
    scripts/bench_preset.py)."""

    def __init__(self, data: ImageData, split: Split, total_hint: int = 0, seed: int = 0) -> None:
        self.data, self.split = data, split
        snap = sample_indices(split, seed=seed)
        self.snap_idx = torch.cat([snap["forget"], snap["retain"]])
        self.snap_is_forget = torch.cat([torch.ones(len(snap["forget"])), torch.zeros(len(snap["retain"]))]).bool()
        self.steps: list[int] = []
        self.features: list[np.ndarray] = []

    def monitor(self, every: int) -> Monitor:
        return Monitor(every=max(1, every), fn=self)

    def snapshot(self, model: nn.Module, step: int) -> torch.Tensor:
        """Features of the fixed sample at ``step``, kept in step order (the original's step 0 may come last); returns
        the sample's logits."""
        feats, logits = features_and_logits(model, self.data, self.snap_idx)
        at = int(np.searchsorted(np.array(self.steps, dtype=np.int64), step, side="right"))
        self.steps.insert(at, step)
        self.features.insert(at, feats.numpy().astype(np.float32))
        return logits

    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        hit = self.snapshot(model, step).argmax(1) == self.data.train_y.cpu()[self.snap_idx]
        f = self.snap_is_forget
        return {"ua": 100.0 - 100.0 * hit[f].float().mean().item(), "ra": 100.0 * hit[~f].float().mean().item()}

    def save(self, path: Path) -> Path:
        """Write the snapshots as ``.npz``: steps (S,), features (S, n, D), idx (n,), is_forget (n,), labels (n,)."""
        np.savez_compressed(
            path,
            steps=np.array(self.steps),
            features=np.stack(self.features),
            idx=self.snap_idx.numpy(),
            is_forget=self.snap_is_forget.numpy(),
            labels=self.data.train_y.cpu()[self.snap_idx].numpy(),
        )
        return path


def build_split(data: ImageData, forget_classes: Sequence[int] | None, forget_ratio: float | None, seed: int) -> Split:
    """The forget/retain/test/calibration split; default: the paper's 3 of K classes, 0, 1, 2."""
    if forget_classes is None and forget_ratio is None:
        forget_classes = list(range(min(3, data.num_classes - 1)))
    return make_split(data, forget_classes=forget_classes, forget_ratio=forget_ratio, seed=seed)


@workflow("unlearn")
def unlearn(params: UnlearnParams, ctx: RunContext) -> dict[str, Any]:
    """Unlearn ``params.method`` on a pretrained model, evaluate it, and store checkpoint, snapshots and metrics.

    Returns the run summary: run_id, method, label, dataset, model, forget_classes, forget_ratio, seed, config (the
    resolved method config), ua, ra, ta, forget_test_acc, mia, seconds, steps, checkpoint, original_checkpoint,
    representation, original, per_class.
    """
    from opc_core.methods import get_method, make_config
    from opc_core.train.zoo import load_for

    data, original, meta = load_for(
        params.dataset, params.model, params.checkpoint, device=ctx.device, data_root=params.data_root
    )
    split = build_split(data, params.forget_classes, params.forget_ratio, params.seed)
    ctx.store.update(ctx.run_id, split=split.to_dict())
    spec = get_method(params.method)
    # the run's seed seeds the split and the unlearning (batch order, random draws) alike; a seed= setting wins
    cfg = make_config(params.method, {"seed": params.seed, **params.overrides}, params.dataset)
    snaps = SnapshotMonitor(data, split, seed=params.seed)  # the original's snapshot (step 0) is taken after the run
    every = max(1, spec.planned_steps(cfg, split) // N_SNAPSHOTS)
    steps: list[StepInfo] = []

    def record(info: StepInfo) -> None:
        steps.append(info)
        ctx.on_step(info)

    t0 = time.perf_counter()
    unlearned = spec(original, data, split, cfg, on_step=record, stop=ctx.stop, monitor=snaps.monitor(every))
    seconds = time.perf_counter() - t0
    snaps.snapshot(original, 0)  # after the run, so that the first step is reported sooner
    ctx.add_artifact("snapshots", snaps.save(ctx.artifact_dir / "snapshots.npz"))
    ckpt = save_checkpoint(
        unlearned,
        ctx.artifact_dir / "model",
        {
            "dataset": params.dataset,
            "classes": list(data.classes),
            "mean": list(data.mean),
            "std": list(data.std),
            "recipe": {"method": params.method, **asdict(cfg)},
            "seed": params.seed,
            "parent": meta["path"],
            "run_id": ctx.run_id,
        },
    )
    ctx.add_artifact("checkpoint", ckpt)
    if ctx.stop.is_set():
        raise InterruptedError(f"unlearning cancelled after {steps[-1].step if steps else 0} steps")
    metrics = evaluate(original, unlearned, data, split, mia=params.mia)
    summary = {
        "run_id": ctx.run_id,
        "method": params.method,
        "label": params.name,
        "dataset": params.dataset,
        "model": params.model,
        "seed": params.seed,
        "forget_classes": list(split.forget_classes),
        "forget_ratio": split.forget_ratio,
        "config": asdict(cfg),
        "original_checkpoint": meta["path"],
        **{k: metrics[k] for k in ("ua", "ra", "ta", "forget_test_acc")},
        "mia": metrics.get("mia"),
        "seconds": round(seconds, 2),
        "steps": steps[-1].step if steps else 0,
        "checkpoint": str(ckpt),
        **{k: metrics[k] for k in ("representation", "original", "per_class")},
    }
    ctx.update_metrics(summary)
    log.info(
        "%s on %s: UA %.1f RA %.1f TA %.1f in %.1fs",
        params.name,
        params.dataset,
        summary["ua"],
        summary["ra"],
        summary["ta"],
        seconds,
    )
    return summary
