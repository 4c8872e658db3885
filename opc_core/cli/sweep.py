"""Sub-command ``sweep`` (registered into :mod:`opc_core.cli.main`): a grid of unlearn runs, local or on Ray.

Example: ``python -m opc_core sweep --methods opc,opc:layer=features --grid opc:lam=[0.1,0.3,1,3]
--grid epochs=[1,3,5] --seeds 0,1,2 --engine ray``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from opc_core.cli.main import command, emit
from opc_core.cli.unlearn import parse_classes


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["opc:lam=[0.1,1]", "epochs=1,3"]`` -> ``{"opc:lam": ["0.1", "1"], "epochs": ["1", "3"]}``."""
    from opc_core.workflows.sweep import parse_values

    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--grid takes KEY=[v1,v2,...] (KEY a setting, or METHOD:setting), got {item!r}")
        grid[key.strip()] = parse_values(values)
    return grid


def parse_numbers(text: str | None, cast: type, what: str) -> list | None:
    if text is None:
        return None
    try:
        return [cast(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} takes comma-separated numbers, got {text!r}") from None


def _sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion_mnist_small")
    p.add_argument("--model", default="cnn_small")
    p.add_argument("--checkpoint", help="original model checkpoint (default: the zoo's best for dataset/model)")
    p.add_argument("--methods", default="opc,opc:layer=features", help="methods or variants, comma-separated")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=[V1,V2]", help="a setting's values (repeat)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--forget-sets", help="class sets separated by ';', e.g. '0,1,2;3,4,5' (default: 0,1,2)")
    g.add_argument("--forget-ratios", help="random-sample ratios, comma-separated, e.g. 0.1,0.2")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (split and unlearning), e.g. 0,1,2")
    p.add_argument("--attacks", default="all", help="recovery attacks after each cell: all, none or a list")
    p.add_argument("--equal-budget", type=int, default=0, metavar="STEPS", help="every method runs STEPS steps")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--address", help="ray: the cluster to join (default: start a local instance)")
    p.add_argument("--cpus-per-cell", type=float, default=1.0, help="ray: CPUs per cell (also torch's threads)")
    p.add_argument("--gpus-per-cell", type=float, default=0.0, help="ray: GPUs per cell, e.g. 1 or 0.5")
    p.add_argument("--no-mia", action="store_true", help="skip the membership-inference metric")
    p.add_argument("--root", help="data root")
    p.add_argument("--out", help="folder for sweep.csv, cells.csv, sweep.json, sweep.html and the figures")


def params_from(args: argparse.Namespace):
    """The sweep's typed parameters from the parsed arguments."""
    from opc_core.workflows.sweep import SweepParams

    attacks = {"all": None, "none": []}.get(args.attacks, [a.strip() for a in args.attacks.split(",") if a.strip()])
    forget_sets = [parse_classes(s) for s in args.forget_sets.split(";") if s.strip()] if args.forget_sets else None
    return SweepParams(
        dataset=args.dataset,
        model=args.model,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        grid=parse_grid(args.grid),
        forget_sets=forget_sets,
        forget_ratios=parse_numbers(args.forget_ratios, float, "--forget-ratios"),
        seeds=parse_numbers(args.seeds, int, "--seeds"),
        attacks=attacks,
        equal_budget=args.equal_budget,
        engine=args.engine,
        address=args.address,
        cpus_per_cell=args.cpus_per_cell,
        gpus_per_cell=args.gpus_per_cell,
        checkpoint=args.checkpoint,
        mia=not args.no_mia,
        data_root=args.root,
    )


def progress_logger(every_s: float = 5.0):
    """An ``on_step`` for the sweep run: one line of cells done / running / queued and the ETA, at most every
    ``every_s`` seconds and whenever a cell finishes."""
    log, last = logging.getLogger("opc_core.sweep"), {"t": -float("inf"), "step": -1}

    def on_step(info) -> None:
        if info.elapsed_s - last["t"] >= every_s or info.step != last["step"]:
            last.update(t=info.elapsed_s, step=info.step)
            c = {k: int(v) for k, v in info.evals.items() if k != "eta_s"}
            eta = f" · ETA {info.evals['eta_s']:.0f} s" if "eta_s" in info.evals and info.step < info.total else ""
            others = "".join(f" · {n} {s}" for s, n in c.items() if s not in ("done", "running", "queued") and n)
            log.info(
                "cells %d/%d finished (%d done) · %d running · %d queued%s · %.0f s%s",
                info.step,
                info.total,
                c.get("done", 0),
                c.get("running", 0),
                c.get("queued", 0),
                others,
                info.elapsed_s,
                eta,
            )

    return on_step


@command(
    "sweep", "A grid of unlearn runs (methods x settings x forget sets x seeds) with attacks, local or Ray", _sweep_args
)
def _sweep(args: argparse.Namespace) -> dict:
    import opc_core.jobs  # noqa: F401  (registers the ray engine)
    from opc_core.report.sweep import markdown_table, summarise, write_sweep
    from opc_core.runs.store import RunStore
    from opc_core.workflows import Options, start

    params = params_from(args)
    store = RunStore()
    out = start(params, store, Options(on_step=progress_logger(), device=args.device))
    summary = summarise(store, out["run_id"])
    if args.out:
        summary["files"] = {k: str(v) for k, v in write_sweep(store, out["run_id"], Path(args.out)).items()}
    emit(args, summary, lambda s: f"sweep {s['run_id']}: {s['progress']}\n\n{markdown_table(s['table'])}")
    return summary
