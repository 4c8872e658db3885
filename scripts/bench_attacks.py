"""Benchmark: the recovery attacks and the gradient inversion on the embedded default, on this machine.

Setting: fashion_mnist_small with the shipped cnn_small, class-wise split forgetting classes 0, 1, 2. Attacked models:
the original itself ("original") and a shallow copy whose forget rows of the head are zeroed ("head-zeroed"), so FM
should recover nearly everything on both.

Measured:
1. FM and HR wall time *including* feature extraction (a fresh FeatureBank per run; the target is < 2 s), median of
   ``--repeats``, and the process CPU time (on a shared machine, the CPU time of a 1-thread run is what the wall time
   would be on an idle core); then all five attacks on one shared extraction, with their recovered UA.
2. Inversion throughput (images x iterations per second) of ``--images`` images reconstructed as one batch
   (vmap) vs one after another (plain autograd), runs alternating, median of ``--repeats``; and the ratio.
3. The interactive budget (the dashboard aims at about 40 s for 8 images): ``InversionConfig()`` (2 restarts) and the
   same with 1 restart, for ``--images`` images batched, one after the other on the same machine state, with mean
   PSNR / SSIM and the ratio of their times.

    python scripts/bench_attacks.py [--threads 2] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from opc_core.attacks import FeatureBank, get_attack, list_attacks, run_recovery, score_recovery  # noqa: E402
from opc_core.attacks.inversion import InversionConfig, invert  # noqa: E402
from opc_core.data import make_split  # noqa: E402
from opc_core.env.device import describe_device  # noqa: E402
from opc_core.train.zoo import load_for  # noqa: E402


def head_zeroed(model, classes):
    shallow = copy.deepcopy(model)
    with torch.no_grad():
        shallow.classifier.weight[list(classes)] = 0
        shallow.classifier.bias[list(classes)] = -5
    return shallow


def time_recovery(models, original, data, split, repeats):
    rows = []
    for label, model in models.items():
        for name in ("fm", "hr"):
            times, cpu, ua = [], [], None
            for _ in range(repeats):
                t0, c0 = time.perf_counter(), time.process_time()
                res = get_attack(name)(model, original, data, split)  # fresh bank: extraction included
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                ua = score_recovery(res, data)["recovered_ua"]
            rows.append(
                {
                    "model": label,
                    "attack": name,
                    "seconds_median": statistics.median(times),
                    "seconds_min": min(times),
                    "cpu_seconds_median": statistics.median(cpu),
                    "recovered_ua": ua,
                }
            )
    return rows


def all_attacks(models, original, data, split):
    out = {}
    for label, model in models.items():
        bank = FeatureBank(model, original, data, split)
        res = run_recovery(model, original, data, split, bank=bank)
        out[label] = {
            "extraction_seconds": bank.seconds,
            **{n: {"recovered_ua": r["recovered_ua"], "seconds": r["seconds"]} for n, r in res.items()},
        }
    return out


def inversion_throughput(model, data, images, labels, iterations, repeats):
    cfg = InversionConfig(iterations=iterations, snapshot_every=0)
    runs = {True: [], False: []}
    for _ in range(repeats):
        for batched in (True, False):  # alternate, so both see the same machine state
            t0 = time.perf_counter()
            invert(model, data, images, labels, dataclasses.replace(cfg, batched=batched))
            runs[batched].append(len(images) * iterations / (time.perf_counter() - t0))
    batched, sequential = statistics.median(runs[True]), statistics.median(runs[False])
    return {
        "images": len(images),
        "iterations": iterations,
        "batched_img_it_per_s": batched,
        "sequential_img_it_per_s": sequential,
        "ratio": batched / sequential,
    }


BUDGET_S = 40.0
"""The interactive budget the dashboard aims at: 8 images inverted in about this many seconds on the 2-core CPU."""


def interactive_budget(model, data, images, labels):
    rows, default = [], InversionConfig().restarts
    for restarts in (default, 1):
        cfg = InversionConfig(restarts=restarts)
        c0 = time.process_time()
        res = invert(model, data, images, labels, cfg)
        rows.append(
            {
                "method": cfg.method,
                "images": len(images),
                "iterations": cfg.iterations,
                "restarts": restarts,
                "default": restarts == default,
                "seconds": res.seconds,
                "cpu_seconds": time.process_time() - c0,
                "load_average": os.getloadavg()[0],
                "psnr_mean": res.psnr.mean().item(),
                "ssim_mean": res.ssim.mean().item(),
                "within_budget": res.seconds <= BUDGET_S,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion_mnist_small")
    ap.add_argument("--arch", default="cnn_small")
    ap.add_argument("--forget", default="0,1,2")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=20, help="iterations per throughput run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data, original, _ = load_for(args.dataset, args.arch, device=args.device)
    forget = [int(c) for c in args.forget.split(",")]
    split = make_split(data, forget_classes=forget, seed=0)
    models = {"original": original, "head-zeroed": head_zeroed(original, forget)}
    images, labels = data.train_x[split.forget_idx[: args.images]], data.train_y[split.forget_idx[: args.images]]
    report = {
        "device": describe_device(torch.device(args.device)),
        "threads": torch.get_num_threads(),
        "load_average_before": os.getloadavg()[0],
        "dataset": args.dataset,
        "arch": args.arch,
        "forget": forget,
        "n_forget": len(split.forget_idx),
        "n_cal": len(split.cal_idx),
        "recovery_timing": time_recovery(models, original, data, split, args.repeats),
        "all_attacks": all_attacks(models, original, data, split),
        "inversion_throughput": inversion_throughput(original, data, images, labels, args.iterations, args.repeats),
        "inversion_interactive": interactive_budget(original, data, images, labels),
    }
    report["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2) if args.json else render(report))


def render(r: dict) -> str:
    lines = [
        f"{r['dataset']} / {r['arch']}, forget {r['forget']} ({r['n_forget']} images), D_cal {r['n_cal']}; "
        f"{r['device']}, {r['threads']} threads, load avg {r['load_average_before']:.1f} -> "
        f"{r['load_average_after']:.1f}",
        "",
        "FM / HR, feature extraction included (target < 2 s)",
        f"{'model':<13}{'attack':<8}{'median s':>10}{'min s':>8}{'CPU s':>8}{'rec. UA %':>11}",
    ]
    for row in r["recovery_timing"]:
        lines.append(
            f"{row['model']:<13}{row['attack']:<8}{row['seconds_median']:>10.2f}{row['seconds_min']:>8.2f}"
            f"{row['cpu_seconds_median']:>8.2f}{row['recovered_ua']:>11.1f}"
        )
    lines += ["", "All attacks on one shared extraction: recovered UA % (seconds)"]
    lines.append(f"{'model':<13}{'extract s':>10}" + "".join(f"{get_attack(n).label:>17}" for n in list_attacks()))
    for label, row in r["all_attacks"].items():
        cells = "".join(f"{row[n]['recovered_ua']:>9.1f} ({row[n]['seconds']:>4.2f})" for n in list_attacks())
        lines.append(f"{label:<13}{row['extraction_seconds']:>10.2f}{cells}")
    t = r["inversion_throughput"]
    lines += [
        "",
        f"Inversion throughput, {t['images']} images x {t['iterations']} iterations (images*iterations/s)",
        f"  batched (vmap) {t['batched_img_it_per_s']:.1f}   one by one {t['sequential_img_it_per_s']:.1f}   "
        f"ratio {t['ratio']:.2f}x",
        f"Interactive budget (about {BUDGET_S:.0f} s for 8 images), images batched:",
    ]
    for i in r["inversion_interactive"]:
        lines.append(
            f"  {i['method']} {i['restarts']} x {i['iterations']} iterations{' (default)' if i['default'] else ''}, "
            f"{i['images']} images: {i['seconds']:.1f} s, CPU {i['cpu_seconds']:.1f} s, load {i['load_average']:.1f} "
            f"({'within' if i['within_budget'] else 'OVER'} budget), PSNR {i['psnr_mean']:.1f} dB, "
            f"SSIM {i['ssim_mean']:.3f}"
        )
    runs = r["inversion_interactive"]
    if len(runs) == 2:
        lines.append(f"  ratio default / 1 restart: {runs[0]['seconds'] / runs[1]['seconds']:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
