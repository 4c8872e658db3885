"""Known-answer tests of the metrics (docs/science.md §5) on hand-made inputs and tiny models over `digits`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from opc_core.data import draw_subset, make_split
from opc_core.metrics import (
    accuracy_from_logits,
    contraction_radius,
    evaluate,
    linear_cka,
    linear_cka_detail,
    mia_efficacy,
    mia_features,
    mia_from_confidences,
    per_class_accuracy,
    prediction_entropy,
    representation_stats,
    retained_test_idx,
    unlearning_accuracies,
)


class ConstantModel(nn.Module):
    """Predicts class ``c`` for every input; its features are all zero (a fully collapsed representation)."""

    def __init__(self, num_classes: int, c: int) -> None:
        super().__init__()
        self.num_classes, self.feature_dim = num_classes, 4
        self.bias = nn.Parameter(5.0 * nn.functional.one_hot(torch.tensor(c), num_classes).float())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :4] * 0  # (N, 4)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return f.sum(1, keepdim=True) * 0 + self.bias  # (N, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MemoModel(nn.Module):
    """A perfect memoriser: confident on the exact images it stores, uniform on anything else."""

    def __init__(self, data, idx: torch.Tensor) -> None:
        super().__init__()
        self.num_classes = self.feature_dim = data.num_classes
        self.register_buffer("mem", data.normalize(data.train_x[idx]).flatten(1))  # (M, d)
        self.register_buffer("mem_y", data.train_y[idx].clone())  # (M,)
        self.scale = nn.Parameter(torch.tensor(10.0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        dist = torch.cdist(x.flatten(1), self.mem)  # (N, M)
        d, j = dist.min(1)
        hit = (d < 1e-4).float()[:, None]  # (N, 1)
        return nn.functional.one_hot(self.mem_y[j], self.num_classes).float() * hit  # (N, K)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.scale * f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _pct(mask: torch.Tensor) -> float:
    return 100.0 * mask.float().mean().item()


@torch.no_grad()
def _features(model: nn.Module, data, idx: torch.Tensor) -> np.ndarray:
    """Penultimate features (N, D) of training images, straight from the model (not through the library's helpers)."""
    return model.features(data.normalize(data.train_x[idx])).double().numpy()


def _radius(f: np.ndarray) -> float:
    """Mean distance to the set's overall centroid."""
    return float(np.linalg.norm(f - f.mean(0), axis=1).mean())


# ---- accuracy ---------------------------------------------------------------------------------------------------


def test_accuracy_and_per_class_with_empty_class():
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [2.0, 0, 0], [0, 0, 2.0], [0, 2.0, 0]])  # preds 0 1 0 2 1
    labels = torch.tensor([0, 1, 1, 1, 0])  # no sample of class 2
    assert accuracy_from_logits(logits, labels) == pytest.approx(40.0)
    per = per_class_accuracy(logits, labels, 3)
    assert per[0] == pytest.approx(50.0) and per[1] == pytest.approx(100.0 / 3)
    assert math.isnan(per[2])
    assert math.isnan(accuracy_from_logits(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)))


def test_constant_predictor_class_split(digits):
    split = make_split(digits, forget_classes=[1, 2], seed=0)
    y_r = digits.train_y[split.retain_idx]
    y_t = digits.test_y[split.test_idx]
    kept = ~torch.isin(y_t, torch.tensor([1, 2]))
    out = unlearning_accuracies(ConstantModel(digits.num_classes, 0), digits, split)
    assert out["ua"] == pytest.approx(100.0)  # D_f holds only classes 1, 2; every prediction is 0
    assert out["ra"] == pytest.approx(_pct(y_r == 0))
    assert out["ta"] == pytest.approx(_pct(y_t[kept] == 0))
    assert out["forget_test_acc"] == pytest.approx(0.0)
    assert out["test_acc_all"] == pytest.approx(_pct(y_t == 0))
    assert out["per_class"] == pytest.approx([100.0] + [0.0] * (digits.num_classes - 1))

    # Favouring a forgotten class: UA = 100 - share of class 1 in D_f; RA = TA = 0.
    out = unlearning_accuracies(ConstantModel(digits.num_classes, 1), digits, split)
    y_f = digits.train_y[split.forget_idx]
    assert out["ua"] == pytest.approx(100.0 - _pct(y_f == 1))
    assert out["ra"] == 0.0 and out["ta"] == 0.0
    assert out["forget_test_acc"] == pytest.approx(_pct(y_t[~kept] == 1))


