"""Whether the process that owns a run is still alive (Linux ``/proc``), telling a reused pid from the original."""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

PID_START_SLACK_S = 1.0  # a process that started this long after a run recorded its pid is a reused pid


@functools.lru_cache(maxsize=1)
def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def _proc_state(pid: int) -> tuple[str, float | None] | None:
    """(state letter, start time as a Unix time) from Linux ``/proc``, or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        boot = _boot_time()
        start = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK") if boot is not None else None
        return fields[0], start
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None, since: float | None = None) -> bool:
    """Whether process ``pid`` exists and is not a zombie.

    Args:
        pid: the process id recorded with a run.
        since: when the pid was recorded (Unix time); a live process that started later than this is a *reused* pid
            (e.g. a restarted container's server got the same pid) and counts as dead. Needs Linux ``/proc``.
    """
    if pid is None or pid <= 0:
        return False
    if sys.platform == "win32":  # os.kill(pid, 0) would send CTRL_C there; err on the side of "alive"
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    state = _proc_state(pid)
    if state is None:
        return True
    letter, start = state
    if letter in ("Z", "X"):
        return False
    return not (since is not None and start is not None and start > since + PID_START_SLACK_S)


def mark_interrupted(store) -> list[str]:
    """Restart recovery: mark runs whose process is gone as ``interrupted``; return their ids.

    * ``running`` runs whose worker pid is dead (or reused by a newer process, or never recorded).
    * ``queued`` runs whose owner pid (the process whose job manager queued them) is dead: a queued job does not
      outlive its server; it is not resumed on restart but marked interrupted, and can be resubmitted.
      Queued runs with no owner pid (created by other code, e.g. a Ray sweep driver) are left alone.
    """
    marked = []
    for run in store.list(status=("running", "queued"), oldest_first=True):
        if run.status == "queued" and run.pid is None:
            continue
        since = run.started if run.status == "running" and run.started is not None else run.created
        if pid_alive(run.pid, since):
            continue
        if run.status == "running":
            error = (
                f"interrupted: its worker process (pid {run.pid}) is gone; the server restarted or the worker "
                f"was killed while the run was running (last step {run.progress.get('step', 0)})"
            )
        else:
            error = f"interrupted: the server that queued it (pid {run.pid}) exited before the run started"
        if store.set_status(run.id, "interrupted", error=error, expect=run.status):
            log.warning("run %s: %s", run.id, error)
            marked.append(run.id)
    return marked
