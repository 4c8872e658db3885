"""One shared 2-D map for several models' features: fitted on the reference (the original model), the others placed
into it, so all points share axes and a contracting forget set can be seen moving (docs/science.md §8).

``embed`` fits UMAP (McInnes et al. 2018) or PCA on the reference features and *transforms* every other set with
that fitted map; it never refits per set. ``umap`` is imported inside the UMAP path: its import and first fit cost
seconds of numba compilation, which a page that only draws PCA should not pay.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from opc_core.config import hp


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
    """A digest of the features' content, the reference's name and the settings."""
    h = hashlib.sha1(repr((reference, sorted(features), asdict(cfg))).encode())
    for name in sorted(features):
        arr = np.ascontiguousarray(features[name], dtype=np.float32)
        h.update(name.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _pca(features: Mapping[str, np.ndarray], ref: np.ndarray) -> dict[str, np.ndarray]:
    """Every set projected on the reference's two leading principal axes, centred on the reference's mean."""
    mean = ref.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
    comps = vt[:2].T  # (D, 2)
    return {k: ((np.asarray(v, np.float32) - mean) @ comps).astype(np.float32) for k, v in features.items()}


def _umap(features: Mapping[str, np.ndarray], reference: str, ref: np.ndarray, cfg: EmbedConfig):
    """UMAP fitted on the reference; every other set placed with the fitted model's ``transform``."""
    import umap  # slow import (numba), kept out of module import

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(cfg.n_neighbors, len(ref) - 1),
        min_dist=cfg.min_dist,
        random_state=cfg.seed,
        n_jobs=1,
    )
    out = {reference: reducer.fit_transform(ref).astype(np.float32)}
    for k, v in features.items():
        if k != reference:
            out[k] = reducer.transform(np.asarray(v, np.float32)).astype(np.float32)
    return out


def embed(features: Mapping[str, np.ndarray], reference: str, cfg: EmbedConfig | None = None) -> dict[str, np.ndarray]:
    """Project every entry of ``features`` into the 2-D map fitted on ``features[reference]``.

    Args:
        features: ``{name: (N_i, D)}``, all with the same D.
        reference: the key to fit on (the original model); the others are transformed into its map.
        cfg: projection settings.

    Returns:
        ``{name: (N_i, 2)}`` float32. Results are cached in-process by the features' content and ``cfg``.
    """
    cfg = cfg or EmbedConfig()
    if reference not in features:
        raise KeyError(f"reference {reference!r} not among the features: {sorted(features)}")
    dims = {np.asarray(v).shape[1] for v in features.values()}
    if len(dims) != 1:
        raise ValueError(f"all feature sets must have the same width, got {sorted(dims)}")
    if cfg.method not in ("umap", "pca"):
        raise ValueError(f"unknown projection {cfg.method!r}; valid: umap, pca")
    key = _key(features, reference, cfg)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    ref = np.asarray(features[reference], dtype=np.float32)
    out = _pca(features, ref) if cfg.method == "pca" else _umap(features, reference, ref, cfg)
    with _CACHE_LOCK:
        _CACHE[key] = out
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out
