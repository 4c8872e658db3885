"""The shallow-vs-deep benchmark: several unlearning methods from one original model and one split, each followed
by the metrics, every recovery attack and gradient inversion of the same forget images.

This reproduces the shape of the OPC paper's figure (UA before and after the feature-mapping attack, per method) and
extends it with the other attacks. Each method is an ordinary stored unlearn run, so a sweep is a set of independent
runs that a distributed engine could execute as separate tasks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opc_core.train.loop import StepInfo

log = logging.getLogger(__name__)


def _offset_steps(on_step: Callable[[StepInfo], None] | None, prefix: str, offset: int):
    """Re-number a method's steps after the previous methods' and prefix its loss names with the method."""
    if on_step is None:
        return None

    def cb(info: StepInfo) -> None:
        on_step(dataclasses.replace(info, step=offset + info.step, total=offset + info.total,
                                    losses={f"{prefix}/{k}": v for k, v in info.losses.items()}))

    return cb


def parse_method_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"opc:layer=features:p=2"`` -> (label ``"opc[layer=features,p=2]"``, method ``"opc"``, its overrides)."""
    name, *items = (part.strip() for part in spec.split(":"))
    bad = [i for i in items if "=" not in i]
    if bad:
        raise ValueError(f"method variant {spec!r}: settings must be key=value, separated by ':'")
    overrides = dict(tuple(part.strip() for part in i.split("=", 1)) for i in items)
    label = f"{name}[{','.join(items)}]" if items else name
    return label, name, overrides


def run_bench(dataset: str, model: str, methods: Sequence[str], *, forget_classes: Sequence[int] | None = None,
              forget_ratio: float | None = None, seed: int = 0, store=None, parent: str | None = None,
              inversion_images: int = 4, inversion_settings: dict | None = None, out: str | Path | None = None,
              on_step: Callable[[StepInfo], None] | None = None, stop=None, mia: bool = True) -> dict[str, Any]:
    """Run every method, its metrics and all attacks; optionally write the table and chart to ``out``.

    Returns:
        ``{"rows": [...], "runs": {method: run_id}, "seconds": total}``; one row per method with method, run_id,
        ua, ra, ta, mia, seconds, recovered_ua {attack: value}, inversion {psnr, ssim}, representation.
    """
    from opc_core.methods import get_method, list_methods, make_config
    from opc_core.runs.store import RunStore
    from opc_core.workflows.attack import inversion_for_runs, recovery_for_run
    from opc_core.workflows.unlearn import unlearn_run

    store = store or RunStore()
    methods = list(list_methods() if list(methods) == ["all"] else methods)
    specs = [parse_method_spec(m) for m in methods]  # (label, method, overrides)
    for _, m, over in specs:
        make_config(m, over, dataset)  # fail fast on a typo or a bad setting
    t0 = time.perf_counter()
    runs, summaries, offset = {}, {}, 0
    for label, m, over in specs:
        if stop is not None and stop.is_set():
            raise InterruptedError(f"benchmark cancelled before {label}")
        if forget_ratio is not None and get_method(m).class_wise_only:
            log.info("skipping %s: class-wise only", label)
            continue
        run_id = store.create("unlearn", {"method": m, "label": label, "dataset": dataset, "model": model,
                                          "bench": parent}, parent=parent,
                              title=f"{label} on {dataset} (benchmark)", status="running").id
        try:
            s = unlearn_run(dataset, model, m, forget_classes=forget_classes, forget_ratio=forget_ratio, seed=seed,
                            overrides=over, store=store, run_id=run_id,
                            on_step=_offset_steps(on_step, label, offset), stop=stop, mia=mia)
        except BaseException as exc:
            store.set_status(run_id, "cancelled" if isinstance(exc, InterruptedError) else "failed", error=str(exc))
            raise
        store.set_status(run_id, "done")
        offset += s["steps"]
        s["recovery"] = recovery_for_run(run_id, store)
        runs[label], summaries[label] = run_id, s
    inv: dict[str, Any] = {}
    if inversion_images > 0 and runs:
        inv_run = parent or store.create("attack", {"attack": "inversion", "run_ids": list(runs.values())},
                                         status="running").id
        inv = inversion_for_runs(list(runs.values()), store, out_run=inv_run, n_images=inversion_images,
                                 settings=inversion_settings, stop=stop)["inversion"]
        if parent is None:
            store.set_status(inv_run, "done")
    rows = [_row(m, runs[m], summaries[m], inv.get(runs[m])) for m in runs]
    if "original" in inv and rows:
        rows[0]["inversion_original"] = inv["original"]
    result = {"dataset": dataset, "model": model, "forget_classes": list(forget_classes or []),
              "forget_ratio": forget_ratio, "seed": seed, "rows": rows, "runs": runs,
              "inversion_original": inv.get("original"), "seconds": round(time.perf_counter() - t0, 1)}
    if out is not None:
        write_outputs(result, Path(out))
    return result


def _row(method: str, run_id: str, s: dict, inv: dict | None) -> dict[str, Any]:
    return {"method": method, "run_id": run_id, "ua": s["ua"], "ra": s["ra"], "ta": s["ta"], "mia": s["mia"],
            "forget_test_acc": s["forget_test_acc"], "seconds": s["seconds"], "steps": s["steps"],
            "recovered_ua": {a: r["recovered_ua"] for a, r in s["recovery"].items()},
            "inversion": {"psnr": inv["psnr"], "ssim": inv["ssim"]} if inv else None,
            "representation": s["representation"], "config": s["config"]}


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a Markdown table (percentages; recovered UA per attack; inversion PSNR/SSIM)."""
    attacks = list(result["rows"][0]["recovered_ua"]) if result["rows"] else []
    head = ["method", "UA", "RA", "TA", "MIA", *[f"UA after {a}" for a in attacks], "PSNR", "SSIM",
            "feat. radius", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
    for r in result["rows"]:
        inv = r.get("inversion") or {}
        rep = r.get("representation") or {}
        cells = [r["method"], fmt(r["ua"]), fmt(r["ra"]), fmt(r["ta"]), fmt(r["mia"]),
                 *[fmt(r["recovered_ua"].get(a)) for a in attacks], fmt(inv.get("psnr")),
                 "–" if inv.get("ssim") is None else f"{inv['ssim']:.3f}",
                 "–" if rep.get("contraction_radius") is None else f"{rep['contraction_radius']:.3f}",
                 fmt(r["seconds"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write bench.json, bench.md, the recovery chart as HTML (plotly, self-contained) and PNG (matplotlib)."""
    from opc_core.report.plots import recovery_bars, recovery_bars_png

    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "bench.json", "md": out / "bench.md", "html": out / "recovery_bars.html",
             "png": out / "recovery_bars.png"}
    files["json"].write_text(json.dumps(result, indent=2, default=str))
    files["md"].write_text(markdown_table(result) + "\n")
    recovery_bars(result["rows"]).write_html(files["html"], include_plotlyjs=True, full_html=True)
    recovery_bars_png(result["rows"], files["png"])
    return files
