"""Recovery attacks (docs/science.md §6): registry, threat model, and known answers on digits.

Known answers: FM/HR recover the original accuracy exactly when the unlearned features are an invertible affine map
of the original's; they recover at most one class when the forget features collapse to one point.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from opc_core.attacks import (
    ATTACKS,
    FeatureBank,
    RecoveryResult,
    calibration_idx,
    get_attack,
    leak_forget,
    list_attacks,
    register_attack,
    run_recovery,
    score_recovery,
    shared_settings,
)
from opc_core.attacks.recovery.base import AttackSpec
from opc_core.data import make_split
from opc_core.train.inference import accuracy, labels_of

FORGET = [0, 1, 2]


class AffineFeatures(nn.Module):
    """An "unlearned" model whose features are ``A f_o(x) + c`` and whose head is random (so its accuracy is low)."""

    def __init__(self, base: nn.Module, a: torch.Tensor, c: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("a", a)
        self.register_buffer("c", c)
        self.classifier = nn.Linear(a.shape[0], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.base.features(x) @ self.a.T + self.c

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CollapsedFeatures(AffineFeatures):
    """Maps inputs to one point ``c``: all of them, or (``selective``) those the base model puts in a forget class."""

    def __init__(self, base: nn.Module, c: torch.Tensor, num_classes: int, selective: bool) -> None:
        super().__init__(base, torch.eye(len(c)), c, num_classes)
        self.selective = selective

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.base.features(x)  # (N, D)
        if not self.selective:
            return self.c.expand_as(f).clone()
        hit = torch.isin(self.base.head(f).argmax(1), torch.tensor(FORGET))  # (N,)
        return torch.where(hit[:, None], self.c.expand_as(f), f)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids OpenMP barrier stalls when the 2 shared cores are busy (10x here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def class_split(digits):
    return make_split(digits, forget_classes=FORGET, seed=0)


@pytest.fixture(scope="module")
def random_split(digits):
    return make_split(digits, forget_ratio=0.1, seed=0)


def _invertible(d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    a = q @ torch.diag(torch.rand(d, generator=g) * 1.5 + 0.5)  # singular values in [0.5, 2]
    return a, torch.randn(d, generator=g) * 3


def _logit_target(name: str):
    """The attack's default config, HR in its logit-target form (identical to FM by construction)."""
    return get_attack(name).config(target="logits") if name == "hr" else get_attack(name).config()


def _share_of_top_class(digits, idx: torch.Tensor) -> float:
    y = labels_of(digits, idx, "train")
    return 100.0 * torch.bincount(y).max().item() / len(y)


