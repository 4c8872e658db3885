"""Feature-space views (docs/science.md §8) on real features: the shipped digits cnn_small's penultimate features.

The UMAP path runs for real once (a fit on 400 training images, a transform of 400 others): its maps must keep each
point's neighbours (trustworthiness), where a shuffled map keeps none, and the transformed points must land in the
reference's map, not in a map of their own. PCA and the depth view get known answers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from opc_core.data import make_split
from opc_core.embedding import EmbedConfig, block_features, depth_profile, embed
from opc_core.train.inference import features_and_logits

N = 400
# Measured on these features: UMAP keeps 0.98-0.99 of the neighbourhoods, PCA 0.95, a random 2-D projection 0.87,
# a shuffled map 0.51 (chance).
TRUSTWORTHY = 0.95


@pytest.fixture(scope="module")
def feats(digits, digits_model) -> dict[str, np.ndarray]:
    """Penultimate features of two disjoint samples of the training set, and their labels."""
    fit = features_and_logits(digits_model, digits, torch.arange(N))[0].numpy()
    other = features_and_logits(digits_model, digits, torch.arange(N, 2 * N))[0].numpy()
    y = digits.train_y[: 2 * N].numpy()
    return {"fit": fit, "other": other, "y_fit": y[:N], "y_other": y[N:]}


@pytest.fixture(scope="module")
def umap_map(feats) -> dict[str, np.ndarray]:
    return embed({"fit": feats["fit"], "other": feats["other"]}, "fit", EmbedConfig(method="umap", seed=0))


def test_umap_map_keeps_neighbourhoods_and_a_shuffled_one_does_not(feats, umap_map):
    rng = np.random.default_rng(0)
    pca = embed({"fit": feats["fit"]}, "fit", EmbedConfig(method="pca"))["fit"]
    for name in ("fit", "other"):
        points = umap_map[name]
        assert points.shape == (N, 2) and points.dtype == np.float32
        real = trustworthiness(feats[name], points, n_neighbors=5)
        shuffled = trustworthiness(feats[name], points[rng.permutation(N)], n_neighbors=5)
        assert real >= TRUSTWORTHY, (name, real)
        assert shuffled < TRUSTWORTHY and shuffled < 0.6, (name, shuffled)
    assert trustworthiness(feats["fit"], umap_map["fit"], n_neighbors=5) > trustworthiness(
        feats["fit"], pca, n_neighbors=5
    )  # the non-linear map keeps local structure better than the linear one


def test_umap_transforms_into_the_reference_map(feats, umap_map):
    """A classifier of the reference's 2-D points labels the transformed points; a map refitted on them it cannot."""
    knn = KNeighborsClassifier(5).fit(umap_map["fit"], feats["y_fit"])
    assert knn.score(umap_map["other"], feats["y_other"]) > 0.9
    refit = embed({"other": feats["other"]}, "other", EmbedConfig(method="umap", seed=0))["other"]
    assert knn.score(refit, feats["y_other"]) < 0.5
    again = embed({"fit": feats["fit"], "other": feats["other"]}, "fit", EmbedConfig(method="umap", seed=0))
    assert again is umap_map  # the same content and settings come from the in-process cache


def test_pca_is_the_references_principal_axes(feats):
    out = embed({"fit": feats["fit"], "other": feats["other"]}, "fit", EmbedConfig(method="pca"))
    ref = PCA(n_components=2).fit(feats["fit"].astype(np.float64))
    for name in ("fit", "other"):
        expected = ref.transform(feats[name].astype(np.float64))  # (N, 2), each axis up to its sign
        signs = np.sign((expected * out[name]).sum(0))
        np.testing.assert_allclose(out[name] * signs, expected, rtol=0, atol=1e-3 * np.abs(expected).max())


def test_embed_refuses_bad_input(feats):
    with pytest.raises(KeyError, match="reference"):
        embed({"fit": feats["fit"]}, "missing", EmbedConfig(method="pca"))
    with pytest.raises(ValueError, match="width"):
        embed({"fit": feats["fit"], "narrow": feats["other"][:, :3]}, "fit", EmbedConfig(method="pca"))
    with pytest.raises(ValueError, match="unknown projection"):
        embed({"fit": feats["fit"]}, "fit", EmbedConfig(method="tsne"))


class BlockMap(nn.Module):
    """A model whose every block output is ``fn`` of another model's."""

    def __init__(self, inner: nn.Module, fn) -> None:
        super().__init__()
        self.inner, self.fn = inner, fn

    def features_at(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: self.fn(v) for k, v in self.inner.features_at(x).items()}


