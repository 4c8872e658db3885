"""One progress bar for a whole comparison (bench run): overall fraction, ETA, and the current method and phase.

A comparison runs, per method, the unlearning loop (which reports steps), the final evaluation and the recovery
attacks (which report none), then one gradient inversion of all models. The fraction weighs these phases by their
measured share of the wall time (``scripts/bench_preset.py``) and reads where each method is from the stored runs:
the running child's step count, a finished child without recovery results (its attacks run), every child attacked
(the inversion runs; its steps, when the benchmark reports them, give the progress inside it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

# share of one method's time: the loop, then evaluation + recovery (measured with scripts/bench_preset.py); the
# inversion's share of the whole job
LOOP_SHARE, INVERSION_SHARE = 0.7, 0.12
DEFAULT_ATTACK_S = 15.0  # the recovery attacks of one method before any has been timed (quiet 2-core CPU)


@dataclass(frozen=True)
class JobProgress:
    fraction: float  # 0..1
    eta_s: float | None  # None until enough is known
    method: str  # the current method's label ("all methods" during the inversion)
    phase: str  # "starting", "unlearn", "evaluation and recovery attacks", "inversion", "done"
    done_methods: int
    n_methods: int

    def text(self, elapsed_s: float) -> str:
        eta = "" if self.eta_s is None else f" · about {self.eta_s:.0f} s left"
        where = f"{self.method}: {self.phase}" if self.phase not in ("starting", "done") else self.phase
        return f"{where} · {self.done_methods} of {self.n_methods} methods done · {elapsed_s:.0f} s{eta}"


def bench_progress(bench, children, now: float | None = None) -> JobProgress:
    """Where a bench run stands, from its own record and its child unlearn runs (any order)."""
    labels = [_label(m) for m in bench.params.methods]
    kids = sorted(children, key=lambda r: r.created)
    stage = (bench.progress or {}).get("stage") or {}
    count = (stage.get("count") or 0) - (stage.get("phase") == "inversion")  # the inversion is one more part
    n = max(len(labels), len(kids), count)  # the workflow may add methods (e.g. the retrain reference)
    inv_share = INVERSION_SHARE if bench.params.inversion_images > 0 else 0.0
    per_method = (1.0 - inv_share) / max(n, 1)
    frac, method, phase, finished = 0.0, labels[0] if labels else "", "starting", 0
    for kid in kids:
        method = kid.params.name
        if kid.status == "running":
            prog = kid.progress or {}
            step, total = prog.get("step") or 0, prog.get("total") or 0
            loop = step / total if total else 0.0
            frac += per_method * LOOP_SHARE * loop
            phase = "unlearn" if loop < 1 else "evaluation and recovery attacks"
        elif kid.done and "recovery" not in kid.metrics:  # no steps here: creep by the time earlier attacks took
            expected = _attack_seconds(kids) or DEFAULT_ATTACK_S
            since = max(0.0, (now or time.time()) - (kid.finished or kid.created))
            frac += per_method * (LOOP_SHARE + (1 - LOOP_SHARE) * min(0.9, since / expected))
            phase = "evaluation and recovery attacks"
        elif kid.final:
            frac += per_method
            finished += 1
            phase = "unlearn"
    if finished == n and n and bench.active:
        method, phase = "all methods", "inversion"
        step, total = (bench.progress or {}).get("step") or 0, (bench.progress or {}).get("total") or 0
        offset = sum(int(k.metrics.get("steps") or 0) for k in kids)  # the methods' steps come first
        if stage.get("phase") == "inversion" and total > offset:
            frac += inv_share * min(1.0, max(0.0, (step - offset) / (total - offset)))
    if bench.final:
        frac, phase = 1.0, "done"
    elapsed = _elapsed(bench, now)
    eta = elapsed * (1 - frac) / frac if 0.03 < frac < 1 else None
    return JobProgress(min(frac, 1.0), eta, method, phase, finished, n)


def _attack_seconds(kids) -> float | None:
    """The mean time the recovery attacks took for the methods already attacked: from one method's end to the next
    one's start."""
    gaps = [b.created - a.finished for a, b in zip(kids, kids[1:]) if a.finished and "recovery" in a.metrics]
    return sum(gaps) / len(gaps) if gaps else None


def _label(spec: str) -> str:
    from opc_core.config import parse_variant

    return parse_variant(spec)[0]


def _elapsed(run, now: float | None) -> float:
    if run.started is None:
        return 0.0
    end = run.finished if run.finished is not None else (now or time.time())
    return max(0.0, end - run.started)
