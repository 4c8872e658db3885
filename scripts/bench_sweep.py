"""The sweep studies of docs/results.md ("Sensitivity (sweep)") and docs/methods.md (OPC's forget batch).

    python scripts/bench_sweep.py sensitivity [--from STATE.json] [--seeds 0,1,2]
    python scripts/bench_sweep.py fraction [--from STATE.json]
    python scripts/bench_sweep.py cost [--out docs/bench/sweep_cost.json]

Each study runs its sweeps through the library (the same code as ``python -m opc_core sweep``) into the run store
($OPC_LAB_HOME), records their run ids in a state file, then writes its figure (PNG), its table and the section of the
doc from the stored runs; ``--from STATE.json`` skips the runs and only rewrites the doc. Every setting that is not
swept is pinned in the grid (single values), so a later change of the dataset's preset cannot change a re-run.
``cost`` measures what docs/scaling.md extrapolates from: one OPC and one FT cell with every attack (wall time by
phase), the per-step cost of FT and of OPC at several forget-batch fractions (cnn_small), and ResNet-18 steps on
CIFAR-size input through the library's loop on this CPU. Every figure comes with the load average it was measured at.
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
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from opc_core.report.sweep import docs_section, sensitivity_png, summarise, trends  # noqa: E402
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
PROSE = {  # study -> what its numbers say (written once they were measured; re-read them after a re-run)
    "sensitivity": """What the two sweeps show (λ at 1.5 epochs, epochs at λ = 0.3; lr 0.02 with a cosine schedule and
p = 1 pinned; classes 0, 1, 2; seeds 0, 1, 2; the original model's TA is 88.1):

- **OPC-features** forgets deeper with a larger λ and with longer training, and only the recovery attack sees it:
  UA is 95–100 in every cell. Against λ depth costs retention: FM-recovered UA 16 → 58 → 70 → 99.9 while TA goes
  92 → 91 → 83 → 67 for λ = 0.1 → 0.3 → 1 → 3. Against epochs it does not: at λ = 0.3, 0.5 → 1.5 → 5 epochs give
  FM-recovered UA 19 → 58 → 65 with TA 89 → 91 → 94. The probe inside D_f (telling the three forget classes apart
  from the unlearned features) falls as the forgetting deepens (96 → 35 over λ, 95 → 57 over epochs). At λ = 0.1 or
  half an epoch it is as shallow as FT (FM-recovered UA about 15 in the forget-batch sweep of docs/methods.md).
- **OPC on the logits** never forgets deeply without breaking the model: FM-recovered UA stays at 16–25 for λ ≤ 1
  and any number of epochs, and the FM restricted to the head's null space recovers as much as the full FM (the
  forget classes survive where the head cannot see them, docs/science.md); at λ = 3 FM-recovered UA reaches 88 only
  because the whole model breaks (TA 22 ± 7, with a large spread over seeds).
- For a fixed budget of retention, more epochs at λ = 0.3 (5 epochs: FM-recovered UA 65, TA 94) beat a larger λ
  (λ = 1 at 1.5 epochs: 70 at TA 83); λ = 3 forgets completely at a TA 21 points below the original's.""",
    "fraction": """Why a forget batch costs what it does. Each OPC step draws a retain batch and a forget batch and
sends both through one forward and one backward pass, so at `forget_batch=1` (the default, and the paper's setting)
a step processes twice FT's images plus the norm term. `forget_batch=f` draws f times the retain batch from the
forget set: the forget term keeps its scale (it is a mean over the batch), its estimate gets noisier, and over the
same 82 steps the 3,000 forget images are visited about 3.5 f times (3.5 passes at f = 1, 0.9 at f = 0.25).

What it buys. For **OPC-features** the forget batch is what makes the forgetting deep: at f = 0.25 a step costs
about 40% less (1.2× FT's instead of 2.0×), UA and TA do not move, but FM recovers the forget classes again
(FM-recovered UA about 31 instead of 58; the null-space FM and the probe inside D_f agree); f = 0.5 keeps most of
the depth (about 52, with a larger spread over seeds) at about three quarters of the cost. Only the recovery
attack shows the difference: the output metrics would call all three settings equally forgotten. For **OPC on
the logits** the forget batch changes nothing that matters (FM-recovered UA about 20 at every f, as shallow as
FT's 15 by the null-space mechanism of docs/science.md), so f = 0.25 takes 40% off its cost for free.

Choosing. Keep `forget_batch=1` for OPC-features when depth is the point; 0.5 is the cheaper compromise. Spending the
saved steps on more epochs at a smaller f was not measured here. The setting is a field of every method's config
(`--set forget_batch=0.5`, a sweep's `--grid opc:forget_batch=[...]`, the Unlearn page's settings) and applies to
every method that draws a retain and a forget batch each step (OPC, NGD, NegGrad+, RL, SalUn, BT, SCRUB); a method
that trains on the forget set alone (GA, BE) keeps its full batch.""",
}


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


def replace_section(text: str, heading: str, section: str) -> str:
    """``text`` with the section under ``heading`` (to the next ``## `` heading) replaced, or appended at the end."""
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    if heading not in lines:
        return "\n".join([*lines, "", section.rstrip("\n")]).lstrip("\n") + "\n"
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    after = ["", *lines[end:]] if end < len(lines) else []
    return "\n".join([*lines[:start], *section.rstrip("\n").split("\n"), *after]) + "\n"


