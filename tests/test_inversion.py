"""Gradient inversion (docs/science.md §7), its result gallery and the image metrics: known answers on tiny models
and 8x8 digits."""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
import pytest
import torch
from torch import nn

from opc_core.attacks.inversion import (
    OBJECTIVES,
    PRIORS,
    Gallery,
    InversionConfig,
    TotalVariation,
    cosine_mismatch,
    invert,
    l2_mismatch,
    make_prior,
    observed_gradients,
)
from opc_core.attacks.inversion.references import inconclusive, reference_images, reference_scores
from opc_core.metrics.image import PSNR_CAP_DB, psnr, ssim


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP barrier stalls when the 2 shared cores are busy (10x here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TinyMLP(nn.Module):
    """64 -> 32 -> 16 sigmoid MLP with the features/head interface (DLG's smooth activations)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 16), nn.Sigmoid())
        self.classifier = nn.Linear(16, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return TinyMLP().eval()


# --- metrics -------------------------------------------------------------------------------------------------------
def test_psnr_known_values():
    a = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.8
    assert torch.allclose(psnr(a, a), torch.full((3,), PSNR_CAP_DB))  # identical: capped, finite
    assert torch.allclose(psnr(a, a + 0.1), torch.full((3,), 20.0), atol=1e-4)  # MSE 0.01 -> 20 dB
    assert torch.allclose(psnr(a * 255, a * 255 + 25.5, data_range=255.0), torch.full((3,), 20.0), atol=1e-3)
    u8 = (a * 255).round().to(torch.uint8)
    assert torch.allclose(psnr(u8, u8.float() / 255), torch.full((3,), PSNR_CAP_DB))
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, a[:, :, :4])


@pytest.mark.parametrize("size", [8, 28])
def test_ssim_properties(size):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, size, size, generator=g)
    noisy = (a + 0.2 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    s = ssim(a, noisy)
    assert (s < 0.9).all() and (s > -1).all()
    assert torch.allclose(s, ssim(noisy, a), atol=1e-6)
    worse = (a + 0.5 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    assert (ssim(a, worse) < s).all()
    assert torch.allclose(ssim(a, a * 0.5 + 0.25), ssim(a * 0.5 + 0.25, a), atol=1e-6)


def test_priors_are_small_objects_with_a_scale():
    assert isinstance(PRIORS["tv"], TotalVariation) and PRIORS["tv"].scale > 0
    flat = torch.ones(2, 1, 8, 8)
    assert torch.equal(make_prior("tv", 0.5)(flat), torch.zeros(2))
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0  # every horizontal neighbour differs by 1, vertical ones by 0
    assert make_prior("tv", 2.0)(stripes).item() == pytest.approx(2.0)
    assert make_prior("tv", 2.0)(stripes[0]).item() == pytest.approx(2.0)  # one image (C, H, W)
    with pytest.raises(KeyError, match="valid"):
        make_prior("l9", 1.0)


# --- inversion: known answers --------------------------------------------------------------------------------------
def test_observed_gradient_is_a_batch_of_one(digits, mlp):
    x = digits.normalize(digits.test_x[:2])
    y = digits.test_y[:2]
    grads = observed_gradients(mlp, x, y)
    assert [g.shape[1:] for g in grads] == [p.shape for p in mlp.parameters()]
    mlp.zero_grad()
    nn.functional.cross_entropy(mlp(x[1:2]), y[1:2]).backward()
    for g, p in zip(grads, mlp.parameters(), strict=True):
        assert torch.allclose(g[1], p.grad, atol=1e-7)
    mlp.zero_grad(set_to_none=True)
    assert cosine_mismatch([g[0] for g in grads], [g[0] for g in grads]).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("method", ["dlg", "ig"])
def test_inversion_recovers_an_image_from_a_tiny_mlp(digits, mlp, method):
    cfg = InversionConfig(method=method, iterations=100, tv_weight=0.0, snapshot_every=50, seed=0)
    steps = []
    res = invert(mlp, digits, digits.test_x[:1], digits.test_y[:1], cfg, on_step=steps.append)
    assert res.psnr.item() > 35.0  # observed: >45 dB (DLG and IG); noise start is ~5 dB
    assert res.ssim.item() > 0.99
    assert (
        res.reconstructions.shape == (1, 1, 8, 8) and 0 <= res.reconstructions.min() <= res.reconstructions.max() <= 1
    )
    assert [it for it, _ in res.snapshots] == [0, 50, 100]
    assert res.psnr.item() > psnr(res.snapshots[0][1], digits.test_x[:1]).item() + 25
    assert len(res.losses) == len(steps) == res.iterations == 100 and not res.stopped
    assert res.losses[-1] < res.losses[0]


def test_batched_equals_one_by_one(digits, digits_model):
    """Independence: 4 images as one batch (vmap) match 4 separate runs (plain autograd) on a BatchNorm CNN."""
    images, labels = digits.train_x[:4], digits.train_y[:4]
    cfg = InversionConfig(method="ig", iterations=30, snapshot_every=10, seed=3)
    state = {k: v.clone() for k, v in digits_model.state_dict().items()}
    batched = invert(digits_model, digits, images, labels, cfg)
    alone = invert(digits_model, digits, images, labels, dataclasses.replace(cfg, batched=False))
    assert torch.allclose(batched.reconstructions, alone.reconstructions, atol=1e-4)
    assert torch.allclose(batched.psnr, alone.psnr, atol=1e-2)
    assert [it for it, _ in batched.snapshots] == [it for it, _ in alone.snapshots] == [0, 10, 20, 30]
    assert all(math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-5) for a, b in zip(batched.losses, alone.losses))
    assert batched.losses[-1] < batched.losses[0]
    # image 2 reconstructed on its own, with the seed it had in the batch, lands in the same place
    single = invert(digits_model, digits, images[2:3], labels[2:3], dataclasses.replace(cfg, seed=cfg.seed + 2))
    assert torch.allclose(single.reconstructions[0], batched.reconstructions[2], atol=1e-4)
    for k, v in digits_model.state_dict().items():  # the attacked model is never modified
        assert torch.equal(v, state[k]), k
    assert not digits_model.training


def test_stop_and_validation(digits, mlp):
    stop = threading.Event()

    def on_step(info):
        if info.step == 5:
            stop.set()

    for batched in (True, False):
        stop.clear()
        cfg = InversionConfig(iterations=50, batched=batched, snapshot_every=0)
        res = invert(mlp, digits, digits.test_x[:2], digits.test_y[:2], cfg, stop=stop, on_step=on_step)
        assert res.stopped and res.iterations == 5
        assert res.snapshots[-1][0] == 5 and res.snapshots[-1][1].shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="method"):
        invert(mlp, digits, digits.test_x[:1], digits.test_y[:1], InversionConfig(method="gauss"))
    with pytest.raises(ValueError, match="uint8"):
        invert(mlp, digits, digits.test_x[:1].float(), digits.test_y[:1])


def test_zeros_init_and_box(digits, mlp):
    cfg = InversionConfig(iterations=3, init="zeros", lr=5.0, snapshot_every=1)
    res = invert(mlp, digits, digits.test_x[:2], digits.test_y[:2], cfg)
    start = res.snapshots[0][1]
    assert torch.allclose(start, torch.full_like(start, digits.mean[0]), atol=1e-5)  # zeros = the mean image
    for _, frame in res.snapshots:  # a huge lr still stays inside the valid pixel range
        assert frame.min() >= 0 and frame.max() <= 1


@pytest.mark.parametrize("arch", ["cnn_small", "resnet18", "vit_tiny"])
def test_every_architecture_inverts(digits, arch):
    """BatchNorm (eval), LayerNorm and attention (math kernel: double backward) all go through vmap."""
    from opc_core.models import create_model, list_models

    assert arch in list_models()
    torch.manual_seed(0)
    model = create_model(arch, digits.in_channels, digits.num_classes, digits.image_size).eval()
    cfg = InversionConfig(iterations=2, snapshot_every=1)
    batched = invert(model, digits, digits.train_x[:2], digits.train_y[:2], cfg)
    alone = invert(model, digits, digits.train_x[:2], digits.train_y[:2], dataclasses.replace(cfg, batched=False))
    assert torch.isfinite(torch.tensor(batched.losses)).all() and len(batched.snapshots) == 3
    assert torch.allclose(batched.reconstructions, alone.reconstructions, atol=1e-4)


def test_objectives_lookup_matches_the_config():
    assert set(OBJECTIVES) == set(dataclasses.fields(InversionConfig)[0].metadata["choices"]) == {"ig", "dlg"}
    assert OBJECTIVES["ig"].mismatch is cosine_mismatch and OBJECTIVES["dlg"].mismatch is l2_mismatch
    g = [torch.tensor([3.0, 4.0])]
    assert l2_mismatch(g, [torch.zeros(2)]).item() == pytest.approx(25.0)
    assert cosine_mismatch(g, [2 * g[0]]).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert cosine_mismatch(g, [-g[0]]).item() == pytest.approx(2.0)


# --- the gallery: the result file of an inversion job ----------------------------------------------------------------
@pytest.fixture(scope="module")
def gallery(digits, mlp):
    """Three models' reconstructions of the same 3 digits (keys in a non-sorted order, as run ids come)."""
    images, labels = digits.train_x[:3], digits.train_y[:3]
    refs = reference_scores(digits, images.float() / 255.0, labels)
    references = {k: {m: v.numpy() for m, v in r.items()} for k, r in refs.items()}
    g = Gallery(np.array([0, 1, 2]), labels.numpy(), images.float().numpy() / 255.0, references=references, init="mean")
    cfg = InversionConfig(iterations=4, snapshot_every=2)
    for seed, key in enumerate(("original", "20250101-zz-opc", "20240101-aa-ft")):
        g.add(key, invert(mlp, digits, images, labels, dataclasses.replace(cfg, seed=seed)))
    return g


def test_gallery_round_trip(tmp_path, gallery):
    path = gallery.save(tmp_path / "inversion.npz")
    with np.load(path, allow_pickle=False) as z:  # fixed names, nothing pickled, no per-model keys
        assert set(z.files) == {"version", "idx", "labels", "true", "steps", "keys", "init"} | {
            "images",
            "psnr",
            "ssim",
            "snapshots",
            "ref_keys",
            "ref_psnr",
            "ref_ssim",
        }
        assert z["snapshots"].shape == (3, 3, 3, 1, 8, 8)  # (models, steps, images, C, H, W)
    back = Gallery.load(path)
    assert back.keys == ["original", "20250101-zz-opc", "20240101-aa-ft"]
    assert back.steps.tolist() == [0, 2, 4]
    for name in ("idx", "labels", "true", "steps"):
        assert np.array_equal(getattr(back, name), getattr(gallery, name)), name
    assert back.init == "mean" and list(back.references) == ["grey", "mean", "class_mean"]
    for ref, scores in gallery.references.items():
        assert np.array_equal(back.references[ref]["psnr"], scores["psnr"]), ref
    assert back.inconclusive == gallery.inconclusive is not None
    for key in gallery.keys:
        for name in ("images", "psnr", "ssim", "snapshots"):
            assert np.array_equal(getattr(back.models[key], name), getattr(gallery.models[key], name)), (key, name)
    rec = back.models["original"]
    assert np.array_equal(rec.snapshots[-1], rec.images)  # the last snapshot is the final reconstruction
    assert np.allclose(rec.psnr, psnr(torch.from_numpy(rec.images), torch.from_numpy(back.true)).numpy(), atol=1e-4)
    empty = Gallery.load(Gallery(back.idx, back.labels, back.true).save(tmp_path / "empty.npz"))
    assert empty.keys == [] and empty.true.shape == (3, 1, 8, 8)


def test_gallery_refuses_what_does_not_fit(tmp_path, digits, mlp, gallery):
    images, labels = digits.train_x[:3], digits.train_y[:3]
    with pytest.raises(ValueError, match="already"):
        gallery.add("original", invert(mlp, digits, images, labels, InversionConfig(iterations=4, snapshot_every=2)))
    with pytest.raises(ValueError, match="snapshot steps"):
        gallery.add("other", invert(mlp, digits, images, labels, InversionConfig(iterations=4, snapshot_every=0)))
    with pytest.raises(ValueError, match="do not match"):
        gallery.add("two", invert(mlp, digits, images[:2], labels[:2], InversionConfig(iterations=4, snapshot_every=2)))
    assert "other" not in gallery.keys and "two" not in gallery.keys
    old = tmp_path / "old.npz"  # the key-prefixed layout written before the gallery
    np.savez(old, idx=np.arange(3), true=gallery.true, rec__original=gallery.true)
    with pytest.raises(ValueError, match="not an inversion gallery"):
        Gallery.load(old)


def test_inversion_page_shows_a_stored_gallery(tmp_path, monkeypatch, gallery):
    """The page reads the gallery an inversion job stored: one PSNR/SSIM per model, one image per model and digit."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    root = Path(__file__).resolve().parent.parent
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPC_LAB_WARM_WORKER", "0")
    from opc_core.runs.store import RunStore

    store = RunStore()
    params = {"method": "opc", "dataset": "digits", "model": "cnn_small", "forget_classes": [0, 1]}
    run = store.create("unlearn", params, status="done")
    shown = Gallery(
        gallery.idx, gallery.labels, gallery.true, gallery.steps, references=gallery.references, init="mean"
    )
    shown.models = {"original": gallery.models["original"], run.id: gallery.models["20250101-zz-opc"]}
    att = store.create("attack", {"attack": "inversion", "run_ids": [run.id]}, status="done")
    store.add_artifact(att.id, "inversion", shown.save(store.artifact_dir(att.id) / "inversion.npz"))
    store.update_metrics(run.id, {"inversion": {"attack_run": att.id}})
    at = AppTest.from_file(str(root / "pages" / "inversion.py"), default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    at.multiselect(key="inv_runs").set_value([run.id]).run()  # this run only (the store may hold shipped demo runs)
    table = at.dataframe[0].value.set_index("model")  # one row per model, then the no-information references
    opc, original = gallery.models["20250101-zz-opc"], gallery.models["original"]
    assert table.loc["original", "PSNR (dB)"] == round(float(original.psnr.mean()), 1)
    assert table.loc[f"OPC (paper: logits) ({run.id[-6:]})", "SSIM"] == round(float(opc.ssim.mean()), 3)
    drop = float(opc.psnr.mean()) - float(original.psnr.mean())
    assert table.loc[f"OPC (paper: logits) ({run.id[-6:]})", "vs original (dB)"] == f"{drop:+.1f}"
    assert table.loc["original", "vs original (dB)"] == ""  # blank, never "None"
    refs = [m for m in table.index if m.startswith("without the gradient: ")]
    assert len(refs) == 3 and table.loc[refs, "vs original (dB)"].eq("").all()
    assert any("No retrain run" in c.value for c in at.caption)  # the reference is named when it is missing
    assert len(at.get("image")) == 3 * (1 + 2)  # per digit: the true image, then one per model
    assert at.select_slider(key=f"inv_iter_{att.id}").options == ["0", "2", "4", "final"]


# --- the no-information references and the mean starts ---------------------------------------------------------------
def test_reference_images_and_scores(digits):
    labels = torch.tensor([3, 3, 7])
    refs = reference_images(digits, labels)
    mean = digits.test_x.float().mean(0) / 255.0
    class3 = digits.test_x[digits.test_y == 3].float().mean(0) / 255.0
    assert torch.allclose(refs["mean"][2], mean) and torch.allclose(refs["class_mean"][0], class3)
    assert torch.allclose(refs["grey"], torch.full_like(refs["grey"], digits.mean[0]))
    true = digits.test_x[:3].float() / 255.0
    scores = reference_scores(digits, true, labels)
    assert torch.allclose(scores["class_mean"]["psnr"], psnr(refs["class_mean"], true))
    assert torch.allclose(scores["grey"]["ssim"], ssim(refs["grey"], true))
    assert inconclusive(12.5, {"grey": 9.0, "class_mean": 12.0}) and not inconclusive(13.0, {"class_mean": 12.0})
    assert inconclusive(float("nan"), {"mean": 10.0})


@pytest.mark.parametrize("init", ["mean", "class_mean"])
def test_mean_starts_begin_at_the_reference_image(digits, mlp, init):
    images, labels = digits.train_x[:2], digits.train_y[:2]
    res = invert(mlp, digits, images, labels, InversionConfig(iterations=1, init=init, snapshot_every=1, restarts=1))
    start = res.snapshots[0][1]
    assert torch.allclose(start, reference_images(digits, labels)[init], atol=1e-5)  # within the box already
    cfg = InversionConfig()
    assert cfg.init == "mean" and cfg.iterations == 1000 and cfg.restarts == 2


def test_late_decay_points():
    from opc_core.attacks.inversion.optimiser import decay_points

    assert decay_points(InversionConfig(iterations=1000)) == [850, 950]
    assert decay_points(InversionConfig(iterations=800, decay="geiping")) == [300, 500, 700]


def test_restarts_keep_the_best_matching_start_batched_and_alone(digits, digits_model):
    """Restarts: restart 0 is the plain run; each image keeps the restart with the lowest final objective; the
    batched and the sequential paths choose the same restarts and land in the same places."""
    images, labels = digits.train_x[:3], digits.train_y[:3]
    cfg = InversionConfig(method="ig", iterations=20, snapshot_every=10, init="randn", seed=5, restarts=1)
    one = invert(digits_model, digits, images, labels, cfg)
    many = invert(digits_model, digits, images, labels, dataclasses.replace(cfg, restarts=3))
    alone = invert(digits_model, digits, images, labels, dataclasses.replace(cfg, restarts=3, batched=False))
    assert one.restart.tolist() == [0, 0, 0]
    assert many.restart.tolist() == alone.restart.tolist() and len(many.restart) == 3
    assert torch.allclose(many.reconstructions, alone.reconstructions, atol=1e-4)
    assert many.iterations == 20 and [it for it, _ in many.snapshots] == [0, 10, 20]
    assert many.losses[-1] <= one.losses[-1] + 1e-6  # the kept restarts match at least as well as restart 0
    for i, r in enumerate(many.restart.tolist()):
        if r == 0:  # a kept restart 0 is exactly the plain run's image
            assert torch.allclose(many.reconstructions[i], one.reconstructions[i], atol=1e-4)
    assert many.restart.max() > 0, "on this seed at least one image should keep a noisy restart"
    # each image's history is its kept restart's: the configured start for restart 0, a perturbed one otherwise
    for i, r in enumerate(many.restart.tolist()):
        same = torch.allclose(many.snapshots[0][1][i], one.snapshots[0][1][i], atol=1e-6)
        assert same == (r == 0)


def test_cost_estimate_follows_the_measured_per_iteration_cost():
    """The page's estimate: a + b·(images × restarts) ms per iteration on cnn_small; unmeasured cases give None."""
    from opc_core.attacks.inversion import estimate_seconds
    from opc_core.attacks.inversion.config import MEASURED_MS_PER_ITERATION

    a, b = MEASURED_MS_PER_ITERATION["cnn_small"]
    cfg = InversionConfig()
    assert estimate_seconds(cfg, 8, "cnn_small") == pytest.approx(cfg.iterations * (a + b * 8 * cfg.restarts) / 1000)
    one = estimate_seconds(dataclasses.replace(cfg, restarts=1), 8, "cnn_small")
    assert one < estimate_seconds(cfg, 8, "cnn_small") < 2 * one  # restarts share one batch
    assert estimate_seconds(dataclasses.replace(cfg, iterations=500), 8, "cnn_small") == pytest.approx(
        estimate_seconds(cfg, 8, "cnn_small") / 2
    )
    assert estimate_seconds(cfg, 8, "resnet18") is None
    assert estimate_seconds(dataclasses.replace(cfg, batched=False), 8, "cnn_small") is None
    assert estimate_seconds(cfg, 0, "cnn_small") is None
