"""Background jobs: a run executed in its own worker process, queued so that one GPU job runs at a time.

Three layers:

* a **task registry**: ``register_task(kind, "package.module:function")``. A task is
  ``fn(params: dict, ctx: JobContext) -> dict | None``; the returned dict is merged into the run's metrics.
* :func:`execute` -- the pure run function: load a run from the store, run its task, record the outcome. It works in
  any process, which is what lets a sweep fan out over a cluster with an existing engine, e.g.
  ``ray.get([ray.remote(execute).remote(run_id, home) for run_id in ids])`` with the home on a shared filesystem.
* :class:`JobManager` -- what the dashboard holds (one per server, in ``st.cache_resource``): a FIFO queue in the run
  store and a daemon dispatcher thread that starts each job in a fresh Python worker process, at most
  ``max_running`` at once, and reaps workers that die.

Why a ``subprocess`` worker and not ``multiprocessing``: ``fork`` is unsafe in a server with threads (and CUDA), and
``spawn``/``forkserver`` children re-run the parent's ``__main__`` file -- under Streamlit that is the fake
``__main__`` module of whichever page script ran last, so every worker would execute a dashboard page. The worker is
``python -c "from opc_core.jobs.manager import worker_main; worker_main()" RUN_ID HOME``, started with the parent's
``sys.path`` (so test task modules import), and its stdin pipe is the fast stop channel: the manager writes ``stop``;
end-of-file (the server exited or died) stops the task too and the run ends ``interrupted``.

A run's config is ``{"task": kind, "target": "module:function", "params": {...}}``. The target is stored with the run,
so a worker (or a Ray node) needs no registration of its own; ``params`` must be JSON values (``asdict`` a config
dataclass first), which keeps every run reproducible from its row alone. Pages poll the store; they never talk to a
worker.
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opc_core.registry import Registry
from opc_core.runs.store import Run, RunStore

if TYPE_CHECKING:
    from opc_core.train.loop import StepInfo

log = logging.getLogger(__name__)

TASKS: Registry[str] = Registry("task")
STEP_FLUSH_S = 0.1  # at most ~10 step writes per second per run
CANCEL_POLL_S = 0.3  # how often a worker reads the run's cancel flag from the store
WORKER_LOG = "worker.log"  # a worker's raw stdout/stderr, in its run folder
WARM_LOG = "warm-worker.log"  # a warm worker's output until it gets a run, in the store's home
WARM_MAX_FAILURES = 3  # warm workers that die without a run before the manager stops starting them


def register_task(kind: str, target: str) -> None:
    """Register task ``kind`` as the function at import path ``"package.module:function"`` (imported lazily).

    Registering the same kind again with the same target is a no-op; with another target it raises ``ValueError``.
    """
    if ":" not in target:
        raise ValueError(f"task target must look like 'package.module:function', got {target!r}")
    if kind in TASKS:
        if TASKS.get(kind) != target:
            raise ValueError(f"task {kind!r} is already registered as {TASKS.get(kind)!r}")
        return
    TASKS.add(kind, target)


def list_tasks() -> list[str]:
    return TASKS.names()


def resolve_target(target: str) -> Callable[[dict, JobContext], Mapping | None]:
    """Import ``"package.module:function"`` (dotted attributes allowed after the colon)."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"task target must look like 'package.module:function', got {target!r}")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


for _kind in ("train", "unlearn", "attack", "bench"):
    register_task(_kind, f"opc_core.jobs.tasks:{_kind}_task")


class CancelFlag:
    """A run's stop flag: a fast event (the worker's stdin pipe, or any ``is_set()`` object) OR the store's cancel flag.

    ``is_set()`` is cheap enough to call every step: the store is read at most every ``poll_s`` seconds.
    """

    def __init__(self, store: RunStore, run_id: str, event: Any = None, poll_s: float = CANCEL_POLL_S) -> None:
        self.store, self.run_id, self.event, self.poll_s = store, run_id, event, poll_s
        self._set = False
        self._polled = float("-inf")

    def is_set(self) -> bool:
        if self._set or (self.event is not None and self.event.is_set()):
            return True
        now = time.monotonic()
        if now - self._polled >= self.poll_s:
            self._polled = now
            self._set = self.store.cancel_requested(self.run_id)
        return self._set

    def set(self) -> None:
        self._set = True
        if self.event is not None:
            self.event.set()
        self.store.request_cancel(self.run_id)


