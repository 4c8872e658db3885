"""Evaluate (and hand-tune) the unlearning presets: UA, RA, TA and wall time of each method on one split.

Loads the shipped pretrained model for the dataset, forgets the given classes, runs each method with its preset from
``opc_core/methods/presets.json`` (plus any ``method:key=value,...`` overrides) and prints one row per method:

    UA = 100 − accuracy on D_f,  RA = accuracy on D_r,  TA = test accuracy on the retained classes (split.test_idx),
    s  = wall seconds of the unlearning call alone, cpu_s = CPU seconds it used (all threads; on a shared, busy
         machine cpu_s bounds the wall time the call would take alone).

    python scripts/tune_presets.py --dataset fashion_mnist_small opc ft opc:lr=0.02,epochs=2
    python scripts/tune_presets.py --dataset digits --json out.json

The goal per method is UA >= 95 with TA within 5 points of the original's, in under 60 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from opc_core.data import make_split  # noqa: E402
from opc_core.methods import get_method, list_methods, make_config  # noqa: E402
from opc_core.train.inference import accuracy, labels_of  # noqa: E402
from opc_core.train.zoo import load_for  # noqa: E402


def scores(model, data, split) -> dict[str, float]:
    """UA, RA, TA (retained classes only) in percent."""
    test_y = labels_of(data, split.test_idx, "test")
    kept = ~torch.isin(test_y, torch.tensor(split.forget_classes, dtype=torch.int64))
    ta_idx = split.test_idx[kept] if split.mode == "class" else split.test_idx
    return {
        "UA": 100.0 - accuracy(model, data, split.forget_idx),
        "RA": accuracy(model, data, split.retain_idx),
        "TA": accuracy(model, data, ta_idx, "test"),
    }


def parse_runs(items: list[str]) -> list[tuple[str, dict[str, str]]]:
    """``method`` or ``method:key=value,key=value`` -> (method, overrides)."""
    runs = []
    for item in items:
        method, _, rest = item.partition(":")
        pairs = {}
        for kv in filter(None, rest.split(",")):
            if "=" not in kv:
                raise SystemExit(f"expected method:key=value,key=value, got {item!r}")
            k, v = kv.split("=", 1)
            pairs[k] = v
        runs.append((method, pairs))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion_mnist_small")
    ap.add_argument("--arch", default="cnn_small")
    ap.add_argument("--forget", default="0,1,2", help="forget classes, comma-separated")
    ap.add_argument("--seed", type=int, default=0, help="split seed")
    ap.add_argument("runs", nargs="*", help="method or method:key=value,key=value (default: every method)")
    ap.add_argument("--no-preset", action="store_true", help="start from the Config defaults, not presets.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, model, _ = load_for(args.dataset, args.arch, device="cpu")
    split = make_split(data, forget_classes=[int(c) for c in args.forget.split(",")], seed=args.seed)
    runs = parse_runs(args.runs) if args.runs else [(m, {}) for m in list_methods()]
    base = scores(model, data, split)
    rows = [{"method": "original", **base, "s": 0.0}]
    print(f"{'method':<13} {'UA':>6} {'RA':>6} {'TA':>6} {'dTA':>6} {'s':>6} {'cpu_s':>6}  overrides", flush=True)
    print(
        f"{'original':<13} {base['UA']:6.1f} {base['RA']:6.1f} {base['TA']:6.1f} {0:6.1f} {0:6.1f} {0:6.1f}", flush=True
    )
    for name, over in runs:
        cfg = make_config(name, over, None if args.no_preset else args.dataset)
        t0, c0 = time.perf_counter(), time.process_time()
        out = get_method(name)(model, data, split, cfg)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        s = scores(out, data, split)
        ok = s["UA"] >= 95 and s["TA"] >= base["TA"] - 5 and min(secs, cpu) <= 60
        rows.append({"method": name, **s, "s": secs, "cpu_s": cpu, "goal": ok, "overrides": over})
        print(
            f"{name:<13} {s['UA']:6.1f} {s['RA']:6.1f} {s['TA']:6.1f} {s['TA'] - base['TA']:6.1f} {secs:6.1f}"
            f" {cpu:6.1f}"
            f"  {'ok ' if ok else 'MISS'} {over or ''}",
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
