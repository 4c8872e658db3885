"""Sub-commands ``attack`` and ``bench`` (registered into :mod:`opc_core.cli.main`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from opc_core.cli.main import command, emit, run_workflow
from opc_core.cli.unlearn import parse_classes
from opc_core.config import parse_kv


def _attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="id of a stored unlearn run")
    p.add_argument("attack", choices=("recovery", "inversion"))
    p.add_argument("--images", type=int, default=8, help="forget images to reconstruct (inversion)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="attack setting, e.g. cal_exclude_forget=true, eps=1e-3, iterations=200",
    )


@command("attack", "Run the recovery attacks or gradient inversion on a stored unlearn run", _attack_args)
def _attack(args: argparse.Namespace) -> dict:
    from opc_core.runs.record import AttackParams

    params = AttackParams(
        attack=args.attack, run_ids=[args.run], n_images=args.images, settings=settings_of(parse_kv(args.set))
    )
    res = run_workflow(args, params)
    out = {"run_id": args.run, "attack": args.attack, "attack_run": res["run_id"], **res}

    def human(r):
        if r["attack"] == "recovery":
            return "\n".join(f"{k:<10} recovered UA {v:6.1f}%" for k, v in r["recovered_ua"].items())
        return "\n".join(f"{k:<24} PSNR {v['psnr']:6.2f} dB  SSIM {v['ssim']:.3f}" for k, v in r["inversion"].items())

    emit(args, out, human)
    return out


def settings_of(raw: dict[str, str]) -> dict:
    """KEY=VALUE strings as JSON values: true/false, integers, floats, else the text."""
    out = {}
    for k, v in raw.items():
        low = v.lower()
        if low in ("true", "false"):
            out[k] = low == "true"
            continue
        for cast in (int, float, str):
            try:
                out[k] = cast(v)
                break
            except ValueError:
                continue
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
    from opc_core.report.bench import markdown_table, write_outputs
    from opc_core.runs.record import BenchParams

    params = BenchParams(
        dataset=args.dataset,
        model=args.model,
        methods=args.methods.split(","),
        forget_classes=parse_classes(args.forget_classes),
        forget_ratio=args.forget_ratio,
        seed=args.seed,
        inversion_images=args.images,
    )
    res = run_workflow(args, params, every_s=10)
    if args.out:
        write_outputs(res, Path(args.out))
    emit(args, res, markdown_table)
    return res
