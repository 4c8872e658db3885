"""Background jobs: worker processes, the FIFO queue, cancel, crashes, failures and restart recovery.

Worker start costs ~2-3 s here (the child imports torch), so the tests that start workers keep their job counts small;
the pure ``execute`` paths run in-process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from opc_core.jobs.manager import WARM_MAX_FAILURES, JobManager, _exit_text
from opc_core.jobs.worker import _PipeStop, _read_line
from opc_core.workflows import WORKFLOWS, execute, workflow
from tests import job_fixtures

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0  # generous: the shared CPU may be slow; every wait polls and returns as soon as it can


@pytest.fixture
def manager(store, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # workers get the parent's sys.path: `tests.job_fixtures` must import
    monkeypatch.setenv("OPC_LAB_PLUGINS", job_fixtures.PLUGIN)  # ... and register its run kinds
    m = JobManager(store)
    yield m
    m.shutdown(wait=True, cancel_running=True)


def _until(predicate, timeout: float = TIMEOUT, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def test_registry():
    assert {"train", "unlearn", "attack", "bench", "t_sleep"} <= set(WORKFLOWS.names())
    with pytest.raises(ValueError, match="already registered"):
        workflow("t_sleep")(job_fixtures.quick)
    with pytest.raises(KeyError, match="valid names"):
        workflow("t_no_record")(job_fixtures.quick)  # a workflow needs its typed record first


def test_quick_job_finishes_done_in_a_worker(manager, store):
    run_id = manager.submit("t_quick", {"echo": [1, 2]}, title="quick one")
    run = manager.wait(run_id, TIMEOUT)
    assert run.status == "done" and run.error is None, run.error
    assert run.metrics == {"answer": 42, "echo": [1, 2]} and run.title == "quick one"
    assert run.config == {"echo": [1, 2]} and run.params == job_fixtures.QuickParams(echo=[1, 2])
    assert run.pid not in (None, os.getpid()) and run.created <= run.started <= run.finished
    assert run.artifact_path("answer").read_text() == "[1, 2]"
    assert f"worker pid {run.pid}" in (run.folder / "log.txt").read_text()
    with pytest.raises(KeyError, match="valid names"):
        manager.submit("no_such_task", {})
    with pytest.raises(ValueError, match="unknown t_sleep parameter"):
        manager.submit("t_sleep", {"n": 3, "dtt": 0.1})  # a misspelt parameter is refused, never dropped


def test_fifo_second_job_waits_queued(manager, store):
    first = manager.submit("t_sleep", {"n": 5, "dt": 0.1})
    second = manager.submit("t_quick", {})
    _until(lambda: store.get(first).progress.get("step"), what="first job's steps")  # first is truly executing
    assert store.get(second).status == "queued"
    assert [r.id for r in manager.queued()] == [second] and [r.id for r in manager.running()] == [first]
    a, b = manager.wait(first, TIMEOUT), manager.wait(second, TIMEOUT)
    assert (a.status, b.status) == ("done", "done") and a.metrics == {"steps_done": 5}
    assert [s["step"] for s in store.steps(first)] == [1, 2, 3, 4, 5]
    assert b.started >= a.finished  # one at a time, in order
    assert manager.queued() == [] and _until(lambda: manager.running() == [], 5, "reaping")


def test_cancel_queued_then_running(manager, store):
    long = manager.submit("t_sleep", {"n": 500, "dt": 0.05})
    waiting = manager.submit("t_quick", {})
    manager.cancel(waiting)  # queued: cancelled at once, never started
    w = store.get(waiting)
    assert w.status == "cancelled" and w.started is None and w.metrics == {}
    _until(lambda: store.get(long).progress.get("step", 0) >= 3, what="three steps")
    t0 = time.monotonic()
    manager.cancel(long)
    run = manager.wait(long, 5)
    assert run.status == "cancelled" and time.monotonic() - t0 < 3 and "cancelled by request" in run.error
    steps = store.steps(long)
    assert 3 <= len(steps) < 500 and steps[-1]["step"] == run.progress["step"] == len(steps)
    assert store.get(waiting).status == "cancelled" and store.steps(waiting) == []


def test_crashing_worker_fails_and_the_queue_goes_on(manager, store):
    crash = manager.submit("t_crash", {})
    after = manager.submit("t_quick", {})
    c = manager.wait(crash, TIMEOUT)
    assert c.status == "failed" and "worker exited with code 3" in c.error
    assert "about to crash" in c.error  # the tail of the worker's own output, kept in <run>/worker.log
    assert manager.wait(after, TIMEOUT).status == "done"


def test_execute_in_process(store, monkeypatch):
    """The pure run function (what a Ray task would call): failure, success, already final, pre-cancelled."""
    monkeypatch.syspath_prepend(str(ROOT))

    failing = store.create("t_fail", {}).id
    execute(failing, str(store.home))
    r = store.get(failing)
    assert r.status == "failed" and r.error.startswith("ValueError: boom") and "Traceback" in r.error
    assert r.pid == os.getpid() and r.finished is not None
    ok = store.create("t_sleep", job_fixtures.SleepParams(n=3, dt=0.0)).id
    execute(ok, str(store.home))
    r = store.get(ok)
    assert r.status == "done" and r.metrics == {"steps_done": 3} and len(store.steps(ok)) == 3
    execute(ok, str(store.home))  # already final: not run again
    assert store.get(ok).finished == r.finished
    pre = store.create("t_sleep", {"n": 3}).id
    store.request_cancel(pre)
    execute(pre, str(store.home))
    assert store.get(pre).status == "cancelled" and store.steps(pre) == []


def test_worker_stop_pipe_and_server_exit(store, monkeypatch):
    """The worker's stop channel: ``stop`` on the pipe cancels; end-of-file (server gone) interrupts."""
    monkeypatch.syspath_prepend(str(ROOT))
    r_fd, w_fd = os.pipe()
    stop = _PipeStop(r_fd)
    os.write(w_fd, b"st")
    os.write(w_fd, b"op\n")
    assert _until(stop.is_set, 5, "stop") and stop.reason is None
    os.close(w_fd)
    r2, w2 = os.pipe()
    gone = _PipeStop(r2)
    run_id = store.create("t_sleep", {"n": 400, "dt": 0.01}).id
    worker = threading.Thread(target=execute, args=(run_id, str(store.home), gone))
    worker.start()
    _until(lambda: store.get(run_id).progress.get("step", 0) >= 2, 10, "steps")
    os.close(w2)  # the server process died: its end of the pipe closes
    worker.join(5)
    r = store.get(run_id)
    assert r.status == "interrupted" and "server exited" in r.error and r.progress["step"] < 400


