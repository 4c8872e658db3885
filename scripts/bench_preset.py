"""Profile the one-click shallow-vs-deep preset: where its wall time goes, per method and per phase.

Runs the preset's benchmark in this process (as the dashboard's worker would) with timers around each phase:
loading, the unlearning loop (and inside it the periodic UA/RA + feature snapshots), the final evaluation (and inside
it MIA), the recovery attacks, the gradient inversion and the map embedding. Prints a table (or JSON with --json).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/bench_preset.py [--preset fast|full] [--json]
    .venv/bin/python scripts/bench_preset.py --home HOME --bench RUN_ID   # the breakdown of a stored comparison

The breakdown of a finished comparison also reads from its stored runs alone (``breakdown``): per method the loop,
the evaluation (the rest of its unlearn run) and the recovery attacks (until the next method starts), then the
inversion (after the last method, until the comparison ends).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TIMED = [  # (phase name, module, attribute): functions timed wherever the preset calls them
    ("load", "opc_core.train.zoo", "load_for"),
    ("monitor (UA/RA + snapshots)", "opc_core.workflows.unlearn.SnapshotMonitor", "__call__"),
    ("evaluate", "opc_core.workflows.unlearn", "evaluate"),
    ("  of which MIA", "opc_core.metrics.evaluate", "mia_efficacy"),
    ("recovery attacks", "opc_core.workflows.bench", "recovery_for_run"),
    ("gradient inversion", "opc_core.workflows.bench", "inversion_for_runs"),
]


def _owner(path: str):
    import importlib

    mod, _, cls = path.rpartition(".") if path.endswith("SnapshotMonitor") else (path, "", "")
    target = importlib.import_module(mod or path)
    return getattr(target, cls) if cls else target


def instrument(totals: dict[str, float], current: list[str]) -> None:
    """Wrap each TIMED function so its wall time is added to ``totals[phase]`` and ``totals[(phase, method)]``."""
    for phase, where, attr in TIMED:
        owner = _owner(where)
        fn = getattr(owner, attr, None)
        if fn is None:
            continue

        def timed(*a, _fn=fn, _phase=phase, **kw):
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return _fn(*a, **kw)
            finally:
                dt = time.perf_counter() - t0
                totals[_phase] += dt
                totals[f"{_phase} (CPU)"] += time.process_time() - c0
                totals[(_phase, current[0])] += dt

        setattr(owner, attr, functools.wraps(fn)(timed))


def breakdown(store, bench_id: str) -> dict[str, float]:
    """Seconds per method and phase of a finished comparison, from its runs' timestamps and loop seconds."""
    bench = store.get(bench_id)
    kids = sorted(store.list(kind="unlearn", parent=bench_id), key=lambda r: r.created)
    out: dict[str, float] = {}
    for kid, nxt in zip(kids, [*kids[1:], None]):
        loop = float(kid.metrics.get("seconds") or 0.0)
        name = kid.params.name
        out[f"{name}: loop (with monitor)"] = round(loop, 1)
        out[f"{name}: load + evaluation"] = round((kid.finished or kid.started) - kid.started - loop, 1)
        end = nxt.started if nxt is not None else kid.finished
        out[f"{name}: recovery attacks"] = round(max(0.0, end - (kid.finished or end)), 1) if nxt else 0.0
    last = kids[-1] if kids else None
    if last is not None and bench.finished:
        out["recovery (last method) + inversion"] = round(bench.finished - (last.finished or bench.finished), 1)
    out["total"] = round((bench.finished or 0) - (bench.started or 0), 1)
    return out


# cnn_small on fashion_mnist_small, forward + backward, 2 threads, a quiet 2-core CPU: retrain's 5 epochs (35,000
# images) alone in 27.2 s (docs/methods.md), monitoring included, so a bare step is faster: the estimate errs long
QUIET_IMAGES_PER_S = 1290


