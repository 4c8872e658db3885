"""The run store: rows, status transitions, streamed steps, metrics, artifacts, concurrency and restart recovery."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from opc_core.runs import AttackParams, TrainParams, UnlearnParams, schema
from opc_core.runs.liveness import mark_interrupted, pid_alive
from opc_core.runs.run import FINAL
from opc_core.runs.store import RunStore


def _u(**kw) -> UnlearnParams:
    return UnlearnParams(**{"dataset": "digits", "model": "cnn_small", "method": "opc", **kw})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid no longer exists
    return proc.pid


def test_create_get_list(store):
    a = store.create("unlearn", _u(overrides={"lr": 0.01}), split={"forget_classes": [3]}, title="opc on digits")
    b = store.create("attack", AttackParams("recovery", [a.id]), parent=a.id)
    c = store.create("unlearn", _u(method="ga"), status="running")
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", a.id) and len({a.id, b.id, c.id}) == 3
    got = store.get(a.id)
    assert (got.kind, got.status, got.title) == ("unlearn", "queued", "opc on digits")
    assert got.params == _u(overrides={"lr": 0.01}) and got.split == {"forget_classes": [3]}
    assert got.config == dataclasses.asdict(_u(overrides={"lr": 0.01}))  # stored as-is, read back typed
    assert got.started is None and got.finished is None and got.metrics == {} and not got.cancel_requested
    assert store.get(c.id).started is not None and store.get(c.id).pid == os.getpid()  # created running: ours
    assert [r.id for r in store.list()] == [c.id, b.id, a.id]  # newest first
    assert [r.id for r in store.list(kind="unlearn")] == [c.id, a.id]
    assert [r.id for r in store.list(status="queued", limit=1)] == [b.id]
    assert [r.id for r in store.list(parent=a.id)] == [b.id]
    assert [r.id for r in store.list(status=("queued", "running"), oldest_first=True)] == [a.id, b.id, c.id]
    with pytest.raises(KeyError, match="no run"):
        store.get("nope")


def test_list_gives_the_split_summary_and_get_the_whole_split(store):
    split = {
        "mode": "class",
        "forget_idx": [1, 2],
        "retain_idx": [0, 3],
        "test_idx": [0, 1],
        "cal_idx": [1],
        "forget_classes": [1],
        "forget_ratio": None,
        "seed": 4,
    }
    run = store.create("unlearn", _u(), split=split)
    store.create("unlearn", _u())  # no split at all
    assert store.get(run.id).split == split
    listed = {r.id: r.split for r in store.list()}
    assert listed[run.id] == {"mode": "class", "forget_classes": [1], "forget_ratio": None, "seed": 4}
    assert sorted(listed.values(), key=bool)[0] is None


def test_status_transitions_set_timestamps(store):
    run = store.create("train", TrainParams("digits", "cnn_small"))
    t0 = time.time()
    store.set_status(run.id, "running", pid=os.getpid())
    r = store.get(run.id)
    assert r.status == "running" and r.pid == os.getpid() and t0 <= r.started <= time.time() and r.finished is None
    assert not store.set_status(run.id, "cancelled", expect="queued")  # compare-and-set refuses
    store.set_status(run.id, "failed", error="ValueError: boom")
    r = store.get(run.id)
    assert r.status == "failed" and r.final and r.error == "ValueError: boom" and r.finished >= r.started
    assert r.duration_s is not None and r.duration_s >= 0
    with pytest.raises(ValueError, match="unknown run status"):
        store.set_status(run.id, "exploded")
    with pytest.raises(KeyError):
        store.set_status("missing", "done")
    assert FINAL == {"done", "failed", "cancelled", "interrupted"}


def test_steps_append_and_read_after(store):
    run = store.create("unlearn", _u())
    for step in range(1, 6):
        store.append_step(
            run.id, step, 5, {"loss": 1.0 / step}, elapsed_s=0.1 * step, evals={"ua": 50.0} if step == 5 else None
        )
    steps = store.steps(run.id)
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5] and steps[1]["losses"] == {"loss": 0.5}
    assert [s["step"] for s in store.steps(run.id, after=3)] == [4, 5]
    assert store.steps(run.id, after=3)[-1]["evals"] == {"ua": 50.0} and store.steps(run.id, after=5) == []
    progress = store.get(run.id).progress
    assert progress["step"] == 5 and progress["total"] == 5 and progress["elapsed_s"] == pytest.approx(0.5)
    store.append_step(run.id, 5, 5, {"loss": 9.0}, 0.6)  # a repeated step replaces the record
    assert len(store.steps(run.id)) == 5 and store.steps(run.id, after=4)[0]["losses"] == {"loss": 9.0}


def test_metrics_merge_and_nan_becomes_null(store):
    run = store.create("unlearn", _u(overrides={"lr": float("nan")}))
    store.update_metrics(run.id, {"ua": 1.5, "per_class": {"0": 99.0}})
    store.update_metrics(run.id, {"per_class": [1, float("inf")], "mia": float("nan"), "ta": torch.tensor(0.25)})
    store.append_step(run.id, 1, 1, {"loss": float("nan")}, 0.1)
    r = store.get(run.id)
    assert r.metrics == {"ua": 1.5, "per_class": [1, None], "mia": None, "ta": 0.25}
    assert r.config["overrides"] == {"lr": None} and store.steps(r.id)[0]["losses"] == {"loss": None}
    con = sqlite3.connect(store.db_path)
    texts = con.execute("SELECT config, metrics, progress FROM runs").fetchone()
    con.close()

    def strict(const):
        raise AssertionError(f"non-standard JSON constant {const}")

    for text in texts:  # strict JSON: no NaN / Infinity tokens
        json.loads(text, parse_constant=strict)


def test_artifacts_and_delete(store, tmp_path):
    run = store.create("unlearn", _u())
    folder = store.artifact_dir(run.id)
    assert folder.is_dir() and folder == store.home / "runs" / run.id
    (folder / "model.safetensors").write_bytes(b"x")
    outside = tmp_path / "elsewhere.npz"
    outside.write_bytes(b"y")
    store.add_artifact(run.id, "checkpoint", folder / "model.safetensors")
    store.add_artifact(run.id, "external", outside)
    r = store.get(run.id)
    assert r.artifacts["checkpoint"] == "model.safetensors"  # relative inside the run folder
    assert r.artifact_path("checkpoint") == folder / "model.safetensors" and r.artifact_path("missing") is None
    assert r.artifact_path("external") == outside.resolve()
    assert r.to_dict()["artifacts"] == r.artifacts
    store.append_step(run.id, 1, 1, {"loss": 1.0}, 0.1)
    store.delete(run.id)
    assert not folder.exists() and store.steps(run.id) == [] and outside.exists()
    with pytest.raises(KeyError):
        store.get(run.id)
    live = store.create("unlearn", _u(), status="running", pid=os.getpid())
    with pytest.raises(ValueError, match="cancel it"):
        store.delete(live.id)


def test_cancel_flag(store):
    run = store.create("unlearn", _u())
    assert not store.cancel_requested(run.id)
    store.request_cancel(run.id)
    assert store.cancel_requested(run.id) and store.get(run.id).cancel_requested


def test_concurrent_writer_and_readers_do_not_lock(store):
    run = store.create("unlearn", _u(), status="running")
    errors: list[BaseException] = []
    n = 200

    def writer():
        try:
            for step in range(1, n + 1):
                store.append_step(run.id, step, n, {"loss": float(step)}, 0.01 * step)
                if step % 20 == 0:
                    store.update_metrics(run.id, {f"m{step}": step})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    other = RunStore(store.home)  # a second store object on the same file: separate connections
    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while thread.is_alive() or reads < 5:
        steps = other.steps(run.id)
        assert [s["step"] for s in steps] == list(range(1, len(steps) + 1))  # a prefix, never half a write
        other.list()
        other.get(run.id)
        reads += 1
    thread.join()
    assert not errors, errors
    assert len(other.steps(run.id)) == n and len(other.get(run.id).metrics) == n // 20 and reads > 5


def test_pid_alive():
    assert pid_alive(os.getpid()) and not pid_alive(_dead_pid()) and not pid_alive(None)
    if Path("/proc/self/stat").exists():  # a live process that started after the pid was recorded: a reused pid
        assert pid_alive(os.getpid(), since=time.time())
        assert not pid_alive(os.getpid(), since=time.time() - 10 * 365 * 86400)


def test_mark_interrupted(store):
    dead = _dead_pid()
    lost = store.create("unlearn", _u(), status="running", pid=dead)
    alive = store.create("unlearn", _u(), status="running", pid=os.getpid())
    orphan = store.create("unlearn", _u(), status="queued", pid=dead)  # its server is gone
    external = store.create("unlearn", _u(), status="queued")  # queued by other code (no owner pid): left alone
    finished = store.create("unlearn", _u(), status="done", pid=dead)
    assert sorted(mark_interrupted(store)) == sorted([lost.id, orphan.id])
    r = store.get(lost.id)
    assert r.status == "interrupted" and "restarted" in r.error and r.finished is not None
    assert "exited before the run started" in store.get(orphan.id).error
    assert [store.get(i).status for i in (alive.id, external.id, finished.id)] == ["running", "queued", "done"]
    assert mark_interrupted(store) == []


def test_unknown_parameters_are_refused_and_kinds_must_be_registered(store):
    with pytest.raises(ValueError, match="unknown unlearn parameter.*valid: dataset"):
        store.create("unlearn", {"dataset": "digits", "model": "cnn_small", "method": "opc", "lrr": 1})
    with pytest.raises(KeyError, match="valid names"):
        store.create("no_such_kind", {})
    with pytest.raises(TypeError, match="takes UnlearnParams"):
        store.create("unlearn", TrainParams("digits", "cnn_small"))
    assert store.list() == []


def test_schema_1_configs_are_upgraded_to_typed_records(tmp_path):
    """A store written before typed records (four config shapes) opens with every readable config typed."""
    home = tmp_path / "old"
    home.mkdir()
    con = sqlite3.connect(home / "runs.sqlite")
    con.executescript(schema.SCHEMA.replace(", stage TEXT", "") + "PRAGMA user_version=1;")
    old = {
        "job": (
            "unlearn",
            {
                "task": "unlearn",
                "target": "opc_core.tasks:unlearn_task",
                "params": {"dataset": "digits", "model": "cnn_small", "method": "ft", "seed": 3},
            },
        ),
        "cli": (
            "unlearn",
            {
                "method": "opc",
                "dataset": "digits",
                "model": "cnn_small",
                "seed": 0,
                "forget_classes": [0, 1],
                "forget_ratio": None,
                "config": {"lr": 0.1},
                "original_checkpoint": "x.safetensors",
            },
        ),
        "bench": (
            "unlearn",
            {"method": "opc", "label": "opc[layer=features]", "dataset": "digits", "model": "cnn_small", "bench": "b1"},
        ),
        "inv": ("attack", {"attack": "inversion", "run_ids": ["r1"], "settings": {"iterations": 5}}),
        "junk": ("unlearn", {"nothing": "useful"}),
    }
    for i, (run_id, (kind, config)) in enumerate(old.items()):
        con.execute(
            "INSERT INTO runs (id, kind, status, config, created) VALUES (?, ?, 'done', ?, ?)",
            (run_id, kind, json.dumps(config), float(i)),
        )
    con.commit()
    con.close()
    store = RunStore(home)
    assert store.get("job").params == UnlearnParams("digits", "cnn_small", "ft", seed=3)
    assert store.get("cli").params == UnlearnParams("digits", "cnn_small", "opc", forget_classes=[0, 1])
    assert store.get("bench").params.name == "opc[layer=features]"
    assert store.get("inv").params == AttackParams("inversion", ["r1"], settings={"iterations": 5})
    with pytest.raises(ValueError, match="unknown unlearn parameter"):
        _ = store.get("junk").params  # unreadable: left as it was, and reading it typed is an error, not a guess
    stage = {"label": "ft", "phase": "unlearn", "index": 0, "count": 1}
    store.append_steps("job", [{"step": 1, "total": 2, "losses": {"ce": 1.0}, "elapsed_s": 0.1, "stage": stage}])
    assert store.steps("job")[0]["stage"] == stage and store.get("job").progress["stage"] == stage


def test_a_corrupt_store_or_a_file_as_home_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "runs.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="runs.sqlite is not a readable run store"):
        RunStore(bad)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        RunStore(tmp_path / "afile")


def test_a_row_with_bad_json_is_skipped_and_named(store):
    good, bad = store.create("unlearn", _u()), store.create("unlearn", _u(method="ft"))
    con = sqlite3.connect(store.db_path)
    con.execute("UPDATE runs SET metrics = '{not json' WHERE id = ?", (bad.id,))
    con.commit()
    con.close()
    assert [r.id for r in store.list()] == [good.id]
    assert bad.id in store.unreadable and "metrics is not valid JSON" in store.unreadable[bad.id]
    with pytest.raises(ValueError, match=f"run {bad.id}"):
        store.get(bad.id)
