"""The shared training loop: callbacks, cancellation, seeding, schedules, and that it actually learns."""

import threading

import pytest
import torch

from opc_core.models import create_model
from opc_core.train.inference import accuracy
from opc_core.train.loop import (
    Batches,
    LoopOptions,
    Monitor,
    OptimConfig,
    Progress,
    epoch_steps,
    lr_factor,
    planned_steps,
    run_loop,
)
from opc_core.train.zoo import fit_classifier


def _model(data, seed=0):
    torch.manual_seed(seed)
    return create_model("cnn_small", data.in_channels, data.num_classes, data.image_size)


def test_the_loop_learns(digits):
    model = _model(digits)
    fit_classifier(model, digits, torch.arange(len(digits.train_y)), OptimConfig(epochs=6, lr=0.05, batch_size=64))
    assert accuracy(model, digits, split="test") >= 90.0


def test_on_step_receives_named_terms_and_monitor(digits):
    seen, evals = [], []
    model = _model(digits)
    mon = Monitor(every=2, fn=lambda m, step: {"probe": float(step)})
    cfg = OptimConfig(epochs=1, batch_size=256, max_steps=5)

    def on_step(info):
        seen.append(info)
        if info.evals:
            evals.append(info.evals["probe"])

    res = fit_classifier(model, digits, torch.arange(300), cfg, on_step=on_step, monitor=mon)
    assert res.steps == res.total == 2  # 300 images / 256 per batch -> 2 steps in one epoch
    assert [i.step for i in seen] == [1, 2] and all("ce" in i.losses for i in seen)
    assert all(torch.isfinite(torch.tensor(i.losses["ce"])) for i in seen)
    assert evals == [2.0] and seen[-1].elapsed_s > 0


def test_stop_event_ends_the_loop_early(digits):
    stop = threading.Event()
    steps = []

    def on_step(info):
        steps.append(info.step)
        if info.step == 3:
            stop.set()

    res = fit_classifier(
        _model(digits), digits, torch.arange(len(digits.train_y)), OptimConfig(epochs=5), on_step=on_step, stop=stop
    )
    assert res.stopped and res.steps == 3 < res.total and steps == [1, 2, 3]


def test_same_seed_same_weights(digits):
    cfg = OptimConfig(epochs=1, max_steps=3, seed=7)
    a, b = _model(digits, 1), _model(digits, 1)
    fit_classifier(a, digits, torch.arange(200), cfg)
    fit_classifier(b, digits, torch.arange(200), cfg)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_schedule_and_planned_steps():
    assert lr_factor("constant", 5, 10) == 1.0
    assert lr_factor("cosine", 0, 10) == 1.0 and lr_factor("cosine", 10, 10) == pytest.approx(0.0)
    assert planned_steps(OptimConfig(epochs=2.5), 4) == 10
    assert planned_steps(OptimConfig(epochs=2.5, max_steps=3), 4) == 3
    assert planned_steps(OptimConfig(epochs=0.01), 4) == 1  # at least one step
    assert [epoch_steps(n, 8) for n in (1, 8, 9, 16, 17)] == [1, 1, 2, 2, 3]
    assert epoch_steps(5, 4096) == 1  # a batch never exceeds the set
    with pytest.raises(ValueError, match="cosine"):
        lr_factor("bogus", 0, 1)


def test_batches_cover_each_epoch(digits):
    idx = torch.arange(10, 30)
    b = Batches(digits, idx, batch_size=8, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([next(b)[1] for _ in range(b.steps_per_epoch)])
    assert len(seen) == 20
    torch.testing.assert_close(seen.sort().values, digits.train_y[idx].sort().values)
    with pytest.raises(ValueError):
        Batches(digits, torch.arange(0), 8)


def test_params_subset_only_changes_those(digits):
    model = _model(digits)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = lambda m, batch, state: (torch.nn.functional.cross_entropy(m(batch["t"][0]), batch["t"][1]), {})  # noqa: E731
    stream = {"t": Batches(digits, torch.arange(64), 32)}
    cfg = OptimConfig(weight_decay=0, max_steps=2)
    res = run_loop(model, loss, stream, cfg, LoopOptions(params=model.classifier.parameters()))
    assert res.steps == res.total == 2
    after = model.state_dict()
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    assert torch.equal(before["block1.0.0.weight"], after["block1.0.0.weight"])


def test_loss_sees_progress_and_first_stream_sets_the_epoch(digits):
    """The loss's third argument tracks step and total; an epoch is a pass over the first stream, not the others."""
    model = _model(digits)
    seen, infos = [], []

    def loss(m, batch, progress):
        seen.append((progress.step, progress.total, progress.steps_per_epoch, progress.tag))
        x, y = batch["a"]
        return torch.nn.functional.cross_entropy(m(x), y), {"n_b": float(len(batch["b"][1]))}

    class Tagged(Progress):
        tag = "mine"

    streams = {"a": Batches(digits, torch.arange(40), 16), "b": Batches(digits, torch.arange(100, 400), 16)}
    res = run_loop(model, loss, streams, OptimConfig(epochs=2), LoopOptions(on_step=infos.append), Tagged())
    assert res.total == 6 and seen == [(i, 6, 3, "mine") for i in range(6)]  # 2 epochs x ceil(40 / 16) batches
    assert [i.epoch for i in infos] == pytest.approx([i / 3 for i in range(1, 7)])
    assert all(i.losses == {"n_b": 16.0} for i in infos)
    with pytest.raises(ValueError, match="at least one batch stream"):
        run_loop(model, loss, {}, OptimConfig())