# --- registry ------------------------------------------------------------------------------------------------------
def test_registry_order_and_errors():
    assert list_attacks() == ["fm", "hr", "prototype", "probe", "relearn"]
    with pytest.raises(KeyError, match="valid names: fm, hr, probe, prototype, relearn"):
        get_attack("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_attack("fm", get_attack("fm").config, label="x", help="x", threat_model="x", paper="x")(print)
    for name in list_attacks():
        desc = get_attack(name).describe()
        assert desc["config"] and all("help" in f for f in desc["config"])
        for key in ("label", "help", "threat_model", "paper"):  # what the dashboard shows of every attack
            assert desc[key].strip(), (name, key)
        assert desc["help"].endswith(".") and desc["help"].count(". ") == 0, name  # one plain sentence
    assert get_attack("fm").label == "FM" and "2507.07754" in get_attack("fm").paper


def test_shared_settings_are_the_fields_several_attacks_read():
    names = [f["name"] for f in shared_settings()]
    assert names == ["cal_exclude_forget", "eps", "k", "seed"]
    readers = {}  # field -> how many attacks' configs have it
    for a in list_attacks():
        for f in get_attack(a).config.__dataclass_fields__:
            readers[f] = readers.get(f, 0) + 1
    assert {f for f, n in readers.items() if n >= 2} == set(names)


def test_a_new_attack_appears_in_text_plots_and_settings(monkeypatch):
    """Adding an attack is one registration: the captions, metric labels, charts and shared settings follow it."""
    from opc_core.report import plots
    from opc_core.report import text as ui_text

    cfg = get_attack("relearn").config
    spec = AttackSpec("echo", "Echo", "Returns what it was given.", "Nothing at all.", "nowhere", cfg, print)
    monkeypatch.setattr(ATTACKS, "_entries", {**ATTACKS._entries, "echo": spec})
    assert list_attacks()[-1] == "echo"
    assert ui_text.label("recovered_ua_echo") == "UA after Echo"
    assert "Returns what it was given." in ui_text.explain("recovered_ua_echo")
    assert "Nothing at all." in ui_text.attack_caption("echo")
    rows = [{"method": "m", "ua": 90.0, "recovered_ua": {"fm": 10.0, "echo": 50.0}}]
    assert [t.name for t in plots.recovery_bars(rows).data] == ["UA (no attack)", "after FM", "after Echo"]
    names = [f["name"] for f in shared_settings()]
    assert "steps" in names and "lr" in names  # relearn's own fields are now shared with "echo"


def test_config_is_checked(digits, digits_model, class_split):
    with pytest.raises(TypeError, match="expects a"):
        get_attack("fm")(digits_model, digits_model, digits, class_split, get_attack("hr").config())
    with pytest.raises(ValueError, match="k must be within"):
        get_attack("relearn")(digits_model, digits_model, digits, class_split, get_attack("relearn").config(k=0))


# --- threat model --------------------------------------------------------------------------------------------------
def test_calibration_excludes_forget_classes(digits, class_split, random_split):
    full = calibration_idx(digits, class_split)
    assert torch.equal(full, class_split.cal_idx)
    cut = calibration_idx(digits, class_split, exclude_forget=True)
    y = labels_of(digits, cut, "test")
    assert not torch.isin(y, torch.tensor(FORGET)).any()
    n_forget_cal = torch.isin(labels_of(digits, full, "test"), torch.tensor(FORGET)).sum().item()
    assert len(cut) == len(full) - n_forget_cal > 0
    assert torch.equal(calibration_idx(digits, random_split, exclude_forget=True), random_split.cal_idx)


def test_leak_draw(digits, class_split, random_split):
    leaked, rest = leak_forget(digits, class_split, 5, seed=3)
    assert torch.bincount(labels_of(digits, leaked, "train"), minlength=10)[FORGET].tolist() == [5, 5, 5]
    assert torch.equal(torch.cat([leaked, rest]).sort().values, class_split.forget_idx)
    assert torch.equal(leak_forget(digits, class_split, 5, seed=3)[0], leaked)
    assert not torch.equal(leak_forget(digits, class_split, 5, seed=4)[0], leaked)
    leaked_r, rest_r = leak_forget(digits, random_split, 5, seed=0)
    assert len(leaked_r) == 5 and len(rest_r) == len(random_split.forget_idx) - 5
    with pytest.raises(ValueError, match="nothing is left"):
        leak_forget(digits, random_split, 10**6, seed=0)


# --- known answers: FM and HR --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["fm", "hr"])
def test_invertible_map_recovers_original_accuracy(digits, digits_model, class_split, name):
    d = digits_model.feature_dim
    a, c = _invertible(d)
    torch.manual_seed(1)
    unlearned = AffineFeatures(digits_model, a, c, digits.num_classes).eval()
    original_acc = accuracy(digits_model, digits, class_split.forget_idx)
    assert accuracy(unlearned, digits, class_split.forget_idx) < original_acc - 40  # the garbage head forgets
    res = get_attack(name)(unlearned, digits_model, digits, class_split, _logit_target(name))
    assert res.recovered_logits.shape == (len(class_split.forget_idx), digits.num_classes)
    assert torch.equal(res.scored_idx, class_split.forget_idx)
    assert abs(score_recovery(res, digits)["recovered_acc"] - original_acc) <= 0.5
    assert res.details["residual"] < 1e-3


@pytest.mark.parametrize("name", ["fm", "hr"])
@pytest.mark.parametrize("selective", [False, True])
def test_one_point_contraction_recovers_at_most_one_class(digits, digits_model, class_split, name, selective):
    c = torch.randn(digits_model.feature_dim, generator=torch.Generator().manual_seed(2)).abs()
    unlearned = CollapsedFeatures(digits_model, c, digits.num_classes, selective).eval()
    res = get_attack(name)(unlearned, digits_model, digits, class_split, _logit_target(name))
    acc = score_recovery(res, digits)["recovered_acc"]
    assert acc <= _share_of_top_class(digits, class_split.forget_idx) + 1e-6
    if not selective:  # every forget input is the same point: one prediction for all
        assert len(torch.unique(res.recovered_logits.argmax(1))) == 1
    else:  # the forget-predicted ones all land in one class; the rest keep (wrong) retained-class predictions
        pred = res.recovered_logits.argmax(1)
        assert torch.bincount(pred, minlength=10)[FORGET].count_nonzero() <= 1


def test_hr_onehot_target(digits, digits_model, class_split):
    a, c = _invertible(digits_model.feature_dim, seed=5)
    unlearned = AffineFeatures(digits_model, a, c, digits.num_classes).eval()
    cfg = get_attack("hr").config(target="onehot")
    res = get_attack("hr")(unlearned, digits_model, digits, class_split, cfg)
    assert score_recovery(res, digits)["recovered_acc"] > 90
    # without the forget classes in D_cal, label regression cannot output them
    cut = get_attack("hr")(
        unlearned, digits_model, digits, class_split, get_attack("hr").config(target="onehot", cal_exclude_forget=True)
    )
    assert score_recovery(cut, digits)["recovered_acc"] < 5
    assert cut.details["n_cal"] < res.details["n_cal"]


# --- every attack: known answers on a shallow model, never touches its inputs ----------------------------------------
@pytest.mark.parametrize("split_name", ["class_split", "random_split"])
def test_run_recovery_all_attacks(request, digits, digits_model, split_name):
    split = request.getfixturevalue(split_name)
    unlearned = copy.deepcopy(digits_model)
    with torch.no_grad():  # a shallow "unlearning": suppress the forget rows of the head
        unlearned.classifier.weight[FORGET] = 0
        unlearned.classifier.bias[FORGET] = -5
    before = {k: v.clone() for k, v in unlearned.state_dict().items()}
    bank = FeatureBank(unlearned, digits_model, digits, split)
    out = run_recovery(unlearned, digits_model, digits, split, bank=bank)
    assert list(out) == list_attacks()
    for name, r in out.items():
        assert r["recovered_ua"] == pytest.approx(100.0 - r["recovered_acc"]) and r["seconds"] >= 0, name
    n_leaked = 15 if split_name == "class_split" else 5
    assert out["relearn"]["n_scored"] == len(split.forget_idx) - n_leaked
    assert out["fm"]["n_scored"] == out["prototype"]["n_scored"] == len(split.forget_idx)
    for k, v in unlearned.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert len(bank._store) == 3  # one extraction per (model, set), shared by all attacks
    # head suppression is shallow: the features still hold the forget set, so the feature attacks read it all back
    ua_before = 100 - accuracy(unlearned, digits, split.forget_idx)
    assert ua_before > (99 if split_name == "class_split" else 20)
    for name in ("fm", "hr", "probe"):
        assert out[name]["recovered_ua"] < 5, name
    if split_name == "class_split":  # a whole suppressed class: its prototype restores it; relearning brings back most
        assert out["prototype"]["recovered_ua"] < 5
        assert out["relearn"]["recovered_ua"] < ua_before - 40


@pytest.mark.parametrize("name", ["prototype", "probe", "relearn"])
def test_other_attacks_on_a_model_that_forgot_nothing(digits, digits_model, class_split, name):
    """Attacking the original model: prototype and relearn keep its accuracy; a probe blind to D_f's classes has 0."""
    cfg = get_attack(name).config()
    if name == "probe":
        cfg = get_attack(name).config(cal_exclude_forget=True)
    res = get_attack(name)(digits_model, digits_model, digits, class_split, cfg)
    assert isinstance(res, RecoveryResult) and torch.isfinite(res.recovered_logits).all()
    score = score_recovery(res, digits)
    original_acc = accuracy(digits_model, digits, res.scored_idx)
    if name == "probe":  # the probe never saw the forget classes, so it cannot predict them
        assert score["recovered_acc"] == 0.0
    elif name == "prototype":  # the written rows point where the forget features already are
        assert score["recovered_acc"] >= original_acc - 1
    else:  # a few Adam steps on correctly classified samples do not undo what the model knows
        assert score["recovered_acc"] >= original_acc - 15


def test_prototype_writes_head_rows(digits, digits_model, class_split):
    from opc_core.attacks.recovery.prototype import write_prototypes

    head = copy.deepcopy(digits_model.classifier).requires_grad_(False)
    w0, b0 = head.weight.clone(), head.bias.clone()
    mu = torch.rand(digits_model.feature_dim)
    write_prototypes(head, {1: mu}, "mean")
    others = torch.tensor([c for c in range(digits.num_classes) if c != 1])
    assert torch.allclose(head.weight[1] / head.weight[1].norm(), mu / mu.norm(), atol=1e-6)
    assert head.weight[1].norm().item() == pytest.approx(w0[others].norm(dim=1).mean().item(), rel=1e-5)
    assert head.bias[1].item() == pytest.approx(b0[others].mean().item(), rel=1e-5)
    assert torch.equal(head.weight[others], w0[others]) and torch.equal(head.bias[others], b0[others])
    write_prototypes(head, {1: mu}, "tie")  # class 1 now ties with the best other class on the prototype itself
    logits = head(mu)
    assert logits[1].item() == pytest.approx(logits[others].max().item(), abs=1e-4)


def test_register_requires_dataclass():
    with pytest.raises(TypeError, match="dataclass"):
        register_attack("bad", int, label="bad", help="Not a dataclass.", threat_model="-", paper="-")
    assert "bad" not in list_attacks()


def test_precomputed_features_are_used(digits, digits_model, class_split):
    from opc_core.train.inference import features_and_logits

    fresh = get_attack("fm")(digits_model, digits_model, digits, class_split)
    bank = FeatureBank(digits_model, digits_model, digits, class_split)
    for part, idx, which in (("cal", class_split.cal_idx, "test"), ("forget", class_split.forget_idx, "train")):
        f, z = features_and_logits(digits_model, digits, idx, which)
        for role in ("unlearned", "original"):
            bank.put(role, part, f, z)
    res = get_attack("fm")(digits_model, digits_model, digits, class_split, bank=bank)
    assert bank.seconds == 0.0  # nothing was extracted again
    assert torch.allclose(res.recovered_logits, fresh.recovered_logits, atol=1e-3)
    with pytest.raises(ValueError, match="expected"):
        bank.put("unlearned", "forget", f[:3], z[:3])


@pytest.mark.parametrize("arch", ["resnet18", "vit_tiny"])
def test_fm_hr_on_other_architectures(digits, class_split, arch):
    """FM/HR read only features/head: any registered architecture works (an untrained model maps itself exactly)."""
    from opc_core.models import create_model, list_models

    assert arch in list_models()
    torch.manual_seed(0)
    model = create_model(arch, digits.in_channels, digits.num_classes, digits.image_size).eval()
    cfgs = {"hr": _logit_target("hr")}
    out = run_recovery(model, model, digits, class_split, names=["fm", "hr"], cfgs=cfgs)
    own = 100 - accuracy(model, digits, class_split.forget_idx)
    assert abs(out["fm"]["recovered_ua"] - own) <= 1.0 and abs(out["hr"]["recovered_ua"] - own) <= 1.0


# --- HR: distinct by default, ≡ FM on the logit target --------------------------------------------------------------
def test_hr_default_is_label_refit_and_logit_target_equals_fm(digits, digits_model, class_split):
    assert get_attack("hr").config().target == "onehot"
    c = torch.randn(digits_model.feature_dim, generator=torch.Generator().manual_seed(4)).abs()
    shallow = CollapsedFeatures(digits_model, c, digits.num_classes, selective=True).eval()
    fm = get_attack("fm")(shallow, digits_model, digits, class_split)
    same = get_attack("hr")(shallow, digits_model, digits, class_split, _logit_target("hr"))
    assert torch.equal(fm.recovered_logits.argmax(1), same.recovered_logits.argmax(1))  # identical by construction
    refit = get_attack("hr")(shallow, digits_model, digits, class_split)
    assert refit.details["target"] == "onehot"
    assert not torch.allclose(refit.recovered_logits, same.recovered_logits)  # a different predictor


# --- the diagnostic: where does the forgotten information live? -----------------------------------------------------
class NullSpaceFeatures(nn.Module):
    """Features ``[0 (r dims), f_o(x)]`` under a head that reads only the first r (always-zero) dimensions: the class
    information lies entirely in the head's null space, as OPC on the logits can leave it."""

    def __init__(self, base: nn.Module, r: int, num_classes: int) -> None:
        super().__init__()
        self.base, self.r = base, r
        self.classifier = nn.Linear(r + base.feature_dim, num_classes)
        with torch.no_grad():
            self.classifier.weight[:, r:] = 0.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        f = self.base.features(x)
        return torch.cat([torch.zeros(len(f), self.r), f], dim=1)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_diagnostic_finds_classes_in_the_null_space(digits, digits_model, class_split):
    from opc_core.attacks.recovery.diagnostic import KEYS, head_affine, where_forgotten

    torch.manual_seed(0)
    model = NullSpaceFeatures(digits_model, 10, digits.num_classes).eval()
    w, b, exact = head_affine(model, 10 + digits_model.feature_dim)
    assert exact and torch.allclose(w.float(), model.classifier.weight, atol=1e-5)
    d = where_forgotten(model, digits_model, digits, class_split)
    assert set(KEYS) <= set(d) and d["head_rank"] == 10 and d["feature_dim"] == 10 + digits_model.feature_dim
    original_ua = 100 - accuracy(digits_model, digits, class_split.forget_idx)
    top = _share_of_top_class(digits, class_split.forget_idx)
    assert d["fm_row_ua"] >= 100 - top - 1e-6  # the head's row space holds a constant: one class at most
    assert abs(d["fm_null_ua"] - original_ua) <= 1.0 and abs(d["fm_full_ua"] - original_ua) <= 1.0
    assert d["null_share_forget"] == pytest.approx(100.0)
    assert d["probe_inside"] == pytest.approx(d["probe_inside_original"]) and d["probe_inside"] > 90
    assert d["separation_kept"] == pytest.approx(1.0)  # the same features, padded: nothing contracted


def test_diagnostic_on_a_collapse(digits, digits_model, class_split):
    from opc_core.attacks.recovery.diagnostic import where_forgotten

    c = torch.randn(digits_model.feature_dim, generator=torch.Generator().manual_seed(2)).abs()
    collapsed = CollapsedFeatures(digits_model, c, digits.num_classes, selective=False).eval()
    d = where_forgotten(collapsed, digits_model, digits, class_split)
    chance = d["probe_inside_chance"]
    assert chance == pytest.approx(_share_of_top_class(digits, class_split.forget_idx), abs=0.5)
    assert d["probe_inside"] <= chance + 1e-6 < d["probe_inside_original"] - 50  # one point: nothing to tell apart
    assert d["fisher_forget"] == 0.0 and d["separation_kept"] == 0.0 and d["fisher_forget_original"] > 1
