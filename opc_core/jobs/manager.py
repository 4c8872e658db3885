"""The job manager: a FIFO queue over the run store whose runs execute in worker processes, at most ``max_running``
at once (one GPU job at a time by default).

A job is a stored run of any registered kind, queued with its typed parameters (:mod:`opc_core.runs.record`); its
worker runs the kind's workflow through the one run lifecycle (:func:`opc_core.workflows.execute`). Pages poll the
store; they never talk to a worker.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from opc_core.jobs.worker import WORKER_LOG, worker_cmd, worker_env
from opc_core.runs.liveness import mark_interrupted
from opc_core.runs.run import Run
from opc_core.runs.store import RunStore

log = logging.getLogger(__name__)

WARM_LOG = "warm-worker.log"  # a warm worker's output until it gets a run, in the store's home
WARM_MAX_FAILURES = 3  # warm workers that die without a run before the manager stops starting them


def _send(proc: subprocess.Popen, line: str) -> bool:
    """Write one line to a worker's stdin pipe; False when it has exited (broken pipe) or the pipe is closed."""
    try:
        proc.stdin.write(f"{line}\n".encode())
        proc.stdin.flush()
    except (OSError, ValueError):
        return False
    return True


def _send_stop(proc: subprocess.Popen) -> None:
    _send(proc, "stop")


def _close_stdin(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError, ValueError):
        proc.stdin.close()


def _wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _exit_text(code: int | None, worker_log: Path, tail_chars: int = 2000) -> str:
    text = f"worker exited with code {code}"
    if code is not None and code < 0:
        try:
            text += f" (killed by signal {signal.Signals(-code).name})"
        except ValueError:
            pass
    text += " before finishing the run (crash, out of memory, or killed)"
    try:
        tail = worker_log.read_bytes()[-tail_chars:].decode("utf-8", "replace").strip()
    except OSError:
        tail = ""
    return f"{text}\n\nlast worker output:\n{tail}" if tail else text


