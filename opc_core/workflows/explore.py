"""The explore workflows: what the Feature space page shows of a finished unlearn run (read-only, no run record).

Both read the run's stored models and snapshots; neither writes to the store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from opc_core.workflows.attack import load_run


def embedding_for_run(run_id: str, method: str = "umap", store=None) -> dict[str, Any]:
    """The original and unlearned features of the run's fixed sample in one shared 2-D map, plus every snapshot.

    Returns:
        ``{"original": (n, 2), "unlearned": (n, 2), "frames": [(step, (n, 2)), ...], "is_forget": (n,),
        "labels": (n,), "idx": (n,)}``; the frames are the feature snapshots taken during unlearning.
    """
    from opc_core.embedding.projection import EmbedConfig, embed
    from opc_core.runs.store import RunStore
    from opc_core.train.inference import features_and_logits

    store = store or RunStore()
    lr = load_run(run_id, store)
    snap_path = lr.run.artifact_path("snapshots")
    if snap_path is None or not snap_path.exists():
        raise ValueError(f"run {run_id} has no feature snapshots")
    snaps = np.load(snap_path, allow_pickle=False)
    idx = torch.from_numpy(snaps["idx"])
    f_orig = features_and_logits(lr.original, lr.data, idx)[0].numpy()
    f_unl = features_and_logits(lr.unlearned, lr.data, idx)[0].numpy()
    feats = {"original": f_orig, "unlearned": f_unl}
    for i, step in enumerate(snaps["steps"]):
        feats[f"step{int(step)}"] = snaps["features"][i]
    pts = embed(feats, "original", EmbedConfig(method=method))
    frames = [(int(s), pts[f"step{int(s)}"]) for s in snaps["steps"]]
    return {
        "original": pts["original"],
        "unlearned": pts["unlearned"],
        "frames": frames,
        "is_forget": snaps["is_forget"],
        "labels": snaps["labels"],
        "idx": snaps["idx"],
    }


def depth_for_run(run_id: str, store=None) -> list[dict]:
    """Per-block forget/retain norm ratio and probe accuracy on D_f, original vs unlearned."""
    from opc_core.embedding.depth import depth_profile

    lr = load_run(run_id, store)
    return depth_profile({"original": lr.original, "unlearned": lr.unlearned}, lr.data, lr.split)
