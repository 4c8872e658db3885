"""Sub-commands ``attack`` and ``bench`` (registered into :mod:`opc_core.cli.main`)."""

from __future__ import annotations

import argparse
import logging

from opc_core.cli.main import command, emit
from opc_core.cli.unlearn import _parse_classes


def _attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="id of a stored unlearn run")
    p.add_argument("attack", choices=("recovery", "inversion"))
    p.add_argument("--images", type=int, default=8, help="forget images to reconstruct (inversion)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="attack setting, e.g. cal_exclude_forget=true, eps=1e-3, iterations=200")


def _settings(items: list[str]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"expected key=value, got {item!r}")
        k, v = (s.strip() for s in item.split("=", 1))
        low = v.lower()
        if low in ("true", "false"):
            out[k] = low == "true"
        else:
            try:
                out[k] = int(v)
            except ValueError:
                try:
                    out[k] = float(v)
                except ValueError:
                    out[k] = v
    return out


@command("attack", "Run the recovery attacks or gradient inversion on a stored unlearn run", _attack_args)
def _attack(args: argparse.Namespace) -> dict:
    from opc_core.runs.store import RunStore
    from opc_core.workflows import attack as analysis

    store = RunStore()
    settings = _settings(args.set)
    if args.attack == "recovery":
        res = analysis.recovery_for_run(args.run, store, settings)
        out = {"run_id": args.run, "attack": "recovery",
               "recovered_ua": {k: v["recovered_ua"] for k, v in res.items()}, "details": res}
    else:
        run = store.create("attack", {"attack": "inversion", "run_ids": [args.run], "settings": settings},
                           parent=args.run, status="running")
        try:
            res = analysis.inversion_for_runs([args.run], store, out_run=run.id, n_images=args.images,
                                              settings=settings)
        except BaseException as exc:
            store.set_status(run.id, "failed", error=str(exc))
            raise
        store.update_metrics(run.id, res)
        store.set_status(run.id, "done")
        out = {"run_id": args.run, "attack": "inversion", "attack_run": run.id, **res}

    def human(r):
        if r["attack"] == "recovery":
            return "\n".join(f"{k:<10} recovered UA {v:6.1f}%" for k, v in r["recovered_ua"].items())
        return "\n".join(f"{k:<24} PSNR {v['psnr']:6.2f} dB  SSIM {v['ssim']:.3f}" for k, v in r["inversion"].items())

    emit(args, out, human)
    return out


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion_mnist_small")
    p.add_argument("--model", default="cnn_small")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--forget-classes", help="comma-separated classes (default 0,1,2)")
    g.add_argument("--forget-ratio", type=float)
    p.add_argument("--methods", default="all", help="all, or a comma-separated list")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, default=4, help="forget images for gradient inversion (0 = skip)")
    p.add_argument("--out", help="folder for bench.json, bench.md and the chart (HTML + PNG)")


@command("bench", "Shallow-vs-deep benchmark: methods x metrics x all attacks, with the paper-style chart", _bench_args)
def _bench(args: argparse.Namespace) -> dict:
    from opc_core.workflows.bench import markdown_table, run_bench

    log = logging.getLogger("opc_core.workflows.bench")
    last = {"t": -10.0}

    def on_step(info):
        if info.elapsed_s - last["t"] >= 10:
            last["t"] = info.elapsed_s
            log.info("step %d %s", info.step, " ".join(f"{k} {v:.3f}" for k, v in info.losses.items()))

    res = run_bench(args.dataset, args.model, args.methods.split(","),
                    forget_classes=_parse_classes(args.forget_classes), forget_ratio=args.forget_ratio,
                    seed=args.seed, inversion_images=args.images, out=args.out, on_step=on_step)
    emit(args, res, markdown_table)
    return res