def reading(name: str, ids: dict[str, str]) -> str:
    """How to regenerate the section, what each sweep's ends show (from the stored runs), and the study's prose."""
    store = RunStore()
    lines = [
        f"Generated by `bash dev.sh bench sweep {name}` (the runs, then this section; `--from STATE.json` only "
        "rewrites it from stored runs). From the smallest to the largest value swept (mean ± std over seeds):",
        "",
    ]
    for key, sweep_id in ids.items():
        lines += trends(summarise(store, sweep_id)["table"], key)
    cost = ROOT / "docs" / "bench" / "sweep_cost.json"
    if name == "fraction" and cost.exists():  # the measurement taken at the lowest load
        all_steps = [m["steps"] for m in json.loads(cost.read_text())["measurements"]]
        steps = min(all_steps, key=lambda s: float(s["load"].split()[0]))
        per = ", ".join(f"{k} {v:.2f} s ({steps['x_ft'][k]:.2f}× FT)" for k, v in steps["s_per_step"].items())
        lines += [
            "",
            f"Seconds per step, measured side by side (`bench_sweep.py cost`, best of three, load {steps['load']}): "
            f"{per}. The cells' own seconds below ran at loads of 2–20 and include the periodic evaluations.",
        ]
    return "\n".join([*lines, "", PROSE.get(name, "")]).rstrip("\n")


def write_doc(name: str, ids: dict[str, str]) -> Path:
    """Write the study's figure (docs/img) and replace (or append) its section in its doc."""
    store = RunStore()
    png = ROOT / "docs" / "img" / f"sweep_{name}.png"
    sensitivity_png({key: summarise(store, run_id)["table"] for key, run_id in ids.items()}, png)
    section = docs_section(HEADINGS[name], store, ids, png.relative_to(ROOT / "docs"), reading(name, ids))
    doc = DOCS[name]
    doc.write_text(replace_section(doc.read_text() if doc.exists() else "", HEADINGS[name], section))
    return doc


def step_costs(repeats: int = 3, steps: int = 25) -> dict:
    """Seconds per step (the best of ``repeats``, interleaved) of FT and OPC at several forget-batch fractions."""
    import torch
    from bench_gpu import method_step

    from opc_core.train.zoo import load_for
    from opc_core.workflows.unlearn import build_split

    data, model, _ = load_for("fashion_mnist_small", "cnn_small", device="cpu")
    split = build_split(data, None, None, 0)
    configs = {"ft": ("ft", {})} | {f"opc@{f}": ("opc", {"forget_batch": f}) for f in (1.0, 0.5, 0.25, 0.125)}
    best: dict[str, float] = {}
    for _ in range(repeats):
        for name, (method, over) in configs.items():
            s = method_step(method, model, data, split, {"max_steps": steps, "epochs": 50, **over}, torch.device("cpu"))
            best[name] = min(best.get(name, float("inf")), s["s_per_step"])
    return {"s_per_step": best, "x_ft": {k: v / best["ft"] for k, v in best.items()}, "load": _load()}


def resnet_steps(steps: int = 6) -> dict:
    """ResNet-18 on CIFAR-size input (a fixed pattern, no download) through the library's loop, batch 128, CPU."""
    import torch
    from bench_gpu import method_step, synthetic_cifar

    from opc_core.data import make_split
    from opc_core.models import create_model

    data = synthetic_cifar(2048, 64)
    split = make_split(data, forget_classes=[0, 1, 2], seed=0)
    torch.manual_seed(0)
    model = create_model("resnet18", 3, 10, 32)
    cfg = {"max_steps": steps, "epochs": 50, "batch_size": 128}
    cpu = torch.device("cpu")
    out = {m: method_step(m, model, data, split, cfg, cpu)["s_per_step"] for m in ("ft", "opc")}
    return {"s_per_step": out, "threads": torch.get_num_threads(), "load": _load()}


def cell_cost() -> dict:
    """One OPC and one FT cell (the fashion_mnist_small presets) with MIA and every recovery attack: wall seconds of
    the whole cell, of the unlearning loop, and of each attack."""
    store = RunStore()
    out = start(SweepParams(methods=["opc", "ft"]), store, Options(title="cost of one cell"))
    cells = {}
    for entry in out["cells"]:
        run = store.get(entry["run_id"])
        rec = run.metrics.get("recovery") or {}
        cells[entry["label"]] = {
            "cell_s": run.duration_s,
            "unlearn_s": run.metrics.get("seconds"),
            "steps": run.metrics.get("steps"),
            "attacks_s": {a: r.get("seconds") for a, r in rec.items()},
        }
    return {"sweep": out["run_id"], "cells": cells, "load": _load()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", choices=[*sorted(STUDIES), "cost"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--from", dest="state", help="a state file of an earlier run: only rewrite the doc")
    ap.add_argument("--out", default=str(ROOT / "docs" / "bench" / "sweep_cost.json"), help="cost: appended to")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.study == "cost":
        res = {"steps": step_costs(), "resnet18_cpu": resnet_steps(), "cell": cell_cost()}
        res["when"] = time.strftime("%Y-%m-%d %H:%M")
        out = Path(args.out)
        history = json.loads(out.read_text()) if out.exists() else {"measurements": []}
        history["measurements"].append(res)
        out.write_text(json.dumps(history, indent=2))
        print(json.dumps(res, indent=2))
        return
    if args.state:
        ids = json.loads(Path(args.state).read_text())
    else:
        state = RunStore().home / f"study_{args.study}.json"
        ids = run_study(args.study, [int(s) for s in args.seeds.split(",")], state)
        logging.info("run ids in %s", state)
    print(f"wrote {write_doc(args.study, ids)} (load {_load()})")


if __name__ == "__main__":
    main()
