"""Run kinds for tests/test_jobs.py: a record and a workflow each, registered on import.

Worker processes import this module through ``$OPC_LAB_PLUGINS=tests.job_fixtures`` (see
:func:`opc_core.workflows.base.load_plugins`). Each follows the workflow contract: ``fn(params, ctx) -> dict | None``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from opc_core.runs.record import record
from opc_core.train.loop import StepInfo
from opc_core.workflows import workflow

PLUGIN = "tests.job_fixtures"


@record("t_sleep")
@dataclass(frozen=True)
class SleepParams:
    n: int = 10
    dt: float = 0.05


@record("t_quick")
@dataclass(frozen=True)
class QuickParams:
    echo: Any = None


@record("t_crash")
@dataclass(frozen=True)
class CrashParams:
    pass


@record("t_fail")
@dataclass(frozen=True)
class FailParams:
    pass


@workflow("t_sleep")
def sleep_steps(params: SleepParams, ctx) -> dict:
    """``params.n`` steps of ``params.dt`` seconds each, reporting every step and honouring ``ctx.stop``."""
    n, dt = params.n, params.dt
    t0 = time.perf_counter()
    for step in range(1, n + 1):
        if ctx.stop.is_set():
            raise InterruptedError(f"stopped before step {step}")
        time.sleep(dt)
        ctx.on_step(StepInfo(step, n, {"loss": 1.0 / step}, time.perf_counter() - t0))
    ctx.log(f"slept {n} steps")
    return {"steps_done": n}


@workflow("t_crash")
def crash(params: CrashParams, ctx) -> None:
    """Die without finishing the run, like a segfault or a CUDA abort."""
    sys.stderr.write("about to crash\n")
    sys.stderr.flush()
    os._exit(3)


@workflow("t_fail")
def fail(params: FailParams, ctx) -> None:
    raise ValueError("boom")


@workflow("t_quick")
def quick(params: QuickParams, ctx) -> dict:
    """Write one artifact and a log line, and answer."""
    path = ctx.artifact_dir / "answer.txt"
    path.write_text(str(params.echo))
    ctx.add_artifact("answer", path)
    ctx.log(f"worker pid {os.getpid()}")
    return {"answer": 42, "echo": params.echo}
