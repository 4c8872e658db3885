"""Regenerate docs/results.md: the shallow-vs-deep benchmark over several class triples, mean ± std per method.

Each split runs the library's bench workflow (every method with its preset, its metrics, every recovery attack, the
"where does the forgotten information live?" diagnostic and gradient inversion of the same forget images) in a run
store of its own, and its result is kept as JSON under ``docs/bench/results/`` (one file per dataset, model and split).
The Markdown is rendered from every JSON there, so a new dataset or architecture adds a section without recomputing
the others:

    python scripts/make_results.py run --dataset fashion_mnist_small --model cnn_small \
        --splits 2,5,8@7 1,4,9@13 0,3,6@21 --methods opc,opc_features,retrain,ft,rl --images 8
    python scripts/make_results.py render            # docs/results.md from the stored JSON only
    python scripts/make_results.py collect HOME ...  # keep what unfinished benchmarks of those run stores measured
    python scripts/make_results.py reinvert --home HOME --splits 2,5,8@7 ...  # only the inversion columns, again

A split is ``CLASSES@SEED``; the seed seeds the split and the unlearning. A final "Sensitivity (sweep)" section of an
existing docs/results.md is kept as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "bench" / "results"
DOC = ROOT / "docs" / "results.md"
KEEP_FROM = "## Sensitivity (sweep)"


def run(args: argparse.Namespace) -> None:
    import torch

    from opc_core.runs.record import BenchParams
    from opc_core.runs.store import RunStore
    from opc_core.workflows import start

    torch.set_num_threads(args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    home = Path(args.home or tempfile.mkdtemp(prefix="opc-results-"))
    for text in args.splits:
        classes, _, seed = text.partition("@")
        out = RESULTS / f"{args.dataset}__{args.model}__{classes.replace(',', '-')}@{seed or 0}.json"
        if out.exists() and not (args.force or args.merge):
            print(f"{out.name}: kept (use --force to recompute, --merge to replace some methods)", flush=True)
            continue
        params = BenchParams(
            dataset=args.dataset,
            model=args.model,
            methods=args.methods.split(","),
            forget_classes=[int(c) for c in classes.split(",")],
            seed=int(seed or 0),
            inversion_images=args.images,
            mia=not args.no_mia,
        )
        t0 = time.perf_counter()
        result = start(params, RunStore(home))
        result["wall_s"] = round(time.perf_counter() - t0, 1)
        if args.merge and out.exists():
            result = merge(json.loads(out.read_text()), result, params.methods)
        out.write_text(json.dumps(result, indent=1, default=str))
        print(f"{out.name}: {result['wall_s']} s", flush=True)


def reinvert(args: argparse.Namespace) -> None:
    """Measure only the gradient-inversion columns of stored results again, with today's inversion defaults (and
    ``--set``), on the very runs their rows name in the run store ``--home`` (the store ``run --home`` used): same
    models, same split, same seeded images (``--images`` of them, else the result's own count). The rows inverted are
    those inverted before and those of ``--methods`` (a result run with ``--images 0`` gains inversion columns).
    Every other column stays as it was measured."""
    import torch

    from opc_core.config import parse_kv
    from opc_core.runs.store import RunStore
    from opc_core.workflows.attack import inversion_for_runs

    torch.set_num_threads(args.threads)
    store = RunStore(args.home)
    settings = parse_kv(args.set)  # strings: build_config coerces each to its field's type
    methods = set(args.methods.split(","))
    for text in args.splits:
        classes, _, seed = text.partition("@")
        path = RESULTS / f"{args.dataset}__{args.model}__{classes.replace(',', '-')}@{seed or 0}.json"
        result = json.loads(path.read_text())
        rows = [r for r in result["rows"] if r.get("inversion") or r["method"] in methods]
        if not rows:
            print(f"{path.name}: no inverted rows, skipped", flush=True)
            continue
        n_images = args.images or result.get("inversion_images") or 8
        t0 = time.perf_counter()
        out = inversion_for_runs(
            [r["run_id"] for r in rows],
            store,
            out_run=result.get("run_id"),
            n_images=n_images,
            settings=settings,
        )
        inv = out["inversion"]
        for r in result["rows"]:
            r.pop("inversion_original", None)
            if r["run_id"] in inv:
                r["inversion"] = inv[r["run_id"]]
        rows[0]["inversion_original"] = inv["original"]
        result.update(
            inversion_images=n_images,
            inversion_original=inv["original"],
            inversion_references=inv["references"],
            inversion_config={**out["config"], "inconclusive": out["inconclusive"]},
            inversion_measured={"wall_s": round(time.perf_counter() - t0, 1), "command": "make_results.py reinvert"},
        )
        path.write_text(json.dumps(result, indent=1, default=str))
        print(f"{path.name}: inversion again in {result['inversion_measured']['wall_s']} s", flush=True)


def _row(run) -> dict:
    """A benchmark-style row from one finished unlearn run with recovery results."""
    m = run.metrics
    return {
        **{key: m.get(key) for key in ("ua", "ra", "ta", "mia", "forget_test_acc", "seconds", "steps")},
        "method": run.params.name,
        "run_id": run.id,
        "recovered_ua": {a: v["recovered_ua"] for a, v in m["recovery"].items()},
        "diagnostic": m.get("diagnostic"),
        "inversion": (m.get("inversion") or {}).get("unlearned"),
        "representation": m.get("representation"),
        "config": m.get("config"),
    }


def from_stores(homes: list[Path]) -> list[dict]:
    """Results rebuilt from every finished unlearn run with recovery results in these run stores, grouped by dataset,
    model and split: a finished benchmark as it stored itself, the runs of an unfinished one (or standalone runs of
    the same split) as rows, marked ``partial``. A finished benchmark's rows win over standalone runs of a method."""
    from opc_core.runs.store import RunStore

    groups: dict[tuple, dict] = {}
    for home in homes:
        store = RunStore(home)
        for bench in store.list(kind="bench", status="done"):
            r = bench.metrics
            groups[(r["dataset"], r["model"], tuple(r["forget_classes"]), r["seed"])] = {**r, "rows": list(r["rows"])}
        for run in store.list(kind="unlearn", status="done", oldest_first=True):
            full = store.get(run.id)
            if "recovery" not in full.metrics:
                continue
            p, sp = full.params, full.split or {}
            key = (p.dataset, p.model, tuple(sp.get("forget_classes") or []), p.seed)
            g = groups.setdefault(
                key,
                {
                    "dataset": p.dataset,
                    "model": p.model,
                    "forget_classes": list(key[2]),
                    "forget_ratio": sp.get("forget_ratio"),
                    "seed": p.seed,
                    "rows": [],
                    "partial": "the benchmark did not finish: rows from its finished runs (and standalone runs of "
                    "the same split), no inversion",
                },
            )
            if any(row["method"] == p.name for row in g["rows"]):
                continue
            g["rows"].append(_row(full))
            if not g.get("original") and full.metrics.get("recovery_original"):
                o = full.metrics.get("original") or {}
                g["original"] = {
                    "method": "original",
                    **{k: o.get(k) for k in ("ua", "ra", "ta")},
                    "recovered_ua": {a: v["recovered_ua"] for a, v in full.metrics["recovery_original"].items()},
                }
    return list(groups.values())


def merge(old: dict, new: dict, methods: list[str]) -> dict:
    """``old`` with the rows of ``methods`` replaced by (or added from) ``new``'s; everything else stays ``old``'s.
    The merged methods' inversion scores come from ``new``'s gallery (same images: same split and seed)."""
    from opc_core.config import parse_variant

    labels = {parse_variant(m)[0] for m in methods}
    fresh = {r["method"]: r for r in new["rows"] if r["method"] in labels}
    rows = [fresh.pop(r["method"], r) for r in old["rows"]] + list(fresh.values())
    merged = {**old, "rows": rows, "merged": [*old.get("merged", []), {"methods": sorted(labels), "run": new}]}
    merged["merged"][-1]["run"] = {k: new.get(k) for k in ("seconds", "wall_s", "inversion_original")}
    return merged


def render(_: argparse.Namespace | None = None) -> str:
    """docs/results.md from every stored result; returns the text."""
    from opc_core.report.bench import results_markdown

    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]
    text = results_markdown(results)
    if DOC.exists() and KEEP_FROM in DOC.read_text():
        text = text.rstrip() + "\n\n" + DOC.read_text()[DOC.read_text().index(KEEP_FROM) :]
    DOC.write_text(text.rstrip() + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run the benchmark on each split, then render")
    r.add_argument("--dataset", default="fashion_mnist_small")
    r.add_argument("--model", default="cnn_small")
    r.add_argument("--splits", nargs="+", default=["2,5,8@7", "1,4,9@13", "0,3,6@21"])
    r.add_argument("--methods", default="opc,opc_features,retrain,ft,rl")
    r.add_argument("--images", type=int, default=8, help="forget images inverted per model")
    r.add_argument("--no-mia", action="store_true")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--home", help="run store for the benchmark runs (default: a fresh temporary folder)")
    r.add_argument("--force", action="store_true", help="recompute splits that already have a result")
    r.add_argument("--merge", action="store_true", help="replace only these methods' rows in a stored result")
    sub.add_parser("render", help="only render docs/results.md from docs/bench/results/*.json")
    c = sub.add_parser(
        "collect", help="store what a run store's (possibly unfinished) benchmarks measured, then render"
    )
    c.add_argument("homes", nargs="+", help="run stores of make_results.py run --home")
    v = sub.add_parser("reinvert", help="measure only the inversion columns of stored results again, then render")
    v.add_argument("--dataset", default="fashion_mnist_small")
    v.add_argument("--model", default="cnn_small")
    v.add_argument("--splits", nargs="+", default=["2,5,8@7", "1,4,9@13", "0,3,6@21"])
    v.add_argument("--home", required=True, help="the run store that holds the results' runs")
    v.add_argument("--set", nargs="*", default=[], help="inversion settings KEY=VALUE over the defaults")
    v.add_argument("--threads", type=int, default=2)
    v.add_argument("--methods", default="opc,opc_features,retrain,ft,rl", help="rows to invert besides those already")
    v.add_argument("--images", type=int, help="forget images per model (default: the result's own, else 8)")
    args = ap.parse_args(argv)
    if args.cmd == "collect":
        for result in from_stores([Path(h) for h in args.homes]):
            classes = "-".join(map(str, result["forget_classes"]))
            name = f"{result['dataset']}__{result['model']}__{classes}@{result['seed']}.json"
            if not (RESULTS / name).exists() or "partial" in json.loads((RESULTS / name).read_text()):
                RESULTS.mkdir(parents=True, exist_ok=True)
                (RESULTS / name).write_text(json.dumps(result, indent=1, default=str))
    if args.cmd == "run":
        run(args)
    if args.cmd == "reinvert":
        reinvert(args)
    render()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
