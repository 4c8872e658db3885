"""What the three proofs' pages read beyond a run's stored metrics: a benchmark's runs in one shared map, and where the
forget set's predictions go (docs/science.md §8, §9)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from opc_core.workflows.attack import load_run


def _display(run) -> str:
    from opc_core.methods.opc import method_label

    return method_label(run.params.name)


def bench_maps(run_id: str, method: str = "pca", store=None) -> dict[str, Any]:
    """Every finished run of the benchmark ``run_id`` belongs to, with the original model, in ONE 2-D map fitted on the
    original's features of the run's fixed sample (the same sample for every run of a benchmark: same split, same
    seed). A run outside a benchmark is shown alone with the original.

    Returns:
        ``{"maps": {name: (n, 2)} (original, then retrain, then the others), "run_ids": {name: id}, "is_forget",
        "labels", "idx"}``.
    """
    from opc_core.embedding.projection import EmbedConfig, embed
    from opc_core.runs.store import RunStore
    from opc_core.train.inference import features_and_logits
    from opc_core.train.zoo import load_checkpoint

    store = store or RunStore()
    lr = load_run(run_id, store)
    snaps = np.load(lr.run.artifact_path("snapshots"), allow_pickle=False)
    idx = torch.from_numpy(snaps["idx"])
    runs = [lr.run]
    if lr.run.parent:
        runs = [r for r in store.list(kind="unlearn", status="done", parent=lr.run.parent, oldest_first=True)]
    runs.sort(key=lambda r: r.params.method != "retrain")  # retrain first: the reference
    feats = {"original": features_and_logits(lr.original, lr.data, idx)[0].numpy()}
    ids = {}
    for r in runs:
        ckpt = r.artifact_path("checkpoint")
        if ckpt is None or not ckpt.exists():
            continue
        model, _ = load_checkpoint(ckpt, device=lr.data.device)
        name = _display(r) if _display(r) not in feats else f"{_display(r)} ({r.id[-6:]})"
        feats[name], ids[name] = features_and_logits(model, lr.data, idx)[0].numpy(), r.id
    pts = embed(feats, "original", EmbedConfig(method=method))
    return {
        "maps": {k: pts[k] for k in feats},
        "run_ids": ids,
        "is_forget": snaps["is_forget"],
        "labels": snaps["labels"],
        "idx": snaps["idx"],
    }


def confusion_for_run(run_id: str, store=None) -> dict[str, Any]:
    """Where the forget set's predictions go, before and after: ``{"classes": forget classes, "original": counts
    (n, K), "unlearned": counts (n, K)}`` (rows: true forget class; columns: predicted class)."""
    from opc_core.metrics.separation import forget_confusion

    lr = load_run(run_id, store)
    classes, before = forget_confusion(lr.original, lr.data, lr.split)
    _, after = forget_confusion(lr.unlearned, lr.data, lr.split)
    return {"classes": classes, "original": before, "unlearned": after}