class JobManager:
    """A thread-safe FIFO job queue over the run store, running each job in its own worker process.

    One per server process (``st.cache_resource``); any browser session may call it. ``max_running`` jobs run at once
    (default 1: one GPU job at a time); the rest wait as ``queued`` runs in the store, visible to every page.

    Choices:
        * Ownership: a queued run records the pid of the process whose manager queued it; a manager dispatches only
          the runs it queued, in submission (FIFO) order, re-reading each from the store first, so a cancel from any
          process or session is honoured.
        * Restart recovery: construction calls ``mark_interrupted(store)``: runs left ``running`` by a dead worker and
          runs left ``queued`` by a dead server become ``interrupted``. Queued jobs are *not* resumed (a restarted
          server should not start GPU work nobody is watching); :meth:`resubmit` queues a copy. Ids in ``recovered``.
        * A worker that dies without finishing its run (segfault, ``os._exit``, killed, CUDA abort) leaves it
          ``failed`` with "worker exited with code N"; the queue goes on. Workers stop (run ``interrupted``) when
          the server exits, since their stdin pipe closes.
        * ``warm=True`` (the dashboard): one spare worker is kept started with :func:`preload` done, so a launched
          run skips interpreter start-up and imports (docs/architecture.md). The spare is (re)started only while no job
          runs, so it never takes CPU from one; a queued job that follows another starts cold. It inherits the
          environment of the moment it started. After ``WARM_MAX_FAILURES`` spares died without a run the manager
          goes on with cold workers only.
    """

    def __init__(
        self, store: RunStore | None = None, max_running: int = 1, poll_s: float = 0.1, warm: bool = False
    ) -> None:
        self.store = store if store is not None else RunStore()
        self.max_running = max(1, int(max_running))
        self.warm = warm
        self._poll_s = poll_s
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._queue: list[str] = []  # ids this manager queued and has not started, submission order
        self._workers: dict[str, subprocess.Popen] = {}  # run id -> its worker process
        self._spare: subprocess.Popen | None = None  # the warm worker waiting for a run id
        self.warm_failures = 0
        self._closed = False
        self.recovered = mark_interrupted(self.store)
        self._thread = threading.Thread(target=self._loop, name="opc-job-dispatcher", daemon=True)
        self._thread.start()
        _MANAGERS.add(self)

    # --- public API ------------------------------------------------------------------------------------------------
    def submit(
        self, kind: str, params: Any, *, title: str | None = None, parent: str | None = None, split: dict | None = None
    ) -> str:
        """Queue a run of kind ``kind`` with its typed parameters (or a mapping of them); returns its run id."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this job manager is shut down")
            run = self.store.create(
                kind, params, split=split, parent=parent, title=title, status="queued", pid=os.getpid()
            )
            self._queue.append(run.id)
        self._wake.set()
        log.info("queued run %s (%s)", run.id, kind)
        return run.id

    def resubmit(self, run_id: str) -> str:
        """Queue a fresh run with the kind, params, split, parent and title of ``run_id`` (e.g. an interrupted one)."""
        old = self.store.get(run_id)
        return self.submit(old.kind, old.params, title=old.title, parent=old.parent, split=old.split)

    def cancel(self, run_id: str) -> None:
        """Cancel a run: a queued one at once (it never starts); a running one through its stop flag (the task stops
        within a step, then the run is ``cancelled``). Runs of other processes are cancelled through the store."""
        with self._lock:
            if self.store.set_status(run_id, "cancelled", error="cancelled before it started", expect="queued"):
                return
            if self.store.get(run_id).final:
                return
            self.store.request_cancel(run_id)
            if run_id in self._workers:
                _send_stop(self._workers[run_id])

    def running(self) -> list[Run]:
        """This manager's runs that hold a worker process now."""
        with self._lock:
            ids = list(self._workers)
        return [r for r in map(self._get, ids) if r is not None]

    def queued(self) -> list[Run]:
        """This manager's runs still waiting, in the order they will start."""
        with self._lock:
            order = {run_id: i for i, run_id in enumerate(self._queue)}
        runs = [r for r in self.store.list(status="queued") if r.id in order]
        return sorted(runs, key=lambda r: order[r.id])

    def spare_pid(self) -> int | None:
        """The pid of the warm worker waiting for a run, if one is alive."""
        with self._lock:
            spare = self._spare
        return spare.pid if spare is not None and spare.poll() is None else None

    def wait(self, run_id: str, timeout: float | None = None, poll_s: float = 0.05) -> Run:
        """Block until the run is final (``TimeoutError`` after ``timeout`` seconds); returns it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (run := self.store.get(run_id)).final:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run.status} after {timeout} s")
            time.sleep(poll_s)
        return run

    def shutdown(self, wait: bool = False, *, cancel_running: bool = False) -> None:
        """Stop dispatching. Runs still queued here become ``interrupted``; running workers finish (or are cancelled
        with ``cancel_running``). ``wait`` blocks until they have exited and been reaped."""
        with self._lock:
            self._closed = True
            self._interrupt_queued("the job manager shut down before the run started")
            if cancel_running:
                for run_id, proc in self._workers.items():
                    self.store.request_cancel(run_id)
                    _send_stop(proc)
            spare, self._spare = self._spare, None
        if spare is not None:
            _close_stdin(spare)  # end-of-file: a spare exits without a run
        self._wake.set()
        if wait:
            self._thread.join()
            if spare is not None:
                _wait_or_kill(spare, 30.0)

    # --- dispatcher ------------------------------------------------------------------------------------------------
    def _get(self, run_id: str) -> Run | None:
        try:
            return self.store.get(run_id)
        except KeyError:
            return None

    def _interrupt_queued(self, why: str) -> None:
        for run_id in self._queue:
            self.store.set_status(run_id, "interrupted", error=f"interrupted: {why}", expect="queued")
        self._queue.clear()

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                with self._lock:
                    self._reap()
                    if self._closed and not self._workers:
                        return
                    if not self._closed:
                        self._dispatch()
                        if self.warm and not self._workers:
                            self._ensure_spare()
                    busy = bool(self._workers)
            except Exception:  # e.g. the store stayed locked past its timeout: log it and try again
                log.exception("job dispatcher error")
                busy = True
            self._wake.wait(self._poll_s if busy else 1.0)

    def _dispatch(self) -> None:
        while self._queue and len(self._workers) < self.max_running:
            run_id = self._queue.pop(0)
            run = self._get(run_id)
            if run is None or run.status != "queued":
                continue  # deleted, or cancelled / interrupted from elsewhere
            if run.cancel_requested:
                self.store.set_status(run_id, "cancelled", error="cancelled before it started", expect="queued")
                continue
            # claim it atomically (pid = this process until the worker's pid is known), then start the worker
            if not self.store.set_status(run_id, "running", pid=os.getpid(), expect="queued"):
                continue
            proc = self._hand_to_spare(run_id)
            if proc is None:
                cmd = [*worker_cmd("worker_main"), run_id, str(self.store.home)]
                try:  # the worker's stdout/stderr (tracebacks, fault dumps, library warnings) go to <run>/worker.log
                    proc = self._popen(cmd, self.store.artifact_dir(run_id) / WORKER_LOG)
                except OSError as exc:
                    self.store.set_status(run_id, "failed", error=f"could not start a worker: {exc!r}")
                    continue
            self.store.set_status(run_id, "running", pid=proc.pid)
            self._workers[run_id] = proc
            log.info("run %s started in worker pid %d", run_id, proc.pid)

    @staticmethod
    def _popen(cmd: list[str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=worker_env())

    def _ensure_spare(self) -> None:
        """Keep one warm worker started (called by the dispatcher while no job runs)."""
        if self._spare is not None:
            if self._spare.poll() is None:
                return
            self.warm_failures += 1
            log.warning("warm worker %d exited with code %s without a run", self._spare.pid, self._spare.returncode)
            _close_stdin(self._spare)
            self._spare = None
        if self.warm_failures >= WARM_MAX_FAILURES:
            return
        cmd = [*worker_cmd("warm_worker_main"), str(self.store.home)]
        try:
            self._spare = self._popen(cmd, self.store.home / WARM_LOG)
        except OSError:
            self.warm_failures += 1
            log.exception("could not start a warm worker")

    def _hand_to_spare(self, run_id: str) -> subprocess.Popen | None:
        """Give the run to the warm worker; None when there is none (or it has died): start a cold one then."""
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            return None
        if not _send(spare, f"run {run_id}"):
            _close_stdin(spare)
            return None
        return spare

    def _reap(self) -> None:
        for run_id, proc in list(self._workers.items()):
            code = proc.poll()
            if code is None:
                continue
            del self._workers[run_id]
            _close_stdin(proc)
            run = self._get(run_id)
            if run is not None and not run.final:
                text = _exit_text(code, run.folder / WORKER_LOG)
                self.store.set_status(run_id, "failed", error=text, expect=("running", "queued"))
                log.error("run %s: %s", run_id, text)

    def _at_exit(self) -> None:
        """Interpreter exit: queued runs become interrupted; closing the pipes stops the workers (interrupted)."""
        with self._lock:
            self._closed = True
            self._interrupt_queued("the server exited before the run started")
            for proc in self._workers.values():
                _close_stdin(proc)
            if self._spare is not None:
                _close_stdin(self._spare)


_MANAGERS: weakref.WeakSet[JobManager] = weakref.WeakSet()


@atexit.register
def _shutdown_managers() -> None:
    for manager in list(_MANAGERS):
        try:
            manager._at_exit()
        except Exception:
            log.exception("job manager exit")
