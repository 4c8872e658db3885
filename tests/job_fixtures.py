"""Task functions for tests/test_jobs.py, imported by worker processes as ``tests.job_fixtures``.

Each follows the task contract of :mod:`opc_core.jobs.manager`: ``fn(params, ctx) -> dict | None``.
"""

from __future__ import annotations

import os
import sys
import time

from opc_core.train.loop import StepInfo


def sleep_steps(params: dict, ctx) -> dict:
    """``params["n"]`` steps of ``params["dt"]`` seconds each, reporting every step and honouring ``ctx.stop``."""
    n, dt = int(params.get("n", 10)), float(params.get("dt", 0.05))
    t0 = time.perf_counter()
    for step in range(1, n + 1):
        if ctx.stop.is_set():
            raise InterruptedError(f"stopped before step {step}")
        time.sleep(dt)
        ctx.on_step(StepInfo(step, n, {"loss": 1.0 / step}, time.perf_counter() - t0))
    ctx.log(f"slept {n} steps")
    return {"steps_done": n}


def crash(params: dict, ctx) -> None:
    """Die without finishing the run, like a segfault or a CUDA abort."""
    sys.stderr.write("about to crash\n")
    sys.stderr.flush()
    os._exit(3)


def fail(params: dict, ctx) -> None:
    raise ValueError("boom")


def quick(params: dict, ctx) -> dict:
    """Write one artifact and a log line, and answer."""
    path = ctx.artifact_dir / "answer.txt"
    path.write_text(str(params.get("echo")))
    ctx.add_artifact("answer", path)
    ctx.log(f"worker pid {os.getpid()}")
    return {"answer": 42, "echo": params.get("echo")}