def throughput(seconds: float = 4.0) -> float:
    """Training images per second of the shipped cnn_small on this machine now (batches of 128, forward + backward):
    divided by QUIET_IMAGES_PER_S, how much slower than a quiet 2-core CPU this run was measured."""
    import torch

    from opc_core.train.zoo import load_for

    data, model, _ = load_for("fashion_mnist_small", "cnn_small", device="cpu")
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = data.normalize(data.train_x[:128]), data.train_y[:128]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="fast", help="fast or full (opc_core.workflows.presets)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--home", help="the run store's home (default: a new temporary one)")
    ap.add_argument("--bench", help="a finished comparison's run id in --home")
    args = ap.parse_args()
    if args.bench:
        from opc_core.runs.store import RunStore

        for k, v in breakdown(RunStore(args.home), args.bench).items():
            print(f"  {k:<48} {v}")
        return
    os.environ["OPC_LAB_HOME"] = args.home or os.environ.get("OPC_LAB_HOME") or tempfile.mkdtemp(prefix="opc-preset-")
    import torch

    from opc_core.runs import lifecycle
    from opc_core.runs.store import RunStore
    from opc_core.workflows import Options, start
    from opc_core.workflows.presets import preset_params

    torch.set_num_threads(args.threads)
    totals: dict = defaultdict(float)
    current = ["—"]
    instrument(totals, current)
    stages: list[tuple[float, str, str]] = []
    set_stage = lifecycle.RunContext.set_stage

    def spy(self, stage):
        if stage is not None and self.run.kind == "bench":
            current[0] = stage.label
            stages.append((time.perf_counter(), stage.label, stage.phase))
        return set_stage(self, stage)

    lifecycle.RunContext.set_stage = spy
    params = preset_params(args.preset)
    before = throughput()
    t0, c0 = time.perf_counter(), time.process_time()
    result = start(params, RunStore(), Options(title=f"{args.preset} preset (profiled)"))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    speed = (before + throughput()) / 2  # the machine's speed around the run, against a quiet one's
    marks = [*stages, (t0 + wall, "end", "end")]
    per_stage = defaultdict(float)
    for (t, label, phase), (t_next, _, _) in zip(marks, marks[1:]):
        per_stage[f"{phase}: {label}"] += t_next - t
    out = {
        "preset": args.preset,
        "methods": list(params.methods),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "images_per_s": round(speed),
        "quiet_estimate_s": round(wall * speed / QUIET_IMAGES_PER_S, 1),
        "threads": args.threads,
        "stages_s": {k: round(v, 1) for k, v in per_stage.items()},
        "phases_s": {k: round(v, 1) for k, v in totals.items() if isinstance(k, str)},
        "per_method_s": {
            f"{p} · {m}": round(v, 1) for (p, m), v in ((k, v) for k, v in totals.items() if isinstance(k, tuple))
        },
        "loop_s": {r["method"]: r["seconds"] for r in result["rows"]},
        "ua_after_fm": {
            r["method"]: round((r["recovered_ua"] or {}).get("fm") or float("nan"), 1) for r in result["rows"]
        },
        "load_average": os.getloadavg(),
        "home": os.environ["OPC_LAB_HOME"],
        "bench": result["run_id"],
        "breakdown_s": breakdown(RunStore(), result["run_id"]),
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(
        f"{args.preset} preset: {wall:.1f} s wall, {cpu:.1f} s CPU with {args.threads} torch thread(s) "
        f"(load average at the end {out['load_average'][0]:.2f}); cnn_small trained at {speed:.0f} images/s around "
        f"it, {QUIET_IMAGES_PER_S} on a quiet 2-core CPU: about {out['quiet_estimate_s']:.0f} s there"
    )
    print(f"run store {out['home']}, comparison {out['bench']}")
    for title in ("stages_s", "phases_s", "breakdown_s", "loop_s", "ua_after_fm"):
        print(f"\n{title}:")
        for k, v in out[title].items():
            print(f"  {k:<48} {v}")


if __name__ == "__main__":
    main()
