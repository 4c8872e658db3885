"""Evaluate (and hand-tune) the unlearning presets over several splits: UA, RA, TA, optionally FM, and wall time.

Loads the shipped pretrained model for the dataset and, for every split given, runs each method with its preset from
``opc_core/methods/presets.json`` (plus any ``method:key=value,...`` overrides), its unlearning seeded with the split's
seed as the CLI and the dashboard do. One row per method and split:

    UA = 100 − accuracy on D_f,  RA = accuracy on D_r,  TA = test accuracy on the retained classes (split.test_idx),
    FM = recovered UA after the feature-mapping attack (with --fm), s = wall seconds of the unlearning call alone.

    python scripts/tune_presets.py opc_features ft:epochs=2 --splits 0,1,2@0 2,5,8@7 1,4,9@13 r0.1@0 --fm
    python scripts/tune_presets.py --dataset digits --json out.json

A split is ``CLASSES@SEED`` (class-wise) or ``rRATIO@SEED`` (random-sample). The goal per method is UA >= 95 with TA
within 5 points of the original's on every split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from opc_core.config import parse_variant  # noqa: E402
from opc_core.data import make_split  # noqa: E402
from opc_core.methods import get_method, list_methods, make_config  # noqa: E402
from opc_core.metrics import evaluate  # noqa: E402
from opc_core.train.zoo import load_for  # noqa: E402


def parse_split(text: str) -> dict:
    """``2,5,8@7`` -> class-wise forget classes and seed; ``r0.1@0`` -> random-sample ratio and seed."""
    what, _, seed = text.partition("@")
    if what.startswith("r"):
        return {"forget_ratio": float(what[1:]), "seed": int(seed or 0)}
    return {"forget_classes": [int(c) for c in what.split(",")], "seed": int(seed or 0)}


def scores(original, model, data, split) -> dict[str, float]:
    """UA, RA, TA (retained classes only, class-wise) in percent, from the library's evaluate()."""
    m = evaluate(original, model, data, split, mia=False)
    return {"UA": m["ua"], "RA": m["ra"], "TA": m["ta"]}


def fm_ua(original, model, data, split) -> float:
    from opc_core.attacks import run_recovery

    return run_recovery(model, original, data, split, ["fm"])["fm"]["recovered_ua"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fashion_mnist_small")
    ap.add_argument("--arch", default="cnn_small")
    ap.add_argument("--splits", nargs="+", default=["0,1,2@0"], help="CLASSES@SEED or rRATIO@SEED")
    ap.add_argument("runs", nargs="*", help="method or method:key=value:key=value (default: every method)")
    ap.add_argument("--no-preset", action="store_true", help="start from the Config defaults, not presets.json")
    ap.add_argument("--fm", action="store_true", help="also run the FM attack on each result")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data, model, _ = load_for(args.dataset, args.arch, device="cpu")
    runs = [parse_variant(r.replace(",", ":")) for r in args.runs] if args.runs else []
    runs = runs or [(m, m, {}) for m in list_methods()]
    rows = []
    print(f"{'split':<10} {'method':<28} {'UA':>6} {'RA':>6} {'TA':>6} {'dTA':>6} {'FM':>6} {'s':>6}", flush=True)
    for text in args.splits:
        sp = parse_split(text)
        split = make_split(data, **sp)
        base = scores(model, model, data, split)
        rows.append({"split": text, "method": "original", **base})
        print(f"{text:<10} {'original':<28} {base['UA']:6.1f} {base['RA']:6.1f} {base['TA']:6.1f}", flush=True)
        for label, name, over in runs:
            if get_method(name).class_wise_only and "forget_ratio" in sp:
                continue
            cfg = make_config(name, {"seed": sp["seed"], **over}, None if args.no_preset else args.dataset)
            t0 = time.perf_counter()
            out = get_method(name)(model, data, split, cfg)
            secs = time.perf_counter() - t0
            s = scores(model, out, data, split)
            fm = fm_ua(model, out, data, split) if args.fm else float("nan")
            ok = s["UA"] >= 95 and s["TA"] >= base["TA"] - 5
            rows.append(
                {
                    "split": text,
                    "method": label,
                    **s,
                    "FM": fm,
                    "dTA": s["TA"] - base["TA"],
                    "s": secs,
                    "goal": ok,
                    "overrides": over,
                }
            )
            print(
                f"{text:<10} {label:<28} {s['UA']:6.1f} {s['RA']:6.1f} {s['TA']:6.1f} {s['TA'] - base['TA']:6.1f}"
                f" {fm:6.1f} {secs:6.1f}  {'ok' if ok else 'MISS'}",
                flush=True,
            )
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
