"""Feature-space views: one shared 2-D map for the original and unlearned models, and the per-block depth view.

``embed`` fits UMAP (McInnes et al. 2018) or PCA on the reference run's features (the original model) and
*transforms* every other run's features into the same map, so all points share axes and the forget class can be seen
contracting to one point. ``umap`` is imported inside the function: its import and first fit cost seconds of JIT.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from opc_core.data import ImageData, Split
from opc_core.env.device import model_device
from opc_core.train.loop import hp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedConfig:
    method: str = hp("umap", "Projection: UMAP (non-linear, slower) or PCA (linear, instant)", choices=("umap", "pca"))
    n_neighbors: int = hp(15, "UMAP neighbourhood size: larger keeps more global structure", 2, 200)
    min_dist: float = hp(0.1, "UMAP minimum distance between embedded points", 0.0, 1.0)
    seed: int = hp(0, "Random seed (a fixed seed makes UMAP single-threaded and repeatable)", 0, 2**31 - 1)


_CACHE: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 16


def _key(features: Mapping[str, np.ndarray], reference: str, cfg: EmbedConfig) -> str:
    h = hashlib.sha1(repr((reference, sorted(features), asdict(cfg))).encode())
    for name in sorted(features):
        arr = np.ascontiguousarray(features[name], dtype=np.float32)
        h.update(name.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def embed(features: Mapping[str, np.ndarray], reference: str, cfg: EmbedConfig | None = None) -> dict[str, np.ndarray]:
    """Project every entry of ``features`` into the 2-D map fitted on ``features[reference]``.

    Args:
        features: ``{run_id: (N_i, D)}``, all with the same D.
        reference: the key to fit on (the original model); the others are transformed into its map.
        cfg: projection settings.

    Returns:
        ``{run_id: (N_i, 2)}`` float32. Results are cached in-process by the features' content and ``cfg``.
    """
    cfg = cfg or EmbedConfig()
    if reference not in features:
        raise KeyError(f"reference {reference!r} not among the features: {sorted(features)}")
    dims = {np.asarray(v).shape[1] for v in features.values()}
    if len(dims) != 1:
        raise ValueError(f"all feature sets must have the same width, got {sorted(dims)}")
    key = _key(features, reference, cfg)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    ref = np.asarray(features[reference], dtype=np.float32)
    if cfg.method == "pca":
        mean = ref.mean(0, keepdims=True)
        _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
        comps = vt[:2].T  # (D, 2)
        out = {k: ((np.asarray(v, np.float32) - mean) @ comps).astype(np.float32) for k, v in features.items()}
    elif cfg.method == "umap":
        import umap  # slow import (numba), kept out of module import

        reducer = umap.UMAP(n_components=2, n_neighbors=min(cfg.n_neighbors, len(ref) - 1), min_dist=cfg.min_dist,
                            random_state=cfg.seed, n_jobs=1)
        out = {reference: reducer.fit_transform(ref).astype(np.float32)}
        for k, v in features.items():
            if k != reference:
                out[k] = reducer.transform(np.asarray(v, np.float32)).astype(np.float32)
    else:
        raise ValueError(f"unknown projection {cfg.method!r}; valid: umap, pca")
    with _CACHE_LOCK:
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


@torch.inference_mode()
def block_features(model: nn.Module, data: ImageData, idx: torch.Tensor, split: str = "train",
                   batch_size: int = 512) -> dict[str, np.ndarray]:
    """Pooled features of every named block (and logits) for the images ``idx``: ``{block: (N, C)}``."""
    x_all = data.train_x if split == "train" else data.test_x
    device = model_device(model)
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(idx), batch_size):
        sel = idx[start : start + batch_size].to(x_all.device)
        out = model.features_at(data.normalize(x_all[sel]).to(device))
        for name, t in out.items():
            parts.setdefault(name, []).append(t.float().cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in parts.items()}


def depth_profile(models: Mapping[str, nn.Module], data: ImageData, split: Split, *, n: int = 600,
                  seed: int = 0) -> list[dict]:
    """For each named block: forget-vs-retain norm ratio, and a linear probe's accuracy on D_f.

    The probe (logistic regression on standardised block features) is trained on the calibration images, which hold
    every class, and scored on a sample of D_f: how linearly decodable the forgotten classes still are at that depth.

    Returns:
        Rows ``{"model", "block", "depth", "norm_ratio", "probe_acc_forget"}`` for each model and block.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    gen = torch.Generator().manual_seed(seed)
    pick = lambda idx: idx[torch.randperm(len(idx), generator=gen)[: min(n, len(idx))]]  # noqa: E731
    f_idx, r_idx, c_idx = pick(split.forget_idx), pick(split.retain_idx), pick(split.cal_idx)
    y_f = data.train_y.cpu()[f_idx].numpy()
    y_c = data.test_y.cpu()[c_idx].numpy()
    rows = []
    for name, model in models.items():
        ff, fr = block_features(model, data, f_idx), block_features(model, data, r_idx)
        fc = block_features(model, data, c_idx, split="test")
        for depth, block in enumerate(ff):
            ratio = float(np.linalg.norm(ff[block], axis=1).mean() / max(np.linalg.norm(fr[block], axis=1).mean(),
                                                                         1e-12))
            scaler = StandardScaler().fit(fc[block])
            probe = LogisticRegression(max_iter=300).fit(scaler.transform(fc[block]), y_c)
            acc = 100.0 * float((probe.predict(scaler.transform(ff[block])) == y_f).mean())
            rows.append({"model": name, "block": block, "depth": depth, "norm_ratio": ratio, "probe_acc_forget": acc})
    return rows
