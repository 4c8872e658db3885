"""The worker protocol: a job runs in its own Python process, with its stdin pipe as the fast stop channel.

Why a ``subprocess`` worker and not ``multiprocessing``: ``fork`` is unsafe in a server with threads (and CUDA), and
``spawn``/``forkserver`` children re-run the parent's ``__main__`` file -- under Streamlit that is the page script
that ran last, so every worker would execute a dashboard page. A worker is
``python -c "from opc_core.jobs.worker import worker_main; worker_main()" RUN_ID HOME``; the manager writes ``stop``
on its stdin; end-of-file (the server exited or died) stops the run too, which then ends ``interrupted``.
A warm worker imports everything first and waits for ``run RUN_ID`` on the same pipe.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import select
import sys
import threading
import time
import traceback
from pathlib import Path

from opc_core.runs.store import RunStore

WORKER_LOG = "worker.log"  # a worker's raw stdout/stderr, in its run folder


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
    from opc_core.workflows import execute

    execute(run_id, home, _PipeStop(fd, seen))


def worker_cmd(entry: str) -> list[str]:
    """The command line of a worker process whose entry point is ``opc_core.jobs.worker.<entry>()``."""
    return [sys.executable, "-c", f"from opc_core.jobs.worker import {entry}; {entry}()"]


def worker_main(argv: list[str] | None = None) -> None:
    """A worker process's entry (see the module docstring): arguments RUN_ID HOME."""
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

    import opc_core.methods
    import opc_core.metrics
    import opc_core.train.zoo
    import opc_core.workflows  # noqa: F401

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


IDLE_MAPS_MAX = 24  # newest finished runs whose missing maps an idle warm worker computes


def _pending(fd: int) -> bool:
    """Whether bytes wait on pipe ``fd`` (a run id, or end-of-file)."""
    return bool(select.select([fd], [], [], 0)[0])


def precompile_umap() -> float:
    """Fit and transform a tiny UMAP once, so that numba's compilation is paid now, not by the first map; seconds."""
    import numpy as np

    from opc_core.embedding.projection import EmbedConfig, embed

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    embed({"a": rng.normal(size=(60, 8)), "b": rng.normal(size=(20, 8))}, "a", EmbedConfig(method="umap", seed=1))
    return time.perf_counter() - t0


def idle_work(home: str, fd: int) -> None:
    """While a warm worker waits for a run: when some of the newest finished runs lack their maps, compile UMAP once
    (numba), then store their maps (:func:`opc_core.workflows.explore.store_maps`), one run at a time, stopping as
    soon as input arrives on ``fd`` (a run then waits at most for the one map in progress)."""
    from opc_core.workflows.explore import has_maps, store_maps

    log = logging.getLogger("opc_core.jobs.worker")
    store = RunStore(home)
    todo = [
        r
        for r in store.list(kind="unlearn", status="done", limit=IDLE_MAPS_MAX)
        if not has_maps(r) and r.artifact_path("snapshots") is not None and r.artifact_path("snapshots").exists()
    ]
    if not todo or _pending(fd):
        return
    log.info("UMAP compiled in %.1f s", precompile_umap())
    for run in todo:
        if _pending(fd):
            return
        t0 = time.perf_counter()
        try:
            store_maps(run.id, store)
            log.info("maps of run %s stored in %.1f s", run.id, time.perf_counter() - t0)
        except Exception:  # a broken run must not stop the others or the worker
            log.exception("maps of run %s failed", run.id)


def warm_worker_main(argv: list[str] | None = None) -> None:
    """A pre-started worker: ``python -c "from opc_core.jobs.worker import warm_worker_main; warm_worker_main()" HOME``.

    It runs :func:`preload` and, while no run id has arrived, :func:`idle_work` (when ``OPC_LAB_IDLE_MAPS=1``, as the
    dashboard sets it), then waits for ``run RUN_ID`` on its stdin; from then on it is exactly a worker of that
    run (output in the run's worker.log, ``stop`` on the same pipe). End-of-file before a run id: it just exits.
    """
    home = (argv if argv is not None else sys.argv[1:])[0]
    _worker_setup(home)
    try:
        preload()
    except Exception:  # a broken import then fails the run itself, with its error text in the run's record
        traceback.print_exc()
    fd = sys.stdin.fileno()
    if os.environ.get("OPC_LAB_IDLE_MAPS") == "1":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        try:
            idle_work(home, fd)
        except Exception:
            traceback.print_exc()
    line, rest = _read_line(fd)
    if not line.startswith(b"run "):
        return
    run_id = line[4:].strip().decode()
    _redirect_output(RunStore(home).artifact_dir(run_id) / WORKER_LOG)
    _worker_run(run_id, home, fd, rest)


def worker_env() -> dict[str, str]:
    """The parent's environment plus its ``sys.path`` (what ``spawn`` would hand over) behind the folder holding
    ``opc_core`` (a server started from another folder, e.g. ``streamlit run /abs/app.py``, lacks it at times)."""
    root = str(Path(__file__).resolve().parents[2])
    entries = list(dict.fromkeys([root, *(os.path.abspath(p or os.curdir) for p in sys.path)]))
    # Passive OpenMP waiting: spinning worker threads starve the server and other jobs on a small, shared CPU.
    return {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYTHONPATH": os.pathsep.join(entries)}