class JobContext:
    """What a task receives besides its params: progress, artifacts, metrics, a log, and the stop flag."""

    def __init__(self, run: Run, store: RunStore, stop: CancelFlag, flush_s: float = STEP_FLUSH_S) -> None:
        self.run = run
        self.run_id = run.id
        self.store = store
        self.stop = stop
        self.artifact_dir: Path = store.artifact_dir(run.id)
        self._flush_s = flush_s
        self._pending: list[dict] = []
        self._last_flush = float("-inf")
        self._lock = threading.Lock()

    def on_step(self, info: StepInfo | Mapping) -> None:
        """Record a step (a ``StepInfo`` or a dict with its fields); writes are batched to at most ~10/s and the
        final step (``step >= total``) is always written at once."""
        get = info.get if isinstance(info, Mapping) else lambda k, d=None: getattr(info, k, d)
        rec = {
            "step": int(get("step")),
            "total": int(get("total")),
            "losses": dict(get("losses") or {}),
            "elapsed_s": float(get("elapsed_s", 0.0)),
            "evals": dict(get("evals") or {}),
            "epoch": get("epoch"),
            "lr": get("lr"),
        }
        with self._lock:
            self._pending.append(rec)
            due = time.monotonic() - self._last_flush >= self._flush_s or rec["step"] >= rec["total"]
        if due:
            self.flush()

    def flush(self) -> None:
        """Write any buffered step records now."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        self.store.append_steps(self.run_id, pending)

    def add_artifact(self, name: str, path: Path | str) -> None:
        self.store.add_artifact(self.run_id, name, path)

    def update_metrics(self, metrics: dict) -> None:
        self.store.update_metrics(self.run_id, metrics)

    def log(self, text: str) -> None:
        """Append a timestamped line to ``<run folder>/log.txt``."""
        with open(self.artifact_dir / "log.txt", "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%H:%M:%S')} {text.rstrip()}\n")


class _ThreadFileHandler(logging.FileHandler):
    """Copies ``opc_core`` log records emitted on one thread into the run's log.txt."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        ident = threading.get_ident()
        self.addFilter(lambda record: record.thread == ident)


def _error_text(exc: BaseException, limit_chars: int = 4000) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-8))
    return f"{type(exc).__name__}: {exc}\n\n{tb[-limit_chars:]}"


def execute(run_id: str, home: str | None = None, stop: Any = None) -> None:
    """Run the task of run ``run_id`` here and now, and record its outcome in the run store.

    This is the pure run function: it needs only the run id and the store's home, so it is callable in any process
    -- the job manager's worker process, the CLI, a test, or a task of a distributed engine: a sweep fans out over a
    cluster's GPUs with ``ray.remote(execute)`` (home on a shared filesystem) without changing the library.

    Status: ``running`` (with this pid) -> ``done`` (returned dict merged into metrics), ``cancelled`` (the stop flag
    was set when the task returned, or it raised ``InterruptedError``), ``failed`` (any other exception; error text =
    type, message and a short traceback) or ``interrupted`` (KeyboardInterrupt/SystemExit, re-raised). A run that is
    already final, or whose cancel flag is already up, is not started.

    Args:
        run_id: a run created with config ``{"task", "target", "params"}`` (``target`` optional: the kind's
            registered target is used; a config without ``params`` is passed whole as the params).
        home: the run store's home (default ``$OPC_LAB_HOME``).
        stop: optional extra stop event (``is_set()``), e.g. the worker's stdin pipe watcher; if it carries a
            ``reason`` (the server went away), a stopped run ends ``interrupted`` instead of ``cancelled``.
    """
    store = RunStore(home)
    run = store.get(run_id)
    if run.final:
        log.warning("run %s is already %s; not executing it", run_id, run.status)
        return
    flag = CancelFlag(store, run_id, stop)
    if flag.is_set():
        reason = getattr(stop, "reason", None)
        store.set_status(
            run_id, "interrupted" if reason else "cancelled", error=reason or "cancelled before it started"
        )
        return
    store.set_status(run_id, "running", pid=os.getpid())
    ctx = JobContext(store.get(run_id), store, flag)
    handler = _ThreadFileHandler(ctx.artifact_dir / "log.txt")
    logging.getLogger("opc_core").addHandler(handler)
    try:
        _run_task(run, store, ctx, flag)
    finally:
        logging.getLogger("opc_core").removeHandler(handler)
        handler.close()