def test_constant_predictor_random_split(digits):
    split = make_split(digits, forget_ratio=0.1, seed=3)
    out = unlearning_accuracies(ConstantModel(digits.num_classes, 4), digits, split)
    assert out["ua"] == pytest.approx(100.0 - _pct(digits.train_y[split.forget_idx] == 4))
    assert out["ta"] == pytest.approx(_pct(digits.test_y[split.test_idx] == 4))
    assert out["ta"] == out["test_acc_all"]
    assert math.isnan(out["forget_test_acc"])


def test_retained_test_idx_drops_forget_classes(digits):
    split = make_split(digits, forget_classes=[3], seed=0)
    idx = retained_test_idx(digits, split)
    assert not (digits.test_y[idx] == 3).any()
    assert len(idx) == int((digits.test_y[split.test_idx] != 3).sum())


# ---- CKA --------------------------------------------------------------------------------------------------------


def _cka_reference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Kornblith et al. 2019 with centred Gram matrices: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))."""
    a, b = a.double(), b.double()
    n = len(a)
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l_ = h @ a @ a.T @ h, h @ b @ b.T @ h
    return float((k * l_).sum() / torch.sqrt((k * k).sum() * (l_ * l_).sum()))


def test_cka_invariances_and_independence():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, 7.3 * x + 2.0) == pytest.approx(1.0, abs=1e-6)
    y = torch.randn(300, 8, generator=g) @ torch.randn(8, 12, generator=g)
    base = linear_cka(x, y)
    assert linear_cka(x * 1e-3, y * 50.0) == pytest.approx(base, abs=1e-9)
    assert base == pytest.approx(_cka_reference(x, y), abs=1e-9)
    a, b = torch.randn(500, 5, generator=g), torch.randn(500, 5, generator=g)
    assert linear_cka(a, b) < 0.2


def test_cka_gram_path_matches_reference():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(20, 40, generator=g), torch.randn(20, 30, generator=g)  # D > N uses the Gram form
    assert linear_cka(a, b) == pytest.approx(_cka_reference(a, b), abs=1e-9)


def test_cka_degenerate_convention():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 6, generator=g)
    const = torch.full((50, 3), 0.7)
    assert linear_cka_detail(x, const) == (0.0, True)
    assert linear_cka_detail(const, x) == (0.0, True)
    assert linear_cka_detail(const, torch.zeros(50, 4)) == (1.0, True)
    assert linear_cka_detail(x, x) == (pytest.approx(1.0), False)
    with pytest.raises(ValueError):
        linear_cka(x, x[:10])


# ---- MIA --------------------------------------------------------------------------------------------------------


def test_mia_separable_confidences():
    rng = np.random.default_rng(0)
    members = np.clip(rng.normal(0.99, 0.005, 400), 0, 1)
    nonmembers = np.clip(rng.normal(0.3, 0.05, 300), 0, 1)
    like_members = np.clip(rng.normal(0.99, 0.005, 200), 0, 1)
    like_nonmembers = np.clip(rng.normal(0.3, 0.05, 200), 0, 1)
    assert mia_from_confidences(members, nonmembers, like_members) < 2.0
    assert mia_from_confidences(members, nonmembers, like_nonmembers) > 98.0
    mixed = np.concatenate([like_members[:100], like_nonmembers[:100]])
    assert mia_from_confidences(torch.tensor(members), torch.tensor(nonmembers), mixed) == pytest.approx(50.0, abs=3)
    assert math.isnan(mia_from_confidences(members, nonmembers, np.zeros(0)))


def test_mia_features_known_values():
    labels = torch.tensor([0, 1])
    sure = torch.tensor([[30.0, 0.0], [0.0, 0.0]])  # p_y = 1 for the first sample, uniform for the second
    assert mia_features(sure, labels)[:, 0] == pytest.approx([1.0, 0.5], abs=1e-6)
    assert mia_features(sure, labels, "entropy")[:, 0] == pytest.approx([0.0, math.log(2)], abs=1e-6)
    assert mia_features(sure, labels, "m_entropy")[:, 0] == pytest.approx([0.0, math.log(2)], abs=1e-6)
    assert mia_features(sure, labels, "prob").shape == (2, 2)
    with pytest.raises(KeyError, match="confidence"):
        mia_features(sure, labels, "nope")


def test_mia_efficacy_on_memorisers(digits):
    """A model that memorised D_f calls it member (~0%); one that never saw D_f calls it non-member (~100%)."""
    split = make_split(digits, forget_classes=[5, 6], seed=0)
    seen_all = MemoModel(digits, torch.arange(len(digits.train_y)))
    retrained = MemoModel(digits, split.retain_idx)
    assert mia_efficacy(seen_all, digits, split, max_per_set=300) < 5.0
    assert mia_efficacy(retrained, digits, split, max_per_set=300) > 95.0
    assert mia_efficacy(retrained, digits, split, max_per_set=300, max_target=40, feature="m_entropy") > 95.0


# ---- representation ---------------------------------------------------------------------------------------------


def test_contraction_radius_and_entropy():
    g = torch.Generator().manual_seed(0)
    retain = torch.randn(2000, 8, generator=g)
    assert contraction_radius(torch.full((100, 8), 3.0), retain) == pytest.approx(0.0, abs=1e-9)
    assert contraction_radius(torch.randn(2000, 8, generator=g) + 5.0, retain) == pytest.approx(1.0, abs=0.05)
    assert contraction_radius(0.5 * retain, retain) == pytest.approx(0.5, abs=1e-9)
    assert contraction_radius(torch.zeros(5, 8), torch.ones(5, 8)) == 1.0  # both collapsed: documented convention
    assert prediction_entropy(torch.zeros(4, 7)) == pytest.approx(math.log(7))
    assert prediction_entropy(torch.tensor([[50.0, 0.0, 0.0]])) == pytest.approx(0.0, abs=1e-12)


def test_representation_stats_collapsed_model(digits, digits_model):
    split = make_split(digits, forget_classes=[0], seed=0)
    stats = representation_stats(digits_model, ConstantModel(digits.num_classes, 2), digits, split, max_samples=100)
    g = torch.Generator().manual_seed(0)  # the documented subsample: D_f first, then D_r, one generator
    f_o = _features(digits_model, digits, draw_subset(split.forget_idx, 100, g))
    r_o = _features(digits_model, digits, draw_subset(split.retain_idx, 100, g))
    assert stats["n_forget"] == 100 and stats["n_retain"] == 100
    assert stats["feat_norm_forget"] == 0.0 and stats["logit_norm_forget"] == pytest.approx(5.0)
    assert stats["cka_forget"] == 0.0 and stats["cka_degenerate"] is True
    assert stats["contraction_radius"] == 1.0  # both sets collapsed
    assert stats["contraction_radius_original"] == pytest.approx(_radius(f_o) / _radius(r_o), rel=1e-6)
    assert stats["feat_norm_forget_original"] == pytest.approx(np.linalg.norm(f_o, axis=1).mean(), rel=1e-6)
    assert stats["max_entropy"] == pytest.approx(math.log(digits.num_classes))
    # logits 5 on class 2 and 0 elsewhere: softmax p = e^5 / (e^5 + K - 1) once and 1 / (e^5 + K - 1) K - 1 times
    z = math.exp(5.0) + digits.num_classes - 1
    p = np.array([math.exp(5.0) / z] + [1.0 / z] * (digits.num_classes - 1))
    assert stats["entropy_forget"] == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-9)


# ---- evaluate ---------------------------------------------------------------------------------------------------


def test_evaluate_original_model(digits, digits_model):
    split = make_split(digits, forget_classes=[3, 8], seed=0)
    out = evaluate(digits_model, digits_model, digits, split)
    json.dumps(out, allow_nan=False)
    keys = {"ua", "ra", "ta", "forget_test_acc", "test_acc_all", "per_class", "mia", "original", "representation"}
    assert keys <= set(out)
    assert {"ua", "ra", "ta", "forget_test_acc", "per_class", "mia"} <= set(out["original"])
    assert out["original"]["ua"] < 10.0 and out["ua"] == out["original"]["ua"]  # it was trained on D_f
    assert out["ra"] > 90.0 and out["ta"] > 85.0
    assert len(out["per_class"]) == digits.num_classes
    # the documented MIA defaults (max_per_set = max_samples, seed); a model trained on D_f calls ~all of it member
    assert out["mia"] == pytest.approx(mia_efficacy(digits_model, digits, split, max_per_set=2000, seed=0))
    assert out["mia"] < 5.0 and out["mia"] == out["original"]["mia"]
    rep = out["representation"]
    assert rep["cka_forget"] == pytest.approx(1.0, abs=1e-6) and rep["cka_degenerate"] is False
    assert rep["contraction_radius"] == pytest.approx(rep["contraction_radius_original"])
    f_forget = _features(digits_model, digits, split.forget_idx)  # D_f (285 images) is under max_samples: all of it
    assert rep["n_forget"] == len(split.forget_idx)
    assert rep["feat_norm_forget"] == pytest.approx(np.linalg.norm(f_forget, axis=1).mean(), rel=1e-6)


def test_evaluate_random_split_is_json_safe(digits, digits_model):
    split = make_split(digits, forget_ratio=0.1, seed=1)
    out = evaluate(digits_model, ConstantModel(digits.num_classes, 0), digits, split, mia=False, max_samples=64)
    assert out["forget_test_acc"] is None and out["mia"] is None and out["original"]["forget_test_acc"] is None
    assert out["representation"]["cka_degenerate"] is True
    json.dumps(out, allow_nan=False)


class CountingModel(nn.Module):
    """Wraps a model and counts the images its feature extractor sees."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = inner, 0
        self.num_classes, self.feature_dim = inner.num_classes, inner.feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.inner.features(x)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.inner.head(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_evaluate_runs_each_image_through_each_model_once(digits, digits_model):
    """The evaluation's overlapping requests are served from one forward pass per image and model, with the same
    numbers as the unmemoised metrics; the original's rows are kept for the next evaluation of the same original."""
    split = make_split(digits, forget_classes=[3, 8], seed=0)
    # eval(): the inference helper restores the wrapper's mode afterwards, and train mode would reach the shared model
    original = CountingModel(digits_model).eval()
    unlearned = CountingModel(ConstantModel(digits.num_classes, 0)).eval()
    out = evaluate(original, unlearned, digits, split)
    n_images = len(split.forget_idx) + len(split.retain_idx) + len(split.test_idx)
    assert unlearned.seen == n_images and original.seen == n_images
    assert out["ra"] == pytest.approx(unlearning_accuracies(unlearned.inner, digits, split)["ra"])
    assert out["mia"] == pytest.approx(mia_efficacy(unlearned.inner, digits, split, max_per_set=2000, seed=0))
    plain = representation_stats(original.inner, unlearned.inner, digits, split)
    assert out["representation"]["feat_norm_retain_original"] == pytest.approx(plain["feat_norm_retain_original"])
    seen = original.seen
    again = evaluate(original, CountingModel(ConstantModel(digits.num_classes, 1)).eval(), digits, split)
    assert original.seen == seen and again["original"] == out["original"]  # the original's forwards were reused
    bias = digits_model.classifier.bias.detach().clone()
    with torch.no_grad():
        digits_model.classifier.bias[0] += 1.0  # a changed original is a different fingerprint: computed afresh
    try:
        evaluate(original, unlearned, digits, split)
        assert original.seen == 2 * seen
    finally:
        with torch.no_grad():
            digits_model.classifier.bias.copy_(bias)
    assert not digits_model.training
