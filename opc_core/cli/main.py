"""The command line: every workflow of the dashboard, headless.

Each sub-command parses its arguments, calls the library and writes a human summary, or one JSON document with
``--json``. Heavy modules are imported inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

from opc_core.runs.lifecycle import Terminated

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Any], str]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None]):
    """Register the decorated handler as sub-command ``name``; ``arguments`` adds its options to a parser."""

    def deco(handler: Callable[[argparse.Namespace], Any]):
        COMMANDS[name] = (arguments, handler, help)
        return handler

    return deco


def emit(args: argparse.Namespace, payload: Any, human: Callable[[Any], str]) -> None:
    """Write ``payload`` as strict JSON (``--json``; NaN and infinities become null) or as ``human(payload)``."""
    from opc_core.env.jsonable import to_jsonable

    if getattr(args, "json", False):
        text = json.dumps(to_jsonable(payload), indent=2, allow_nan=False)
    else:
        text = human(payload)
    sys.stdout.write(text.rstrip("\n") + "\n")


def _table(rows: list[dict], cols: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [
        [("" if r.get(c) is None else f"{r[c]:.2f}" if isinstance(r.get(c), float) else str(r[c])) for c in cols]
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# --- datasets -------------------------------------------------------------------------------------------------------
def _datasets_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", help="data root (default: $OPC_LAB_DATA or <home>/data)")
    p.add_argument("--download", metavar="NAME", help="download NAME through torchvision (needs network)")


@command("datasets", "List the datasets and whether each is available here", _datasets_args)
def _datasets(args: argparse.Namespace) -> None:
    from opc_core.data import list_datasets, load_dataset

    if args.download:
        load_dataset(args.download, root=args.root, download=True)
    rows = list_datasets(args.root)
    emit(args, rows, lambda r: _table(r, ["name", "available", "source", "description"]))


# --- zoo ------------------------------------------------------------------------------------------------------------
def _zoo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset")
    p.add_argument("--model")
    p.add_argument(
        "--install",
        metavar="NAME.safetensors",
        help="validate this checkpoint (its NAME.json sidecar beside it) against --dataset and copy it into "
        "the local zoo, as the Model page's upload does",
    )


@command("zoo", "List the pretrained checkpoints (shipped and local); --install adds one", _zoo_args)
def _zoo(args: argparse.Namespace) -> None:
    from pathlib import Path

    from opc_core.train.zoo import check_upload_size, install_checkpoint, list_checkpoints

    if args.install:
        if not args.dataset:
            raise ValueError("--install needs --dataset: the checkpoint is validated against that dataset")
        weights = Path(args.install)
        sidecar = weights.with_suffix(".json")
        for f in (weights, sidecar):
            if not f.is_file():
                raise FileNotFoundError(f"{f} not found: --install needs NAME.safetensors and NAME.json side by side")
        check_upload_size(weights.stat().st_size + sidecar.stat().st_size)  # before reading either file
        name = install_checkpoint([(f.name, f.read_bytes()) for f in (weights, sidecar)], args.dataset)
        logging.getLogger("opc_core.train.zoo").info("installed %s into the local zoo", name)
    rows = [e.to_dict() for e in list_checkpoints(args.dataset, args.model)]
    for r in rows:
        r.pop("recipe")
    emit(args, rows, lambda r: _table(r, ["name", "dataset", "model", "test_accuracy", "shipped"]))


# --- report -------------------------------------------------------------------------------------------------------
def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="folder for report.html, runs.csv and runs.json")
    p.add_argument("--runs", help="comma-separated run ids (default: every finished unlearn run)")
    p.add_argument("--dataset", help="only runs on this dataset")
    p.add_argument("--method", help="only runs of this method")
    p.add_argument("--title", help="the report's title")


@command("report", "Export unlearn runs: a self-contained HTML report, a CSV table and the JSON records", _report_args)
def _report(args: argparse.Namespace) -> dict:
    from opc_core.report.tables import write_report
    from opc_core.runs.store import RunStore

    store = RunStore()
    if args.runs:
        runs = [store.get(i.strip()) for i in args.runs.split(",") if i.strip()]
    else:
        runs = [r for r in store.list(kind="unlearn", oldest_first=True) if r.done]
    for key in ("dataset", "method"):
        if getattr(args, key):
            runs = [r for r in runs if getattr(r.params, key) == getattr(args, key)]
    for why in store.unreadable.values():
        logging.getLogger("opc_core.report").warning("left out of the report: %s", why)
    out = {
        "runs": [r.id for r in runs],
        "skipped": sorted(store.unreadable),
        **write_report(runs, args.out, args.title),
    }
    emit(args, out, lambda o: f"{len(o['runs'])} run(s) -> {o['html']}, {o['csv']}, {o['json']}")
    return out


# --- train ----------------------------------------------------------------------------------------------------------
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="checkpoint path stem or folder (default: the local zoo)")
    p.add_argument("--root", help="data root")


@command("train", "Train a base model and save it as a checkpoint", _train_args)
def _train(args: argparse.Namespace) -> dict:
    from opc_core.runs.record import TrainParams

    params = TrainParams(
        dataset=args.dataset,
        model=args.model,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        out=args.out,
        data_root=args.root,
    )
    out = run_workflow(args, params, every_s=5)
    emit(args, out["meta"], lambda m: f"test accuracy {m['test_accuracy']:.2f}% -> {m['path']}")
    return out


def progress_logger(name: str, every_s: float):
    """An ``on_step`` that logs the step and its loss terms at most every ``every_s`` seconds, and the last step."""
    log, last = logging.getLogger(name), {"t": -float("inf")}

    def on_step(info) -> None:
        if info.elapsed_s - last["t"] >= every_s or info.step == info.total:
            last["t"] = info.elapsed_s
            terms = " ".join(f"{k} {v:.4f}" for k, v in info.losses.items())
            log.info("step %d/%d %s (%.0fs)", info.step, info.total, terms, info.elapsed_s)

    return on_step


def run_workflow(args: argparse.Namespace, params, every_s: float = 5.0) -> dict:
    """Run the workflow of ``params`` here as a stored run (the one lifecycle), logging its progress.

    Its settings are checked first (:func:`preflight`), so a bad value is one error line and stores nothing.
    """
    from opc_core.workflows import Options, start

    preflight(params)
    on_step = progress_logger(f"opc_core.{type(params).kind}", every_s)
    return start(params, options=Options(on_step=on_step, device=args.device))


def preflight(params) -> None:
    """Build what a run of ``params`` builds from its settings (method, training and attack configs, named datasets,
    models and runs) without running it: each refusal names the key, and nothing is stored. The workflow builds the
    same again when it runs, so this only moves the error before the run exists.
    """
    from opc_core.config import build_config, parse_variant
    from opc_core.data import DATASETS
    from opc_core.methods import list_methods, make_config
    from opc_core.models import MODELS

    kind = type(params).kind
    if kind in ("train", "unlearn", "bench"):
        DATASETS.get(params.dataset)
        MODELS.get(params.model)
    if kind == "train":
        from opc_core.train.zoo import train_config, train_destination

        train_config(params)
        train_destination(params.dataset, params.model, params.seed, params.out)
    elif kind == "unlearn":
        make_config(params.method, {"seed": params.seed, **params.overrides}, params.dataset)
    elif kind == "bench":
        from opc_core.attacks.inversion import InversionConfig

        for spec in list_methods() if list(params.methods) == ["all"] else params.methods:
            _, method, over = parse_variant(spec)
            make_config(method, {"seed": params.seed, **over}, params.dataset)
        build_config(InversionConfig, overrides=params.inversion_settings, owner="gradient inversion")
    elif kind == "attack":
        from opc_core.attacks import list_attacks
        from opc_core.attacks.inversion import InversionConfig
        from opc_core.runs.store import RunStore
        from opc_core.workflows.attack import _configs

        if params.attack == "recovery":
            _configs(list_attacks(), params.settings)
        else:
            build_config(InversionConfig, overrides=params.settings, owner="gradient inversion")
        store = RunStore()
        for run_id in params.run_ids:
            store.get(run_id)  # KeyError naming the run


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error of the command line."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered sub-command."""
    parser = _Parser(prog="python -m opc_core", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_args, _, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.add_argument("--json", action="store_true", help="print one JSON document")
        p.add_argument("--device", help="cpu, cuda, mps (default: $OPC_LAB_DEVICE, else the best available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for bad input, 1 for failures)."""
    _load_command_modules()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already written as one line)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    previous = signal.signal(signal.SIGTERM, _terminate)  # a run killed with SIGTERM ends "interrupted", not "running"
    try:
        COMMANDS[args.command][1](args)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        _say("error", msg)
        return 2
    except (InterruptedError, KeyboardInterrupt) as exc:
        _say("stopped", str(exc) or "Ctrl-C")
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    except Terminated:
        _say("stopped", "terminated (SIGTERM)")
        return 143
    except Exception as exc:  # one line, never a traceback (``-v`` logs it); the run, if any, recorded it in full
        logging.getLogger("opc_core.cli").debug("traceback", exc_info=True)
        _say("error", f"{type(exc).__name__}: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _say(what: str, message: object) -> None:
    """One line on stderr, whatever the message holds (a multi-line text is joined)."""
    sys.stderr.write(f"{what}: {' '.join(str(message).split())}\n")


def _terminate(signum, frame) -> None:
    raise Terminated(f"signal {signum}")


def _load_command_modules() -> None:
    """Import the modules that add further sub-commands (unlearning, attacks, benchmark), when present."""
    import importlib

    for mod in ("opc_core.cli.unlearn", "opc_core.cli.attack", "opc_core.cli.sweep"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