def _run_task(run: Run, store: RunStore, ctx: JobContext, flag: CancelFlag) -> None:
    cfg = run.config
    kind = cfg.get("task", run.kind)
    params = cfg["params"] if "params" in cfg else cfg
    try:
        fn = resolve_target(cfg.get("target") or TASKS.get(kind))
        log.info("run %s: %s started (pid %d)", run.id, kind, os.getpid())
        result = fn(params, ctx)
        ctx.flush()
        if result is not None:
            if isinstance(result, Mapping):
                ctx.update_metrics(dict(result))
            else:
                log.warning("task %s returned a %s, not a dict; ignored", kind, type(result).__name__)
    except InterruptedError:
        _finish(store, ctx, "cancelled", None)
    except Exception as exc:  # the run records why it failed; the worker itself exits cleanly
        log.error("run %s failed: %s: %s", run.id, type(exc).__name__, exc)
        _finish(store, ctx, "failed", _error_text(exc))
    except BaseException as exc:  # KeyboardInterrupt / SystemExit: record, then let it propagate
        _finish(store, ctx, "interrupted", f"interrupted: {type(exc).__name__} in the worker")
        raise
    else:
        _finish(store, ctx, "cancelled" if flag.is_set() else "done", None)


def _finish(store: RunStore, ctx: JobContext, status: str, error: str | None) -> None:
    try:
        ctx.flush()
    except Exception:  # never let a failed flush hide the run's outcome
        log.exception("run %s: could not write the last steps", ctx.run_id)
    if status == "cancelled":
        step = store.get(ctx.run_id).progress.get("step", 0)
        reason = getattr(ctx.stop.event, "reason", None)
        status = "interrupted" if reason else "cancelled"
        error = f"interrupted: {reason} (at step {step})" if reason else f"cancelled by request at step {step}"
    store.set_status(ctx.run_id, status, error=error)
    log.info("run %s: %s", ctx.run_id, status)


class _PipeStop(threading.Event):
    """Set when ``stop`` arrives on a pipe, or at end-of-file (then ``reason`` says the server is gone).

    It reads the raw file descriptor (``os.read``), not ``sys.stdin``: a daemon thread blocked inside a buffered
    reader aborts the interpreter at exit.
    """

    def __init__(self, fd: int, seen: bytes = b"") -> None:
        super().__init__()
        self.reason: str | None = None
        if b"stop" in seen:  # already read from the pipe (a warm worker reads its run id from it first)
            self.set()
        threading.Thread(target=self._watch, args=(fd, seen[-16:]), name="opc-job-stop", daemon=True).start()

    def _watch(self, fd: int, seen: bytes) -> None:
        try:
            while chunk := os.read(fd, 256):
                seen = (seen + chunk)[-16:]
                if b"stop" in seen:
                    self.set()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        if not self.is_set():
            self.reason = "the job server exited while the run was running"
            self.set()


def _worker_setup(home: str) -> None:
    """What every worker process does first, cold or warm."""
    os.environ["OPC_LAB_HOME"] = home  # tasks that use opc_core.env.paths see the same home as the store
    faulthandler.enable()  # a segfault / abort leaves a Python traceback in worker.log


def _worker_run(run_id: str, home: str, fd: int, seen: bytes = b"") -> None:
    """Execute the run with pipe ``fd`` (the worker's stdin) as its stop channel; ``seen``: bytes already read."""
    logging.getLogger("opc_core").setLevel(logging.INFO)  # INFO records reach the run's log.txt
    execute(run_id, home, _PipeStop(fd, seen))


def _worker_cmd(entry: str) -> list[str]:
    """The command line of a worker process whose entry point is ``opc_core.jobs.manager.<entry>()``."""
    return [sys.executable, "-c", f"from opc_core.jobs.manager import {entry}; {entry}()"]


def worker_main(argv: list[str] | None = None) -> None:
    """A worker process's entry: ``python -c "from opc_core.jobs.manager import worker_main; worker_main()" RUN_ID HOME``."""
    run_id, home = (argv if argv is not None else sys.argv[1:])[:2]
    _worker_setup(home)
    _worker_run(run_id, home, sys.stdin.fileno())


def preload() -> None:
    """Import what every run needs before its first step, so that a warm worker starts a run in well under a second.

    That is torch, the task modules, and the optimiser machinery: torch imports its compiler stack lazily when the
    first optimiser is built (~1.5 s of the ~3 s a cold worker needs before its first step, measured on CPU).
    Nothing here touches a GPU or reads data.
    """
    import torch

    import opc_core.jobs.tasks
    import opc_core.methods
    import opc_core.metrics
    import opc_core.train.zoo  # noqa: F401

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _read_line(fd: int, limit: int = 4096) -> tuple[bytes, bytes]:
    """Read one line from a raw file descriptor: (line without its newline, bytes read after it); b"" at end-of-file."""
    buf = b""
    while b"\n" not in buf and len(buf) < limit:
        chunk = os.read(fd, 256)
        if not chunk:
            return b"", b""
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line, rest


