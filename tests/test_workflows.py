"""The workflows and the one run lifecycle: stored runs with steps, snapshots, checkpoints and metrics, and how every
kind of ending is recorded (done, failed, cancelled, interrupted; a parent finishing its children)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from opc_core.runs import BenchParams, UnlearnParams
from opc_core.runs.lifecycle import Launch, Terminated
from opc_core.runs.lifecycle import run as run_lifecycle
from opc_core.train.inference import features_and_logits
from opc_core.train.zoo import find_checkpoint
from opc_core.workflows import Options, start
from opc_core.workflows.unlearn import N_SNAPSHOTS
from tests.job_fixtures import SleepParams


def test_unlearn_stores_snapshots_in_step_order(store, digits, digits_model):
    seen = []
    params = UnlearnParams(
        "digits",
        "cnn_small",
        "opc",
        checkpoint=str(find_checkpoint("digits", "cnn_small").path),
        forget_classes=[0, 1],
        overrides={"max_steps": 24},
        mia=False,
    )
    out = start(params, store, Options(on_step=seen.append))
    run = store.get(out["run_id"])
    assert run.status == "done" and run.params == params and out["steps"] == 24 and seen[-1].step == 24
    assert [s["step"] for s in store.steps(run.id)][-1] == 24  # a run started here stores its loss curve too
    snaps = np.load(run.artifact_path("snapshots"))
    steps = snaps["steps"].tolist()
    # the original's snapshot (step 0) is taken after the run but stored first; then every ~total/N_SNAPSHOTS steps
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == 24
    assert len(steps) == 1 + 24 // max(1, 24 // N_SNAPSHOTS)
    idx = torch.from_numpy(snaps["idx"])
    original_feats, _ = features_and_logits(digits_model, digits, idx)
    np.testing.assert_allclose(snaps["features"][0], original_feats.numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(snaps["features"][-1], snaps["features"][0])  # the unlearned features moved
    assert set(snaps["labels"][snaps["is_forget"]].tolist()) <= {0, 1}


def test_a_bad_setting_fails_the_run_instead_of_leaving_it_running(store):
    params = UnlearnParams("digits", "cnn_small", "ft", overrides={"epochs": "nan"}, mia=False)
    with pytest.raises(ValueError):
        start(params, store)
    (run,) = store.list()
    assert run.status == "failed" and "epochs" in run.error and run.finished is not None


@pytest.mark.parametrize(
    ("exc", "status", "text"),
    [
        (ValueError("boom"), "failed", "ValueError: boom"),
        (InterruptedError("stop"), "cancelled", "cancelled by request"),
        (KeyboardInterrupt(), "cancelled", "cancelled by Ctrl-C"),
        (Terminated("signal 15"), "interrupted", "interrupted: Terminated"),
        (SystemExit(1), "interrupted", "interrupted: SystemExit"),
    ],
)
def test_every_ending_is_recorded_and_children_are_finished(store, exc, status, text):
    def body(params, ctx):
        ctx.on_step({"step": 1, "total": 5, "losses": {"loss": 1.0}})
        store.create("t_sleep", SleepParams(), parent=ctx.run_id, status="running")  # e.g. a bench's method
        raise exc

    with pytest.raises(type(exc)):
        run_lifecycle(store, SleepParams(), body, Launch(title="parent"))
    parent = next(r for r in store.list() if r.parent is None)
    (child,) = store.list(parent=parent.id)
    assert parent.status == status and text in parent.error and store.steps(parent.id)[0]["step"] == 1
    assert child.status == status and f"parent run {parent.id}" in child.error


def test_bench_runs_children_tags_stages_and_attacks(store):
    params = BenchParams(
        dataset="digits",
        methods=["opc:max_steps=6", "ft:max_steps=4", "retrain:max_steps=3"],
        forget_classes=[0, 1],
        inversion_images=2,
        inversion_settings={"iterations": 3},
        mia=False,
    )
    out = start(params, store)
    bench = store.get(out["run_id"])
    children = store.list(parent=bench.id, oldest_first=True)
    assert bench.status == "done" and [c.status for c in children] == ["done"] * 3
    assert [c.params.name for c in children] == ["opc[max_steps=6]", "ft[max_steps=4]", "retrain[max_steps=3]"]
    assert [c.params.overrides for c in children] == [{"max_steps": "6"}, {"max_steps": "4"}, {"max_steps": "3"}]
    assert [len(store.steps(c.id)) for c in children] == [6, 4, 3]  # every child has its own loss curve
    steps = store.steps(bench.id)
    # the children's steps, numbered one after the other, then the inversion's: 3 iterations on each of 4 models
    assert [s["step"] for s in steps] == list(range(1, 14 + 12))
    assert [s["stage"]["label"] for s in steps] == ["opc[max_steps=6]"] * 6 + ["ft[max_steps=4]"] * 4 + [
        "retrain[max_steps=3]"
    ] * 3 + ["all methods"] * 12
    assert [s["stage"]["phase"] for s in steps] == ["unlearn"] * 13 + ["inversion"] * 12
    assert steps[-1]["total"] == 13 + 12
    rows = {r["method"]: r for r in out["rows"]}
    assert set(rows) == {"opc[max_steps=6]", "ft[max_steps=4]", "retrain[max_steps=3]"}
    for c in children:
        row = rows[c.params.name]
        assert row["run_id"] == c.id and set(row["recovered_ua"]) >= {"fm", "hr"}
        assert row["recovered_ua"]["fm"] == c.metrics["recovery"]["fm"]["recovered_ua"]
        assert row["inversion"]["psnr"] == c.metrics["inversion"]["unlearned"]["psnr"]
    assert bench.artifact_path("inversion").exists() and out["inversion_original"]["psnr"] > 0