def test_exit_text_names_the_signal(tmp_path):
    assert "killed by signal SIGKILL" in _exit_text(-9, tmp_path / "absent.log")
    (tmp_path / "w.log").write_text("Fatal Python error: Segmentation fault\n")
    assert _exit_text(-11, tmp_path / "w.log").endswith("Fatal Python error: Segmentation fault")


def test_restart_recovery_marks_dead_runs_interrupted(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = store.create("t_quick", {}, status="running", pid=proc.pid)
    orphan = store.create("t_quick", {}, status="queued", pid=proc.pid)
    alive = store.create("t_quick", {}, status="running", pid=os.getpid())
    m = JobManager(store)
    try:
        assert sorted(m.recovered) == sorted([dead.id, orphan.id])
        assert store.get(dead.id).status == "interrupted" and "restarted" in store.get(dead.id).error
        assert store.get(orphan.id).status == "interrupted" and store.get(alive.id).status == "running"
        assert m.queued() == [] and m.running() == []
    finally:
        m.shutdown(wait=True)


@pytest.fixture
def warm_manager(store, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setenv("OPC_LAB_PLUGINS", job_fixtures.PLUGIN)
    m = JobManager(store, warm=True)
    yield m
    m.shutdown(wait=True, cancel_running=True)


def test_warm_worker_takes_the_next_job_and_is_replaced(warm_manager, store):
    spare = _until(warm_manager.spare_pid, what="a warm worker")
    crash_id = warm_manager.submit("t_crash", {})
    run = warm_manager.wait(crash_id, TIMEOUT)
    assert run.pid == spare and run.status == "failed"
    assert "code 3" in run.error and "about to crash" in run.error  # its output went to the run's worker.log
    second = _until(warm_manager.spare_pid, what="a new warm worker")  # started again once nothing runs
    assert second != spare
    run = warm_manager.wait(warm_manager.submit("t_quick", {"echo": "warm"}), TIMEOUT)
    assert run.status == "done" and run.pid == second and run.metrics["echo"] == "warm"
    assert warm_manager.warm_failures == 0  # both spares died with a run, not before


def test_warm_worker_cancel_and_shutdown(warm_manager, store):
    spare = _until(warm_manager.spare_pid, what="a warm worker")
    run_id = warm_manager.submit("t_sleep", {"n": 2000, "dt": 0.01})
    _until(lambda: store.get(run_id).progress.get("step", 0) >= 3, what="steps")
    warm_manager.cancel(run_id)
    run = warm_manager.wait(run_id, TIMEOUT)
    assert run.pid == spare and run.status == "cancelled" and run.progress["step"] < 2000
    nxt = _until(warm_manager.spare_pid, what="a new warm worker")
    proc = warm_manager._spare
    warm_manager.shutdown(wait=True)
    assert proc.pid == nxt and proc.returncode == 0  # end-of-file on its pipe: it exits without a run


def test_warm_workers_that_keep_dying_are_given_up(warm_manager, store):
    for _ in range(WARM_MAX_FAILURES):
        pid = _until(warm_manager.spare_pid, what="a warm worker")
        os.kill(pid, 9)
        _until(
            lambda p=pid: warm_manager.spare_pid() not in (None, p) or warm_manager.warm_failures >= 3, what="restart"
        )
    _until(lambda: warm_manager.warm_failures == WARM_MAX_FAILURES, what="the failure count")
    time.sleep(1.5)  # an idle dispatcher tick or more
    assert warm_manager.spare_pid() is None
    run = warm_manager.wait(warm_manager.submit("t_quick", {}), TIMEOUT)  # cold workers still run jobs
    assert run.status == "done"


def test_read_line_and_stop_already_read():
    r_fd, w_fd = os.pipe()
    os.write(w_fd, b"run 20261125-000000-abcdef\nst")
    os.write(w_fd, b"op\n")
    line, rest = _read_line(r_fd)
    assert line == b"run 20261125-000000-abcdef"
    stop = _PipeStop(r_fd, rest)  # "st" was read with the line, "op" comes through the pipe
    assert _until(stop.is_set, 5, "stop") and stop.reason is None
    os.close(w_fd)
    r2, w2 = os.pipe()
    os.close(w2)
    assert _read_line(r2) == (b"", b"")  # end-of-file before a run id
    os.close(r2)
    r3, w3 = os.pipe()
    assert _PipeStop(r3, b"stop\n").is_set()  # "stop" came with the run id itself
    os.close(w3)
