"""One shared 2-D map for several models' features: fitted on the reference (the original model), the others placed
into it, so all points share axes and a contracting forget set can be seen moving (docs/science.md §8).

``embed`` fits UMAP (McInnes et al. 2018) or PCA on the reference features and *transforms* every other set with
that fitted map; it never refits per set. ``umap`` is imported inside the UMAP path: its import and first fit cost
seconds of numba compilation, which a page that only draws PCA should not pay.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
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
    n_epochs: int = hp(
        200, "UMAP layout epochs of the fit (0 = umap-learn's default, 500 below 10,000 points)", 0, 5000
    )


TRANSFORM_EPOCHS = 100  # layout epochs when placing new points (umap-learn's transform default below 10,000 points)


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


def exact_knn(query: np.ndarray, ref: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of ``ref`` to each row of ``query`` (Euclidean, exact, by BLAS): (indices, distances)."""
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(ref).kneighbors(query)
    return idx.astype(np.int64), dist.astype(np.float32)


def _place(reducer, ref: np.ndarray, ref_2d: np.ndarray, x: np.ndarray, k: int, seed: int, n_epochs: int) -> np.ndarray:
    """UMAP's ``transform`` with exact neighbours: the same membership graph, start (each point at the weighted mean
    of its neighbours' places) and layout optimisation against the fixed reference map, as umap-learn 0.5 does.

    umap-learn's own ``transform`` finds the neighbours of new points with NNDescent's search, whose numba function is
    compiled anew for every fitted model (and it needs an index built during a slower approximate fit above 4,095
    points): that compilation is what made the transform slower than the fit.
    """
    import scipy.sparse
    from umap.layouts import optimize_layout_euclidean
    from umap.umap_ import compute_membership_strengths, make_epochs_per_sample, smooth_knn_dist

    idx, dist = exact_knn(x, ref, k)
    sigmas, rhos = smooth_knn_dist(dist, float(k), local_connectivity=max(0.0, reducer.local_connectivity - 1.0))
    rows, cols, vals, _ = compute_membership_strengths(idx, dist, sigmas, rhos, bipartite=True)
    graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(len(x), len(ref)))
    weights = np.asarray(vals, dtype=np.float64).reshape(len(x), k)  # row-major: point i's k neighbours in turn
    weights /= np.maximum(weights.sum(1, keepdims=True), 1e-12)
    start = (weights[:, :, None] * ref_2d[idx]).sum(1).astype(np.float32)
    graph.data[graph.data < graph.data.max() / float(n_epochs)] = 0.0
    graph.eliminate_zeros()
    rng_state = np.random.RandomState(seed).randint(np.iinfo(np.int32).min, np.iinfo(np.int32).max, 3)
    return optimize_layout_euclidean(
        start,
        ref_2d.astype(np.float32, copy=True),
        graph.row,
        graph.col,
        n_epochs,
        len(ref),
        make_epochs_per_sample(graph.data, n_epochs),
        reducer._a,
        reducer._b,
        rng_state.astype(np.int64),
        reducer.repulsion_strength,
        reducer._initial_alpha / 4.0,
        reducer.negative_sample_rate,
        parallel=False,
    )


def _umap(features: Mapping[str, np.ndarray], reference: str, ref: np.ndarray, cfg: EmbedConfig):
    """UMAP fitted on the reference (exact neighbours); every other set placed into the fitted map, all in one call."""
    import umap  # slow import (numba), kept out of module import

    k = min(cfg.n_neighbors, len(ref) - 1)
    idx, dist = exact_knn(ref, ref, k)  # each point's first neighbour is itself, as umap-learn expects
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=k,
        min_dist=cfg.min_dist,
        random_state=cfg.seed,
        n_jobs=1,
        n_epochs=cfg.n_epochs or None,
        precomputed_knn=(idx, dist, None),
    )
    with warnings.catch_warnings():  # "no search index: transform unavailable" -- _place replaces the transform
        warnings.simplefilter("ignore", UserWarning)
        ref_2d = reducer.fit_transform(ref).astype(np.float32)
    out = {reference: ref_2d}
    others = [k_ for k_ in features if k_ != reference]
    if others:
        x = np.concatenate([np.asarray(features[o], np.float32) for o in others])
        placed = _place(reducer, ref, ref_2d, x, k, cfg.seed, TRANSFORM_EPOCHS)
        bounds = np.cumsum([0, *(len(features[o]) for o in others)])
        out |= {o: placed[a:b].astype(np.float32) for o, a, b in zip(others, bounds, bounds[1:])}
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