def test_depth_view_decodes_the_original_and_not_a_collapsed_model(digits, digits_model):
    split = make_split(digits, forget_classes=[0, 1], seed=0)
    models = {  # in eval mode, as the wrapped session model: the depth view restores each model's mode after it
        "original": digits_model,
        "scaled": BlockMap(digits_model, lambda t: 3.0 * t).eval(),
        "collapsed": BlockMap(digits_model, lambda t: torch.ones_like(t)).eval(),
    }
    rows = {(r["model"], r["block"]): r for r in depth_profile(models, digits, split, n=300)}
    blocks = [*digits_model.block_names, "logits"]
    assert [r["block"] for (m, _), r in rows.items() if m == "original"] == blocks
    assert [r["depth"] for (m, _), r in rows.items() if m == "original"] == list(range(len(blocks)))
    sample = split.forget_idx[:50]
    for block in blocks:
        orig, scaled, collapsed = rows["original", block], rows["scaled", block], rows["collapsed", block]
        assert orig["probe_acc_forget"] >= 95.0  # the original model encodes the classes to forget at every depth
        assert scaled["probe_acc_forget"] == pytest.approx(orig["probe_acc_forget"])  # standardised: scale-free
        assert scaled["norm_ratio"] == pytest.approx(orig["norm_ratio"], rel=1e-5)
        assert collapsed["norm_ratio"] == pytest.approx(1.0)
        assert collapsed["probe_acc_forget"] <= 60.0  # one point: at best the share of one forget class
    assert set(block_features(digits_model, digits, sample)) == set(blocks)
    assert not digits_model.training


def test_exact_neighbours_are_the_brute_force_ones(feats):
    from opc_core.embedding.projection import exact_knn

    idx, dist = exact_knn(feats["other"][:50], feats["fit"], 5)
    full = np.linalg.norm(feats["other"][:50, None, :] - feats["fit"][None], axis=2)  # (50, N)
    np.testing.assert_array_equal(np.sort(idx, 1), np.sort(np.argsort(full, 1)[:, :5], 1))
    np.testing.assert_allclose(dist, np.sort(full, 1)[:, :5], rtol=1e-4)


def test_placement_agrees_with_umap_learns_transform(feats, umap_map):
    """Points placed with exact neighbours land where umap-learn's own transform puts them: near the same reference
    points (their nearest reference neighbours in 2-D are mostly the same)."""
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1).fit(feats["fit"])
    from opc_core.embedding.projection import _place

    ours = _place(reducer, feats["fit"], reducer.embedding_.astype(np.float32), feats["other"], 15, 0, 100)
    theirs = reducer.transform(feats["other"])
    from sklearn.neighbors import NearestNeighbors

    nearest = NearestNeighbors(n_neighbors=1).fit(reducer.embedding_)
    same = (nearest.kneighbors(ours)[1] == nearest.kneighbors(theirs)[1]).mean()
    near = KNeighborsClassifier(5).fit(reducer.embedding_, feats["y_fit"])
    assert (
        near.score(ours, feats["y_other"]) > 0.9
        and abs(near.score(theirs, feats["y_other"]) - near.score(ours, feats["y_other"])) < 0.05
    )
    assert same > 0.3, same  # 1-NN identity among 400 reference points: chance is 0.0025


def test_idle_worker_stores_the_maps_of_finished_runs(tmp_path):
    """A warm worker waiting for a run stores the maps (and depth view) of finished runs that lack them; with input
    already waiting on its pipe it does nothing (the run comes first)."""
    import os

    from opc_core.jobs.worker import idle_work
    from opc_core.runs.record import UnlearnParams
    from opc_core.runs.store import RunStore
    from opc_core.workflows import start
    from opc_core.workflows.explore import embedding_for_run, has_maps

    store = RunStore(tmp_path / "home")
    params = UnlearnParams(
        dataset="digits", model="cnn_small", method="ft", forget_classes=[0, 1], overrides={"epochs": 0.3}, mia=False
    )
    run_id = start(params, store)["run_id"]
    assert not has_maps(store.get(run_id))
    read, write = os.pipe()
    try:
        os.write(write, b"run x\n")
        idle_work(str(store.home), read)  # a run id is waiting: no map work
        assert not has_maps(store.get(run_id))
        os.read(read, 64)
        idle_work(str(store.home), read)
    finally:
        os.close(read)
        os.close(write)
    run = store.get(run_id)
    assert has_maps(run) and run.artifact_path("depth").exists()
    stored = embedding_for_run(run_id, "pca", store)
    snaps = np.load(run.artifact_path("snapshots"))
    assert stored["original"].shape == (len(snaps["idx"]), 2) and len(stored["frames"]) == len(snaps["steps"])
