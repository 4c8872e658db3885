"""The sweep studies of docs/results.md ("Sensitivity (sweep)") and docs/methods.md (OPC's forget batch).

    python scripts/bench_sweep.py sensitivity [--from STATE.json] [--seeds 0,1,2]
    python scripts/bench_sweep.py fraction [--from STATE.json]

Each study runs its sweeps through the library (the same code as ``python -m opc_core sweep``) into the run store
($OPC_LAB_HOME), records their run ids in a state file, then writes its figure (PNG), its table and the section of the
doc from the stored runs; ``--from STATE.json`` skips the runs and only rewrites the doc. Every setting that is not
swept is pinned in the grid (single values), so a later change of the dataset's preset cannot change a re-run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from opc_core.report.sweep import docs_section, sensitivity_png, summarise  # noqa: E402
from opc_core.runs.store import RunStore  # noqa: E402
from opc_core.workflows import Options, start  # noqa: E402
from opc_core.workflows.sweep import SweepParams  # noqa: E402

VARIANTS = ["opc:layer=logits", "opc:layer=features"]
PINNED = {"lr": ["0.02"], "schedule": ["cosine"], "p": ["1"]}  # the fashion_mnist_small preset of OPC (both variants)
STUDIES = {
    "sensitivity": {
        "lam": {"grid": {**PINNED, "epochs": ["1.5"], "lam": ["0.1", "0.3", "1", "3"]}, "methods": VARIANTS},
        "epochs": {"grid": {**PINNED, "lam": ["0.3"], "epochs": ["0.5", "1.5", "5"]}, "methods": VARIANTS},
    },
    "fraction": {
        "forget_batch": {
            "grid": {
                **{f"opc:{k}": v for k, v in PINNED.items()},
                "opc:epochs": ["1.5"],
                "opc:lam": ["0.3"],
                "opc:forget_batch": ["0.25", "0.5", "1"],
            },
            "methods": [*VARIANTS, "ft"],
        },
    },
}
DOCS = {"sensitivity": ROOT / "docs" / "results.md", "fraction": ROOT / "docs" / "methods.md"}
HEADINGS = {"sensitivity": "## Sensitivity (sweep)", "fraction": "## OPC's forget batch: cost against depth (sweep)"}


def run_study(name: str, seeds: list[int], state: Path) -> dict[str, str]:
    store, ids = RunStore(), {}
    for key, spec in STUDIES[name].items():
        params = SweepParams(methods=spec["methods"], grid=spec["grid"], seeds=seeds, attacks=["fm"], mia=False)
        t0 = time.perf_counter()
        out = start(params, store, Options(title=f"{name} study: {key}"))
        ids[key] = out["run_id"]
        logging.info("%s/%s: sweep %s in %.0f s (load %s)", name, key, ids[key], time.perf_counter() - t0, _load())
        state.write_text(json.dumps(ids, indent=2))
    return ids


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_doc(name: str, ids: dict[str, str]) -> Path:
    """Replace (or append) the study's section at the end of its doc; the figure goes beside it in docs/img."""
    store = RunStore()
    png = ROOT / "docs" / "img" / f"sweep_{name}.png"
    sensitivity_png({key: summarise(store, run_id)["table"] for key, run_id in ids.items()}, png)
    section = docs_section(HEADINGS[name], store, ids, png.relative_to(ROOT / "docs"))
    doc = DOCS[name]
    text = doc.read_text() if doc.exists() else ""
    head = text.split("\n" + HEADINGS[name] + "\n")[0].rstrip("\n")
    doc.write_text(head + "\n\n" + section.rstrip("\n") + "\n")
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", choices=sorted(STUDIES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--from", dest="state", help="a state file of an earlier run: only rewrite the doc")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.state:
        ids = json.loads(Path(args.state).read_text())
    else:
        state = RunStore().home / f"study_{args.study}.json"
        ids = run_study(args.study, [int(s) for s in args.seeds.split(",")], state)
        logging.info("run ids in %s", state)
    print(f"wrote {write_doc(args.study, ids)} (load {_load()})")


if __name__ == "__main__":
    main()
