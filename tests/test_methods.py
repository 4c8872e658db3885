"""Every registered unlearning method: a 2-step dry run on digits, cancellation, no side effects; plus known
behaviours of single methods (OPC contracts the norm, SalUn moves only masked weights, EU-k/CF-k freeze the bottom)."""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest
import torch

from opc_core.data import make_split
from opc_core.methods import (
    Plan,
    UnlearnConfig,
    describe_fields,
    get_method,
    list_methods,
    make_config,
    register_method,
)
from opc_core.methods.common import wrong_labels
from opc_core.train.inference import features_and_logits
from opc_core.train.loop import Monitor

METHODS = list_methods()


@pytest.fixture(scope="module")
def class_split(digits):
    return make_split(digits, forget_classes=[0, 1], seed=0)


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_registry_order_and_count():
    assert METHODS[0] == "opc"
    assert set(METHODS) >= {
        "opc",
        "retrain",
        "ft",
        "ga",
        "ngd",
        "neggrad_plus",
        "rl",
        "salun",
        "l1_sparse",
        "be",
        "bt",
        "euk",
        "cfk",
        "scrub",
    }


@pytest.mark.parametrize("name", METHODS)
def test_two_steps_no_side_effects(name, digits, digits_model, class_split):
    before = _snapshot(digits_model)
    calls = []
    cfg = make_config(name, {"max_steps": 2, "batch_size": 32})
    out = get_method(name)(digits_model, digits, class_split, cfg, on_step=calls.append)
    assert [c.step for c in calls] == [1, 2]
    for info in calls:
        assert "loss" in info.losses and len(info.losses) >= 2, info.losses  # "loss" plus the method's own terms
        assert all(math.isfinite(v) for v in info.losses.values()), info.losses
    assert _same_state(before, _snapshot(digits_model)), "the input model was modified"
    assert out is not digits_model and type(out) is type(digits_model)
    after = out.state_dict()
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert not _same_state(before, _snapshot(out)), "two steps changed nothing"
    logits = out(digits.normalize(digits.test_x[:16]))
    assert logits.shape == (16, digits.num_classes) and torch.isfinite(logits).all()
    assert all(p.requires_grad for p in out.parameters())


@pytest.mark.parametrize("name", METHODS)
def test_stop_event_ends_run(name, digits, digits_model, class_split):
    stop = threading.Event()
    steps = []

    def on_step(info):
        steps.append(info.step)
        if info.step == 1:
            stop.set()

    cfg = make_config(name, {"max_steps": 5, "batch_size": 32})
    get_method(name)(digits_model, digits, class_split, cfg, on_step=on_step, stop=stop)
    assert steps == [1]


@pytest.mark.parametrize("name", METHODS)
def test_planned_steps_is_what_the_loop_runs(name, digits, digits_model, class_split):
    spec = get_method(name)
    cfg = make_config(name, {"epochs": 0.2, "batch_size": 64})
    steps = []
    spec(digits_model, digits, class_split, cfg, on_step=steps.append)
    planned = spec.planned_steps(cfg, class_split)
    assert [s.step for s in steps] == list(range(1, planned + 1)) and steps[-1].total == planned
    forget_only = name in ("ga", "be")  # an epoch is a pass over the forget set
    n = len(class_split.forget_idx if forget_only else class_split.retain_idx)
    assert planned == max(1, round(0.2 * math.ceil(n / 64)))
    assert spec.planned_steps(dataclasses.replace(cfg, max_steps=1), class_split) == 1


@pytest.mark.parametrize("name", METHODS)
def test_config_fields_documented(name):
    spec = get_method(name)
    assert spec.description and spec.paper
    for f in describe_fields(spec.config):
        assert f["help"], f"{name}.{f['name']} has no help text"
        assert f["default"] is not dataclasses.MISSING, f"{name}.{f['name']} has no default"
    spec.config()  # all defaults valid together


def _mean_norms(model, data, idx) -> tuple[float, float]:
    feats, logits = features_and_logits(model, data, idx)
    return feats.norm(dim=1).mean().item(), logits.norm(dim=1).mean().item()


@pytest.mark.parametrize("layer", ["logits", "features"])
def test_opc_contracts_forget_norm(layer, digits, digits_model, class_split):
    f0, z0 = _mean_norms(digits_model, digits, class_split.forget_idx)
    cfg = make_config("opc", {"layer": layer, "max_steps": 30, "epochs": 50, "lr": 0.02, "batch_size": 64})
    out = get_method("opc")(digits_model, digits, class_split, cfg)
    f1, z1 = _mean_norms(out, digits, class_split.forget_idx)
    assert z1 < 0.5 * z0, (z0, z1)  # the logit norm falls either way (the head follows the features)
    if layer == "features":
        assert f1 < 0.5 * f0, (f0, f1)
    # the retain set keeps its representation scale
    fr0, _ = _mean_norms(digits_model, digits, class_split.retain_idx)
    fr1, _ = _mean_norms(out, digits, class_split.retain_idx)
    assert fr1 > 0.3 * fr0


def test_salun_moves_only_salient_weights(digits, digits_model, class_split):
    cfg = make_config("salun", {"max_steps": 3, "batch_size": 32, "sparsity": 0.3, "weight_decay": 5e-3})
    out = get_method("salun")(digits_model, digits, class_split, cfg)
    before = dict(digits_model.named_parameters())
    moved = sum(int((p.detach() != before[n].detach()).sum()) for n, p in out.named_parameters())
    total = sum(p.numel() for p in out.parameters())
    assert 0.1 * total < moved <= 0.3 * total + 1, (moved, total)  # weight decay and momentum leave the rest alone