def _redirect_output(path: Path) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2, so C code and fault dumps too) at ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def warm_worker_main(argv: list[str] | None = None) -> None:
    """A pre-started worker: ``python -c "from opc_core.jobs.manager import warm_worker_main; warm_worker_main()" HOME``.

    It runs :func:`preload`, then waits for ``run RUN_ID`` on its stdin; from then on it is exactly a worker of that
    run (output in the run's worker.log, ``stop`` on the same pipe). End-of-file before a run id: it just exits.
    """
    home = (argv if argv is not None else sys.argv[1:])[0]
    _worker_setup(home)
    try:
        preload()
    except Exception:  # a broken import then fails the run itself, with its error text in the run's record
        traceback.print_exc()
    fd = sys.stdin.fileno()
    line, rest = _read_line(fd)
    if not line.startswith(b"run "):
        return
    run_id = line[4:].strip().decode()
    _redirect_output(RunStore(home).artifact_dir(run_id) / WORKER_LOG)
    _worker_run(run_id, home, fd, rest)


def _worker_env() -> dict[str, str]:
    """The parent's environment plus its ``sys.path`` (what ``spawn`` would hand over) behind the folder holding
    ``opc_core`` (a server started from another folder, e.g. ``streamlit run /abs/app.py``, lacks it at times)."""
    root = str(Path(__file__).resolve().parents[2])
    entries = list(dict.fromkeys([root, *(os.path.abspath(p or os.curdir) for p in sys.path)]))
    # Passive OpenMP waiting: spinning worker threads starve the server and other jobs on a small, shared CPU.
    return {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYTHONPATH": os.pathsep.join(entries)}


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
        * Restart recovery: construction calls ``store.mark_interrupted()``: runs left ``running`` by a dead worker and
          runs left ``queued`` by a dead server become ``interrupted``. Queued jobs are *not* resumed (a restarted
          server should not start GPU work nobody is watching); :meth:`resubmit` queues a copy. Ids in ``recovered``.
        * A worker that dies without finishing its run (segfault, ``os._exit``, killed, CUDA abort) leaves it
          ``failed`` with "worker exited with code N"; the queue goes on. Workers stop (run ``interrupted``) when
          the server exits, since their stdin pipe closes.
        * ``warm=True`` (the dashboard): one spare worker is kept started with :func:`preload` done, so a launched
          run skips interpreter start-up and imports (~3 s on a CPU). The spare is (re)started only while no job
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
        self.recovered = self.store.mark_interrupted()
        self._thread = threading.Thread(target=self._loop, name="opc-job-dispatcher", daemon=True)
        self._thread.start()
        _MANAGERS.add(self)

    # --- public API ------------------------------------------------------------------------------------------------
    def submit(
        self, kind: str, params: dict, *, title: str | None = None, parent: str | None = None, split: dict | None = None
    ) -> str:
        """Queue a run of task ``kind`` with JSON ``params``; returns its run id at once."""
        target = TASKS.get(kind)  # KeyError listing the valid kinds
        with self._lock:
            if self._closed:
                raise RuntimeError("this job manager is shut down")
            run = self.store.create(
                kind,
                {"task": kind, "target": target, "params": params},
                split=split,
                parent=parent,
                title=title,
                status="queued",
                pid=os.getpid(),
            )
            self._queue.append(run.id)
        self._wake.set()
        log.info("queued run %s (%s)", run.id, kind)
        return run.id

    def resubmit(self, run_id: str) -> str:
        """Queue a fresh run with the kind, params, split, parent and title of ``run_id`` (e.g. an interrupted one)."""
        old = self.store.get(run_id)
        params = old.config["params"] if "params" in old.config else old.config
        return self.submit(
            old.config.get("task", old.kind), params, title=old.title, parent=old.parent, split=old.split
        )

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
                cmd = [*_worker_cmd("worker_main"), run_id, str(self.store.home)]
                try:  # the worker's stdout/stderr (tracebacks, fault dumps, library warnings) go to <run>/worker.log
                    proc = self._popen(cmd, self.store.artifact_dir(run_id) / WORKER_LOG)
                except OSError as exc:
                    self.store.set_status(run_id, "failed", error=f"could not start a worker: {_error_text(exc)}")
                    continue
            self.store.set_status(run_id, "running", pid=proc.pid)
            self._workers[run_id] = proc
            log.info("run %s started in worker pid %d", run_id, proc.pid)

    @staticmethod
    def _popen(cmd: list[str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as out:
            return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, env=_worker_env())

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
        cmd = [*_worker_cmd("warm_worker_main"), str(self.store.home)]
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
