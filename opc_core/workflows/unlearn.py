"""Headless workflows: one unlearning run from a pretrained model to stored metrics and checkpoint.

The dashboard's jobs, the CLI and the benchmark all call these functions; they never print or draw.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from opc_core.data import ImageData, Split, make_split
from opc_core.train.inference import features_and_logits
from opc_core.train.loop import Monitor, StepInfo, StopFlag

log = logging.getLogger(__name__)

SNAPSHOT_FORGET, SNAPSHOT_RETAIN = 300, 300  # points per set in the stored feature snapshots
MONITOR_POINTS = 400  # samples of D_f and D_r for the periodic UA/RA
N_SNAPSHOTS = 12  # feature snapshots per run (plus the start)


def sample_indices(split: Split, n_forget: int = SNAPSHOT_FORGET, n_retain: int = SNAPSHOT_RETAIN,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    """A fixed, seeded sample of forget and retain training indices (the points of the feature-space views)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, idx, n in (("forget", split.forget_idx, n_forget), ("retain", split.retain_idx, n_retain)):
        pick = torch.randperm(len(idx), generator=gen)[: min(n, len(idx))]
        out[name] = idx[pick].sort().values
    return out


class SnapshotMonitor:
    """Periodic UA/RA on fixed subsamples and feature snapshots of a fixed sample, during unlearning."""

    def __init__(self, data: ImageData, split: Split, total_hint: int = 0, seed: int = 0) -> None:
        self.data, self.split = data, split
        mon = sample_indices(split, MONITOR_POINTS, MONITOR_POINTS, seed + 1)
        self.mon_forget, self.mon_retain = mon["forget"], mon["retain"]
        snap = sample_indices(split, seed=seed)
        self.snap_idx = torch.cat([snap["forget"], snap["retain"]])
        self.snap_is_forget = torch.cat([torch.ones(len(snap["forget"])), torch.zeros(len(snap["retain"]))]).bool()
        self.steps: list[int] = []
        self.features: list[np.ndarray] = []

    def monitor(self, every: int) -> Monitor:
        return Monitor(every=max(1, every), fn=self)

    def snapshot(self, model: nn.Module, step: int) -> None:
        """Features of the fixed sample at ``step``, kept in step order (the original's step 0 may come last)."""
        feats, _ = features_and_logits(model, self.data, self.snap_idx)
        at = int(np.searchsorted(np.array(self.steps, dtype=np.int64), step, side="right"))
        self.steps.insert(at, step)
        self.features.insert(at, feats.numpy().astype(np.float32))

    def __call__(self, model: nn.Module, step: int) -> dict[str, float]:
        y = self.data.train_y.cpu()
        out = {}
        for name, idx in (("ua", self.mon_forget), ("ra", self.mon_retain)):
            _, logits = features_and_logits(model, self.data, idx)
            acc = 100.0 * (logits.argmax(1) == y[idx]).float().mean().item()
            out[name] = 100.0 - acc if name == "ua" else acc
        self.snapshot(model, step)
        return out

    def save(self, path: Path) -> Path:
        """Write the snapshots as ``.npz``: steps (S,), features (S, n, D), idx (n,), is_forget (n,), labels (n,)."""
        np.savez_compressed(path, steps=np.array(self.steps), features=np.stack(self.features),
                            idx=self.snap_idx.numpy(), is_forget=self.snap_is_forget.numpy(),
                            labels=self.data.train_y.cpu()[self.snap_idx].numpy())
        return path


def build_split(data: ImageData, forget_classes: Sequence[int] | None, forget_ratio: float | None,
                seed: int) -> Split:
    """The forget/retain/test/calibration split; default: the paper's 3 of K classes, 0, 1, 2."""
    if forget_classes is None and forget_ratio is None:
        forget_classes = list(range(min(3, data.num_classes - 1)))
    return make_split(data, forget_classes=forget_classes, forget_ratio=forget_ratio, seed=seed)