def test_salun_leaves_no_mask_on_the_returned_model(digits, digits_model, class_split):
    out = get_method("salun")(digits_model, digits, class_split, make_config("salun", {"max_steps": 1}))
    out.zero_grad(set_to_none=True)
    sum(p.sum() for p in out.parameters()).backward()
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in out.parameters())  # no gradient hook left behind


def test_be_monitor_sees_the_pruned_head(digits, digits_model, class_split):
    widths = []
    mon = Monitor(1, lambda m, step: {"k": float(m(digits.normalize(digits.test_x[:4])).shape[1])})
    cfg = make_config("be", {"max_steps": 2, "batch_size": 32})
    out = get_method("be")(
        digits_model, digits, class_split, cfg, on_step=lambda i: widths.append(i.evals["k"]), monitor=mon
    )
    assert widths == [digits.num_classes] * 2 and type(out.classifier) is torch.nn.Linear


def test_register_method_checks_its_declaration():
    with pytest.raises(TypeError, match="UnlearnConfig"):
        register_method("bad", dataclasses.make_dataclass("C", [], frozen=True), "x")
    with pytest.raises(ValueError, match="streams"):
        register_method("bad", UnlearnConfig, "x", plan=Plan(streams=("everything",)))
    with pytest.raises(ValueError, match="streams"):
        register_method("bad", UnlearnConfig, "x", plan=Plan(streams=()))
    assert "bad" not in list_methods()


@pytest.mark.parametrize("name", ["euk", "cfk"])
def test_top_k_methods_freeze_the_bottom(name, digits, digits_model, class_split):
    out = get_method(name)(digits_model, digits, class_split, make_config(name, {"max_steps": 3, "k": 1}))
    top = {n for n, _ in digits_model.stages()[-1:]} | {"classifier"}
    old, new = digits_model.state_dict(), out.state_dict()
    for key in old:
        unchanged = torch.equal(old[key], new[key])
        if key.split(".")[0] in top:
            continue
        assert unchanged, f"{name} changed frozen tensor {key}"  # weights and BatchNorm statistics alike
    assert any(not torch.equal(old[k], new[k]) for k in old if k.startswith("classifier"))


@pytest.mark.parametrize("name", ["ga", "be"])
def test_freeze_bn_keeps_running_statistics(name, digits, digits_model, class_split):
    def stats(model):
        return {k: v for k, v in model.state_dict().items() if "running_" in k}

    for freeze in (True, False):
        cfg = make_config(name, {"max_steps": 3, "freeze_bn": freeze})
        out = get_method(name)(digits_model, digits, class_split, cfg)
        assert _same_state(stats(digits_model), stats(out)) == freeze


def test_euk_rejects_too_large_k(digits, digits_model, class_split):
    with pytest.raises(ValueError, match="k must be"):
        get_method("euk")(digits_model, digits, class_split, make_config("euk", {"max_steps": 1, "k": 40}))


def test_be_refuses_random_split(digits, digits_model):
    split = make_split(digits, forget_ratio=0.1, seed=0)
    with pytest.raises(ValueError, match="class-wise"):
        get_method("be")(digits_model, digits, split, make_config("be", {"max_steps": 1}))


def test_wrong_labels_never_true():
    y = torch.arange(10).repeat(500)  # (5000,)
    gen = torch.Generator().manual_seed(0)
    wrong = wrong_labels(y, 10, gen)
    assert (wrong != y).all() and wrong.min() >= 0 and wrong.max() <= 9
    assert len(torch.unique(wrong[y == 3])) == 9  # every other class is drawn


def test_make_config_parses_and_validates():
    cfg = make_config("opc", ["lam=2.5", "layer=features", "p=2", "augment=true", "epochs=3"])
    assert (cfg.lam, cfg.layer, cfg.p, cfg.augment, cfg.epochs) == (2.5, "features", 2, True, 3.0)
    with pytest.raises(ValueError, match="unknown setting"):
        make_config("opc", {"lambda": 1.0})
    with pytest.raises(ValueError, match="lam"):
        make_config("opc", ["lam=-1"])
    with pytest.raises(ValueError, match="layer"):
        make_config("opc", {"layer": "block2"})
    with pytest.raises(ValueError, match="key=value"):
        make_config("opc", ["lam"])
    with pytest.raises(KeyError, match="valid names"):
        make_config("no_such_method")


def test_config_type_checked(digits, digits_model, class_split):
    with pytest.raises(TypeError):
        get_method("ft")(digits_model, digits, class_split, make_config("ga"))


def test_full_fashion_mnist_uses_the_subsets_presets():
    """presets.json may name another dataset instead of a table: the full Fashion-MNIST takes its subset's presets,
    and a user's override still wins."""
    for name in list_methods():
        assert make_config(name, {}, "fashion_mnist") == make_config(name, {}, "fashion_mnist_small")
    assert make_config("opc_features", {}, "fashion_mnist").lam == 1.0
    assert make_config("retrain", {"epochs": 2}, "fashion_mnist").epochs == 2.0
    assert make_config("retrain", {}, "no_such_dataset") != make_config("retrain", {}, "fashion_mnist")
