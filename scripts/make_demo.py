"""Make the shipped demo (assets/demo): the full shallow-vs-deep comparison, computed with this project's own code.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/make_demo.py [--seeds 0,1,2] [--out assets/demo]
    .venv/bin/python scripts/make_demo.py --ranges-from HOME[,HOME...]   # only step 4, from comparisons stored there

1. runs the ``full`` preset (opc_core.workflows.presets) in a fresh temporary run store, as the dashboard's worker
   would: every method, its metrics, every recovery attack, the gradient inversion;
2. stores each method's maps (UMAP and PCA) and depth view, as the idle worker does after a live run;
3. exports the comparison with its runs, step records, checkpoints, maps and inversion gallery
   (opc_core.workflows.demo.export_demo);
4. measures the expected ranges the guided reading shows beside each value: the min and max of every metric per
   method over the full comparison, the ``fast`` preset with each of ``--seeds`` and the benchmark results of
   docs/bench/results on the same dataset and model (other class triples, ``scripts/make_results.py``), written to
   expected.json.

Nothing in the output is edited by hand; re-run this script after a change to the methods or attack defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEYS = ("ua", "ra", "ta", "mia", "contraction_radius", "psnr", "ssim")


def metric_rows(store, bench_id: str) -> list[tuple[str, dict[str, float]]]:
    """``(method label, {metric key: value})`` of each finished method of a comparison."""
    from opc_core.report.tables import metric_value

    out = []
    for run in store.list(kind="unlearn", parent=bench_id, status="done"):
        keys = [*KEYS, *(f"recovered_ua_{a}" for a in run.metrics.get("recovery") or {})]
        values = {k: v for k in keys if (v := metric_value(run, k)) is not None}
        out.append((run.params.name, values))
    return out


def result_rows(dataset: str, model: str) -> tuple[list[tuple[str, dict[str, float]]], list[str]]:
    """The rows of every stored benchmark result (docs/bench/results) on ``dataset`` and ``model``, and their splits."""
    rows, sources = [], []
    for path in sorted((Path(__file__).resolve().parent.parent / "docs" / "bench" / "results").glob("*.json")):
        result = json.loads(path.read_text())
        if (result.get("dataset"), result.get("model")) != (dataset, model):
            continue
        sources.append(f"{{{','.join(map(str, result.get('forget_classes') or []))}}} seed {result.get('seed')}")
        for row in result["rows"]:
            values = {k: row[k] for k in ("ua", "ra", "ta", "mia") if isinstance(row.get(k), (int, float))}
            radius = (row.get("representation") or {}).get("contraction_radius")
            values.update({} if radius is None else {"contraction_radius": radius})
            values.update({k: v for k, v in (row.get("inversion") or {}).items() if k in ("psnr", "ssim")})
            values.update({f"recovered_ua_{a}": v for a, v in (row.get("recovered_ua") or {}).items() if v is not None})
            rows.append((row["method"], values))
    return rows, sources


def ranges(rows: list[tuple[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for method, values in rows:
        for key, v in values.items():
            lo, hi = out.setdefault(method, {}).get(key, [v, v])
            out[method][key] = [round(min(lo, v), 2), round(max(hi, v), 2)]
    return out


def write_ranges(stores, out: Path) -> None:
    """Step 4 from every finished comparison in ``stores``: expected.json in ``out``."""
    from opc_core.report.text import EXPECTED_FILE

    rows, sources = [], []
    for store in stores:
        for bench in store.list(kind="bench", status="done", oldest_first=True):
            rows += metric_rows(store, bench.id)
            sources.append(f"{bench.title} (seed {bench.params.seed})")
    from opc_core.workflows.presets import COMMON

    more, splits = result_rows(COMMON["dataset"], COMMON["model"])  # the demo's own dataset and model
    rows += more
    if splits:
        sources.append("the benchmark results on " + ", ".join(splits) + " (docs/results.md)")
    expected = {"source": "min–max measured by scripts/make_demo.py over " + "; ".join(sources), "ranges": ranges(rows)}
    (out / EXPECTED_FILE).write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"expected ranges over {len(sources)} comparisons written to {out / EXPECTED_FILE}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the fast preset for the expected ranges ('' = none)")
    ap.add_argument("--out", default=None, help="output folder (default assets/demo)")
    ap.add_argument("--ranges-from", default=None, help="comma-separated run-store homes: only write expected.json")
    args = ap.parse_args()
    if args.ranges_from:
        from opc_core.runs.store import RunStore
        from opc_core.workflows.demo import DEMO_DIR

        stores = [RunStore(h) for h in args.ranges_from.split(",")]
        write_ranges(stores, Path(args.out) if args.out else DEMO_DIR)
        return
    os.environ["OPC_LAB_HOME"] = tempfile.mkdtemp(prefix="opc-demo-")
    import dataclasses

    import torch

    from opc_core.runs.store import RunStore
    from opc_core.workflows import Options, start
    from opc_core.workflows.demo import DEMO_DIR, export_demo
    from opc_core.workflows.explore import store_maps
    from opc_core.workflows.presets import preset_params

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out = Path(args.out) if args.out else DEMO_DIR
    store = RunStore()
    t0 = time.perf_counter()
    bench = start(preset_params("full"), store, Options(title="shallow vs deep · full preset"))["run_id"]
    print(f"full comparison {bench}: {time.perf_counter() - t0:.0f} s", flush=True)
    for run in store.list(kind="unlearn", parent=bench, status="done"):
        store_maps(run.id, store)
    info = export_demo(store, bench, out)
    print(f"exported {info['runs']} runs, {info['bytes'] / 1e6:.1f} MB to {out}", flush=True)
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        params = dataclasses.replace(preset_params("fast"), seed=seed)
        t0 = time.perf_counter()
        start(params, store, Options(title=f"shallow vs deep · fast preset, seed {seed}"))
        print(f"fast preset, seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    write_ranges([store], out)


if __name__ == "__main__":
    main()
