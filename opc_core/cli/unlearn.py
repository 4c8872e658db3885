"""Sub-commands ``methods`` and ``unlearn`` (registered into :mod:`opc_core.cli.main`)."""

from __future__ import annotations

import argparse

from opc_core.cli.main import command, emit, run_workflow
from opc_core.config import parse_kv


def parse_classes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise ValueError(f"--forget-classes takes comma-separated class indices, got {text!r}") from None


def _methods_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="show the tuned preset values for this dataset")


@command("methods", "List the unlearning methods and their settings", _methods_args)
def _methods(args: argparse.Namespace) -> list[dict]:
    from opc_core.methods import get_method, list_methods, load_presets

    presets = load_presets().get(args.dataset or "", {})
    rows = []
    for name in list_methods():
        row = get_method(name).describe()
        if args.dataset:
            row["preset"] = presets.get(name, {})
        rows.append(row)

    def human(rs):
        return "\n".join(f"{r['name']:<13} {r['description']}" for r in rs)

    emit(args, rows, human)
    return rows


def _unlearn_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="fashion_mnist_small")
    p.add_argument("--model", default="cnn_small")
    p.add_argument("--checkpoint", help="original model checkpoint (default: the zoo's best for dataset/model)")
    p.add_argument("--method", required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--forget-classes", help="comma-separated classes to forget, e.g. 0,1,2 (default)")
    g.add_argument("--forget-ratio", type=float, help="forget a random fraction of the training set, e.g. 0.1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a method setting")
    p.add_argument("--no-mia", action="store_true", help="skip the membership-inference metric")
    p.add_argument("--root", help="data root")


@command("unlearn", "Run one unlearning method and store the run", _unlearn_args)
def _unlearn(args: argparse.Namespace) -> dict:
    from opc_core.runs.record import UnlearnParams

    params = UnlearnParams(
        dataset=args.dataset,
        model=args.model,
        method=args.method,
        checkpoint=args.checkpoint,
        forget_classes=parse_classes(args.forget_classes),
        forget_ratio=args.forget_ratio,
        seed=args.seed,
        overrides=parse_kv(args.set),
        mia=not args.no_mia,
        data_root=args.root,
    )
    out = run_workflow(args, params)

    def human(r):
        mia = "n/a" if r["mia"] is None else f"{r['mia']:.1f}"
        return (
            f"run {r['run_id']}: {r['label']} UA {r['ua']:.1f}  RA {r['ra']:.1f}  TA {r['ta']:.1f}  "
            f"MIA {mia}  ({r['seconds']:.1f}s)\ncheckpoint: {r['checkpoint']}"
        )

    emit(args, out, human)
    return out
