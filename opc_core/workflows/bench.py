"""The bench workflow: several unlearning methods from one original model and one split, each followed by the
metrics and every recovery attack, then gradient inversion of the same forget images on all of them.

It reproduces the shape of the OPC paper's figure (UA before and after the feature-mapping attack, per method) and
extends it with the other attacks. Each method is an ordinary stored unlearn run, a child of the bench run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from opc_core.config import parse_variant
from opc_core.runs.lifecycle import RunContext, Stage
from opc_core.runs.record import BenchParams, UnlearnParams
from opc_core.train.loop import StepInfo
from opc_core.workflows.attack import inversion_for_runs, recovery_for_run
from opc_core.workflows.base import Options, start, workflow

log = logging.getLogger(__name__)


def _offset(ctx: RunContext, offset: int):
    """The child's steps, numbered after the previous methods' steps, recorded in the bench run too."""

    def cb(info: StepInfo) -> None:
        ctx.on_step(dataclasses.replace(info, step=offset + info.step, total=offset + info.total))

    return cb


@workflow("bench")
def bench(params: BenchParams, ctx: RunContext) -> dict[str, Any]:
    """Run every method, its metrics and all attacks.

    Returns:
        ``{"rows": [...], "runs": {label: run_id}, "seconds": total, ...}``; one row per method with method,
        run_id, ua, ra, ta, mia, seconds, recovered_ua {attack: value}, inversion {psnr, ssim}, representation.
    """
    from opc_core.methods import get_method, list_methods, make_config

    methods = list(list_methods() if list(params.methods) == ["all"] else params.methods)
    specs = [parse_variant(m) for m in methods]  # (label, method, overrides)
    if not any(m == "retrain" for _, m, _ in specs):  # retrain is the reference of every comparison
        specs.append(("retrain", "retrain", {}))
    for _, m, over in specs:
        make_config(m, over, params.dataset)  # fail fast on a typo or a bad setting
    if params.forget_ratio is not None:
        for label, m, _ in specs:
            if get_method(m).class_wise_only:
                log.info("skipping %s: class-wise only", label)
        specs = [s for s in specs if not get_method(s[1]).class_wise_only]
    t0 = time.perf_counter()
    runs, summaries, offset, reference = {}, {}, 0, None
    for i, (label, m, over) in enumerate(specs):
        if ctx.stop.is_set():
            raise InterruptedError(f"benchmark cancelled before {label}")
        ctx.set_stage(Stage(label, "unlearn", i, len(specs)))
        child = UnlearnParams(
            dataset=params.dataset,
            model=params.model,
            method=m,
            label=label,
            forget_classes=params.forget_classes,
            forget_ratio=params.forget_ratio,
            seed=params.seed,
            overrides=over,
            mia=params.mia,
        )
        s = start(
            child,
            ctx.store,
            Options(
                parent=ctx.run_id,
                title=f"{label} on {params.dataset} (benchmark)",
                on_step=_offset(ctx, offset),
                stop=ctx.stop,
                device=ctx.device,
            ),
        )
        offset += s["steps"]
        ctx.set_stage(Stage(label, "recovery", i, len(specs)))
        s["recovery"] = recovery_for_run(s["run_id"], ctx.store, reference=i == 0)
        metrics = ctx.store.get(s["run_id"]).metrics
        s["diagnostic"] = metrics.get("diagnostic")
        reference = reference or metrics.get("recovery_original")
        runs[label], summaries[label] = s["run_id"], s
    inv: dict[str, Any] = {}
    inv_config: dict[str, Any] | None = None
    if params.inversion_images > 0 and runs:
        ctx.set_stage(Stage("all methods", "inversion", len(specs), len(specs) + 1))
        out = inversion_for_runs(
            list(runs.values()),
            ctx.store,
            out_run=ctx.run_id,
            n_images=params.inversion_images,
            settings=params.inversion_settings,
            on_step=_offset(ctx, offset),  # after the methods' steps: the progress bar moves during the inversion
            stop=ctx.stop,
        )
        inv, inv_config = out["inversion"], {**out["config"], "inconclusive": out["inconclusive"]}
    rows = [_row(m, runs[m], summaries[m], inv.get(runs[m])) for m in runs]
    if "original" in inv and rows:
        rows[0]["inversion_original"] = inv["original"]
    return {
        "dataset": params.dataset,
        "model": params.model,
        "forget_classes": list(params.forget_classes or []),
        "forget_ratio": params.forget_ratio,
        "seed": params.seed,
        "rows": rows,
        "runs": runs,
        "inversion_original": inv.get("original"),
        "inversion_references": inv.get("references"),
        "inversion_config": inv_config,
        "inversion_images": params.inversion_images,
        "original": _original_row(summaries, reference),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _row(method: str, run_id: str, s: dict, inv: dict | None) -> dict[str, Any]:
    return {
        "method": method,
        "run_id": run_id,
        "ua": s["ua"],
        "ra": s["ra"],
        "ta": s["ta"],
        "mia": s["mia"],
        "forget_test_acc": s["forget_test_acc"],
        "seconds": s["seconds"],
        "steps": s["steps"],
        "recovered_ua": {a: r["recovered_ua"] for a, r in s["recovery"].items()},
        "diagnostic": s.get("diagnostic"),
        "inversion": {"psnr": inv["psnr"], "ssim": inv["ssim"]} if inv else None,
        "representation": s["representation"],
        "config": s["config"],
    }


def _original_row(summaries: dict[str, dict], reference: dict | None) -> dict[str, Any] | None:
    """The original model as a reference row: its UA/RA/TA (as every child measured them) and the attacks on it."""
    first = next(iter(summaries.values()), None)
    if first is None or not first.get("original"):
        return None
    o = first["original"]
    return {
        "method": "original",
        "ua": o.get("ua"),
        "ra": o.get("ra"),
        "ta": o.get("ta"),
        "recovered_ua": {a: r["recovered_ua"] for a, r in (reference or {}).items()},
    }
