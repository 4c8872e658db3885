"""Whether the process that owns a run is still alive (Linux ``/proc``), telling a reused pid from the original."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

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