def unlearn_run(dataset: str, arch: str, method: str, *, checkpoint: str | Path | None = None,
                forget_classes: Sequence[int] | None = None, forget_ratio: float | None = None, seed: int = 0,
                overrides: Mapping[str, Any] | Iterable[str] = (), device=None, store=None,
                run_id: str | None = None, on_step: Callable[[StepInfo], None] | None = None,
                stop: StopFlag | None = None, mia: bool = True, data_root=None) -> dict[str, Any]:
    """Unlearn ``method`` on a pretrained model, evaluate it, and store the run (checkpoint, steps, metrics).

    Args:
        checkpoint: the original model's checkpoint (default: the zoo's best for (dataset, arch)).
        overrides: config values over the dataset's preset (a mapping or "key=value" strings).
        store: a RunStore (default: the one under OPC_LAB_HOME).
        run_id: an existing queued run to fill (jobs); a new run is created otherwise.
        stop: cancellation flag; a stopped run raises InterruptedError after saving what it had.

    Returns:
        The run summary: run_id, method, dataset, model, forget_classes, forget_ratio, seed, config, ua, ra, ta,
        forget_test_acc, mia, seconds, steps, checkpoint, original_checkpoint, representation, original, per_class.
    """
    from opc_core.methods import get_method, make_config
    from opc_core.runs.store import RunStore
    from opc_core.train.zoo import load_for

    data, original, meta = load_for(dataset, arch, checkpoint, device=device, data_root=data_root)
    split = build_split(data, forget_classes, forget_ratio, seed)
    spec = get_method(method)
    cfg = make_config(method, overrides, dataset)
    store = store or RunStore()
    config = {"method": method, "dataset": dataset, "model": arch, "seed": seed, "forget_classes":
              list(split.forget_classes), "forget_ratio": split.forget_ratio, "config": asdict(cfg),
              "original_checkpoint": meta["path"]}
    own_run = run_id is None  # a run this call creates (CLI) is also finished by it; a job's run by its worker
    if own_run:
        run_id = store.create("unlearn", config, split=split.to_dict(), title=f"{method} on {dataset}",
                              status="running").id
    else:
        store.update(run_id, split=split.to_dict())
    snaps = SnapshotMonitor(data, split, seed=seed)  # the original's snapshot (step 0) is taken after the run
    steps: list[StepInfo] = []

    def record(info: StepInfo) -> None:
        steps.append(info)
        if on_step is not None:
            on_step(info)

    every = max(1, _planned_total(spec, cfg, data, split) // N_SNAPSHOTS)
    t0 = time.perf_counter()
    try:
        summary = _unlearn_and_store(spec, original, data, split, cfg, record, stop, snaps, every, store, run_id,
                                     config, meta, seed, mia, steps, t0)
    except BaseException as exc:
        if own_run:
            store.set_status(run_id, "cancelled" if isinstance(exc, InterruptedError) else "failed",
                             error=f"{type(exc).__name__}: {exc}")
        raise
    if own_run:
        store.set_status(run_id, "done")
    return summary


def _unlearn_and_store(spec, original, data, split, cfg, record, stop, snaps, every, store, run_id, config, meta,
                       seed, mia, steps, t0) -> dict[str, Any]:
    """The body of :func:`unlearn_run`: unlearn, save snapshots and checkpoint, evaluate, store the summary."""
    from opc_core.metrics import evaluate
    from opc_core.train.zoo import save_checkpoint

    dataset = config["dataset"]
    unlearned = spec(original, data, split, cfg, on_step=record, stop=stop, monitor=snaps.monitor(every))
    seconds = time.perf_counter() - t0
    snaps.snapshot(original, 0)  # after the run, so that the first step is reported ~0.4 s sooner (CPU)
    folder = store.artifact_dir(run_id)
    store.add_artifact(run_id, "snapshots", snaps.save(folder / "snapshots.npz"))
    ckpt = save_checkpoint(unlearned, folder / "model", {
        "dataset": dataset, "classes": list(data.classes), "mean": list(data.mean), "std": list(data.std),
        "recipe": {"method": config["method"], **asdict(cfg)}, "seed": seed, "parent": meta["path"], "run_id": run_id})
    store.add_artifact(run_id, "checkpoint", ckpt)
    if stop is not None and stop.is_set():
        raise InterruptedError(f"unlearning cancelled after {steps[-1].step if steps else 0} steps")
    metrics = evaluate(original, unlearned, data, split, mia=mia)
    summary = {"run_id": run_id, **config, "ua": metrics["ua"], "ra": metrics["ra"], "ta": metrics["ta"],
               "forget_test_acc": metrics["forget_test_acc"], "mia": metrics.get("mia"),
               "seconds": round(seconds, 2), "steps": steps[-1].step if steps else 0,
               "checkpoint": str(ckpt), "representation": metrics["representation"],
               "original": metrics["original"], "per_class": metrics["per_class"]}
    store.update_metrics(run_id, summary)
    log.info("%s on %s: UA %.1f RA %.1f TA %.1f in %.1fs", config["method"], dataset, summary["ua"], summary["ra"],
             summary["ta"], seconds)
    return summary


def _planned_total(spec, cfg, data: ImageData, split: Split) -> int:
    """Rough step count of a run, for spacing the snapshots (epochs over the retain set)."""
    import math

    n = len(split.retain_idx)
    total = max(1, round(cfg.epochs * math.ceil(n / min(cfg.batch_size, n))))
    return min(total, cfg.max_steps) if cfg.max_steps > 0 else total
