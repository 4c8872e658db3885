"""The explore workflows: what the Feature space page shows of a finished unlearn run.

:func:`store_maps` computes a run's maps (UMAP and PCA of its fixed sample: original, unlearned and every snapshot)
and its depth view once and stores them as the run's artifacts ``maps`` and ``depth``; the background worker calls it
right after a run (see :mod:`opc_core.jobs.worker`), so the page reads them at once. :func:`embedding_for_run` and
:func:`depth_for_run` return the stored ones when present and compute them otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from opc_core.workflows.attack import load_run

MAP_METHODS = ("umap", "pca")
MAPS_FILE, DEPTH_FILE = "maps.npz", "depth.json"


def _compute_maps(lr, methods=MAP_METHODS) -> dict[str, dict[str, Any]]:
    """``{method: embedding}`` (see :func:`embedding_for_run`) of a loaded run from its snapshots and models."""
    from opc_core.embedding.projection import EmbedConfig, embed
    from opc_core.train.inference import features_and_logits

    snap_path = lr.run.artifact_path("snapshots")
    if snap_path is None or not snap_path.exists():
        raise ValueError(f"run {lr.run.id} has no feature snapshots (and no stored map)")
    snaps = np.load(snap_path, allow_pickle=False)
    idx = torch.from_numpy(snaps["idx"])
    feats = {
        "original": features_and_logits(lr.original, lr.data, idx)[0].numpy(),
        "unlearned": features_and_logits(lr.unlearned, lr.data, idx)[0].numpy(),
    }
    for i, step in enumerate(snaps["steps"]):
        feats[f"step{int(step)}"] = snaps["features"][i]
    out = {}
    for method in methods:
        pts = embed(feats, "original", EmbedConfig(method=method))
        out[method] = {
            "original": pts["original"],
            "unlearned": pts["unlearned"],
            "frames": [(int(s), pts[f"step{int(s)}"]) for s in snaps["steps"]],
            "is_forget": snaps["is_forget"],
            "labels": snaps["labels"],
            "idx": snaps["idx"],
        }
    return out


def _save_maps(maps: dict[str, dict[str, Any]], path) -> None:
    arrays = {}
    for method, emb in maps.items():
        for key in ("original", "unlearned", "is_forget", "labels", "idx"):
            arrays[f"{method}/{key}"] = np.asarray(emb[key])
        arrays[f"{method}/steps"] = np.array([s for s, _ in emb["frames"]], dtype=np.int64)
        arrays[f"{method}/frames"] = np.stack([p for _, p in emb["frames"]]).astype(np.float32)
    np.savez_compressed(path, **arrays)


def stored_map(run, method: str) -> dict[str, Any] | None:
    """The map ``method`` stored with ``run`` (its ``maps`` artifact), or None."""
    path = run.artifact_path("maps")
    if path is None or not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        if f"{method}/original" not in z.files:
            return None
        get = {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(f"{method}/")}
    return {
        **{k: get[k] for k in ("original", "unlearned", "is_forget", "labels", "idx")},
        "frames": [(int(s), get["frames"][i]) for i, s in enumerate(get["steps"])],
    }


def has_maps(run) -> bool:
    """Whether the run's maps are stored (the page can show them without computing)."""
    path = run.artifact_path("maps")
    return path is not None and path.exists()


def store_maps(run_id: str, store=None, depth: bool = True) -> None:
    """Compute and store the run's UMAP and PCA maps (artifact ``maps``) and its depth view (artifact ``depth``)."""
    from opc_core.embedding.depth import depth_profile
    from opc_core.runs.store import RunStore

    store = store or RunStore()
    lr = load_run(run_id, store)
    folder = store.artifact_dir(run_id)
    _save_maps(_compute_maps(lr), folder / MAPS_FILE)
    store.add_artifact(run_id, "maps", folder / MAPS_FILE)
    if depth:
        rows = depth_profile({"original": lr.original, "unlearned": lr.unlearned}, lr.data, lr.split)
        (folder / DEPTH_FILE).write_text(json.dumps(rows))
        store.add_artifact(run_id, "depth", folder / DEPTH_FILE)


def embedding_for_run(run_id: str, method: str = "umap", store=None) -> dict[str, Any]:
    """The original and unlearned features of the run's fixed sample in one shared 2-D map, plus every snapshot.

    Returns:
        ``{"original": (n, 2), "unlearned": (n, 2), "frames": [(step, (n, 2)), ...], "is_forget": (n,),
        "labels": (n,), "idx": (n,)}``; the frames are the feature snapshots taken during unlearning. The stored map
        when the run has one, else computed now.
    """
    from opc_core.runs.store import RunStore

    store = store or RunStore()
    stored = stored_map(store.get(run_id), method)
    if stored is not None:
        return stored
    return _compute_maps(load_run(run_id, store), (method,))[method]


def depth_for_run(run_id: str, store=None) -> list[dict]:
    """Per-block forget/retain norm ratio and probe accuracy on D_f, original vs unlearned (stored or computed)."""
    from opc_core.embedding.depth import depth_profile
    from opc_core.runs.store import RunStore

    store = store or RunStore()
    path = store.get(run_id).artifact_path("depth")
    if path is not None and path.exists():
        return json.loads(path.read_text())
    lr = load_run(run_id, store)
    return depth_profile({"original": lr.original, "unlearned": lr.unlearned}, lr.data, lr.split)
