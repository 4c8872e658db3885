"""Benchmark: each unlearning method's preset on the embedded default, and OPC's per-step cost against FT's.

Part 1 runs every method's tuned preset (fashion_mnist_small, shipped cnn_small, forget classes 0,1,2) and reports
wall time, steps and UA/RA/TA (no periodic monitor, no MIA). Part 2 times OPC and FT side by side on the same batch
size and step count, alternating runs, and reports the per-step cost ratio (OPC draws one extra forget batch).

    python scripts/bench_methods.py [--methods all|opc,ft,...] [--device cpu] [--json] [--skip-presets]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from opc_core.data import make_split  # noqa: E402
from opc_core.env.device import default_device, describe_device  # noqa: E402
from opc_core.methods import get_method, list_methods, make_config  # noqa: E402
from opc_core.metrics.accuracy import retained_test_idx  # noqa: E402
from opc_core.train.inference import accuracy  # noqa: E402
from opc_core.train.zoo import load_for  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_preset(name, data, model, split, dataset, device) -> dict:
    cfg = make_config(name, {}, dataset)
    steps = []
    _sync(device)
    t0 = time.perf_counter()
    out = get_method(name)(model, data, split, cfg, on_step=steps.append)
    _sync(device)
    sec = time.perf_counter() - t0
    return {
        "method": name,
        "seconds": round(sec, 2),
        "steps": steps[-1].step if steps else 0,
        "ms_per_step": round(1000 * sec / max(1, steps[-1].step if steps else 1), 1),
        "ua": round(100 - accuracy(out, data, split.forget_idx), 2),
        "ra": round(accuracy(out, data, split.retain_idx), 2),
        "ta": round(accuracy(out, data, retained_test_idx(data, split), split="test"), 2),
    }


def per_step(name, data, model, split, steps, batch, device) -> float:
    cfg = replace(make_config(name, {}), max_steps=steps, batch_size=batch, epochs=100.0)
    seen = []
    _sync(device)
    t0 = time.perf_counter()
    get_method(name)(model, data, split, cfg, on_step=seen.append)
    _sync(device)
    assert seen[-1].step == steps
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="fashion_mnist_small")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--device")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-presets", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    device = default_device(args.device)
    data, model, _ = load_for(args.dataset, "cnn_small", device=device)
    split = make_split(data, forget_classes=[0, 1, 2], seed=0)
    names = list_methods() if args.methods == "all" else args.methods.split(",")
    rows = [] if args.skip_presets else [time_preset(n, data, model, split, args.dataset, device) for n in names]
    batch = make_config("opc", {}, args.dataset).batch_size
    times = {"opc": [], "ft": []}
    for _ in range(args.repeats):
        for n in times:
            times[n].append(per_step(n, data, model, split, args.steps, batch, device))
    med = {n: statistics.median(v) for n, v in times.items()}
    out = {
        "device": describe_device(device),
        "dataset": args.dataset,
        "presets": rows,
        "per_step": {
            "batch": batch,
            "steps": args.steps,
            "repeats": args.repeats,
            "opc_ms": round(1000 * med["opc"], 2),
            "ft_ms": round(1000 * med["ft"], 2),
            "ratio": round(med["opc"] / med["ft"], 3),
        },
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"device: {out['device']}   dataset: {args.dataset}   forget classes 0,1,2")
    if rows:
        print(f"{'method':<13} {'seconds':>8} {'steps':>6} {'ms/step':>8} {'UA':>6} {'RA':>6} {'TA':>6}")
        for r in rows:
            print(
                f"{r['method']:<13} {r['seconds']:>8.1f} {r['steps']:>6} {r['ms_per_step']:>8.1f} {r['ua']:>6.1f} "
                f"{r['ra']:>6.1f} {r['ta']:>6.1f}"
            )
    p = out["per_step"]
    print(
        f"per step (batch {p['batch']}, median of {p['repeats']} x {p['steps']} steps): OPC {p['opc_ms']:.1f} ms, "
        f"FT {p['ft_ms']:.1f} ms, ratio {p['ratio']:.3f}"
    )


if __name__ == "__main__":
    main()
