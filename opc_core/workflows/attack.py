"""The attack workflow: the recovery attacks or gradient inversion on stored unlearn runs.

Each function reads a run from the run store (its split, its unlearned checkpoint and the original checkpoint it
started from), computes, and writes its results back to the store, so the dashboard pages only read.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from opc_core.data import ImageData, Split, load_dataset, seeded_subset
from opc_core.env.device import default_device
from opc_core.runs.lifecycle import RunContext
from opc_core.runs.record import AttackParams
from opc_core.workflows.base import workflow

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    run: Any  # opc_core.runs.store.Run
    data: ImageData
    split: Split
    original: nn.Module
    unlearned: nn.Module


def load_run(run_id: str, store=None, device=None) -> LoadedRun:
    """The data, split, original and unlearned models of a finished unlearn run."""
    from opc_core.runs.store import RunStore
    from opc_core.train.zoo import load_checkpoint

    store = store or RunStore()
    run = store.get(run_id)
    if run.kind != "unlearn":
        raise ValueError(f"run {run_id} is a {run.kind} run; analyses need an unlearn run")
    ckpt = run.artifact_path("checkpoint")
    if ckpt is None or not ckpt.exists() or not run.split:
        raise ValueError(f"run {run_id} has no stored model (status {run.status}); it cannot be analysed")
    dev = default_device(device)
    data = load_dataset(run.params.dataset, device=dev)
    unlearned, meta = load_checkpoint(ckpt, device=dev)
    original, _ = load_checkpoint(meta["parent"], device=dev)
    return LoadedRun(run, data, Split.from_dict(run.split), original, unlearned)


def _configs(names: Sequence[str], settings: Mapping[str, Any], extra: Sequence[type] = ()) -> dict[str, Any]:
    """Per-attack configs, each from the settings its Config has a field for, checked like every config.

    A setting that no attack named here (nor any config in ``extra``) has is refused, listing the valid ones; a value
    of the wrong type, not finite or out of range is refused naming the key (:func:`opc_core.config.build_config`).
    """
    from opc_core.attacks import get_attack
    from opc_core.config import build_config

    classes = {name: get_attack(name).config for name in names}
    fields = {name: {f.name for f in dataclasses.fields(cls)} for name, cls in classes.items()}
    valid = set().union(*fields.values(), *({f.name for f in dataclasses.fields(c)} for c in extra))
    unknown = sorted(set(settings) - valid)
    if unknown:
        raise ValueError(f"unknown attack setting(s) {unknown}; valid: {sorted(valid)}")
    return {
        name: build_config(
            cls, overrides={k: v for k, v in settings.items() if k in fields[name]}, owner=f"attack {name!r}"
        )
        for name, cls in classes.items()
    }


def recovery_for_run(
    run_id: str,
    store=None,
    settings: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
    reference: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run the recovery attacks and the "where does the forgotten information live?" diagnostic on a stored run.

    The run's metrics get ``recovery`` ({attack: result}), ``recovery_settings``, ``diagnostic`` (see
    :func:`opc_core.attacks.recovery.diagnostic.where_forgotten`) and, with ``reference``, ``recovery_original``: the
    same attacks on the original model (its own starting point, the bars' reference). Returns the ``recovery`` dict.
    """
    from opc_core.attacks import FeatureBank, list_attacks, run_recovery
    from opc_core.attacks.recovery.diagnostic import DiagnosticConfig, where_forgotten
    from opc_core.runs.store import RunStore

    store = store or RunStore()
    lr = load_run(run_id, store)
    names = list(names or list_attacks())
    cfgs = _configs(names, settings or {}, extra=(DiagnosticConfig,))
    bank = FeatureBank(lr.unlearned, lr.original, lr.data, lr.split)
    out = run_recovery(lr.unlearned, lr.original, lr.data, lr.split, names, cfgs, bank=bank)
    diag_fields = {f.name for f in dataclasses.fields(DiagnosticConfig)}
    diag_cfg = DiagnosticConfig(**{k: v for k, v in (settings or {}).items() if k in diag_fields})
    metrics = {
        "recovery": out,
        "recovery_settings": dict(settings or {}),
        "diagnostic": where_forgotten(lr.unlearned, lr.original, lr.data, lr.split, diag_cfg, bank=bank),
    }
    if reference:
        metrics["recovery_original"] = run_recovery(lr.original, lr.original, lr.data, lr.split, names, cfgs)
    store.update_metrics(run_id, metrics)
    return out


def forget_sample(split: Split, n: int, seed: int = 0) -> torch.Tensor:
    """A seeded sample of ``n`` forget-set indices, spread over the forget classes (same for every model)."""
    return seeded_subset(split.forget_idx, n, seed)


def inversion_for_runs(
    run_ids: Sequence[str],
    store=None,
    out_run: str | None = None,
    n_images: int = 8,
    settings: Mapping[str, Any] | None = None,
    on_step: Callable | None = None,
    stop=None,
) -> dict[str, Any]:
    """Gradient inversion of the same forget images against the original model and each run's unlearned model.

    The original model is always attacked, and so is a retrained model: when none of ``run_ids`` is a retrain run,
    the newest finished retrain run of the same dataset, model and split is added (``retrain_run`` says which, None
    when the store holds none). The reconstructions, their snapshots, PSNR/SSIM and the no-information references
    (flat grey, dataset mean, class mean) are written to ``out_run``'s artifact "inversion", a
    :class:`opc_core.attacks.inversion.Gallery` (``Gallery.load`` reads it back).

    Returns:
        ``{"inversion": {model_key: {"psnr": mean, "ssim": mean}, "references": {ref: {"psnr", "ssim"}}},
        "inconclusive": bool, "retrain_run": id | None, "images": [train indices], "config": {...}}``.
    """
    from opc_core.attacks.inversion import Gallery, InversionConfig, invert
    from opc_core.attacks.inversion.references import reference_scores
    from opc_core.config import build_config
    from opc_core.runs.store import RunStore

    store = store or RunStore()
    loaded = [load_run(r, store) for r in run_ids]
    first = loaded[0]
    retrain = next((lr.run.id for lr in loaded if lr.run.params.method == "retrain"), None)
    if retrain is None and (retrain := matching_retrain(first.run, store)) is not None:
        loaded.append(load_run(retrain, store))
    cfg = build_config(InversionConfig, overrides=dict(settings or {}), owner="gradient inversion")
    idx = forget_sample(first.split, n_images, seed=int((settings or {}).get("seed", 0)))
    images, labels = first.data.train_x[idx.to(first.data.device)], first.data.train_y[idx.to(first.data.device)]
    targets = {"original": first.original, **{lr.run.id: lr.unlearned for lr in loaded}}
    refs = reference_scores(first.data, images.float() / 255.0, labels)
    gallery = Gallery(
        idx.numpy(),
        labels.cpu().numpy(),
        (images.float() / 255.0).cpu().numpy(),
        references={k: {m: v.numpy() for m, v in r.items()} for k, r in refs.items()},
        init=cfg.init,
    )
    summary: dict[str, Any] = {}
    for n, (key, model) in enumerate(targets.items()):

        def step_cb(info, n=n):
            if on_step is not None:
                on_step(dataclasses.replace(info, step=n * info.total + info.step, total=len(targets) * info.total))

        res = invert(model, first.data, images, labels, cfg, stop=stop, on_step=step_cb)
        if stop is not None and stop.is_set():
            raise InterruptedError("inversion cancelled")
        gallery.add(key, res)
        summary[key] = {"psnr": float(res.psnr.mean()), "ssim": float(res.ssim.mean()), "seconds": res.seconds}
    if out_run is not None:
        path = gallery.save(store.artifact_dir(out_run) / "inversion.npz")
        store.add_artifact(out_run, "inversion", path)
    summary["references"] = gallery.reference_means()
    verdict = gallery.inconclusive
    for lr in loaded:
        store.update_metrics(
            lr.run.id,
            {
                "inversion": {
                    "original": summary["original"],
                    "unlearned": summary[lr.run.id],
                    "references": summary["references"],
                    "inconclusive": verdict,
                    "init": cfg.init,
                    "attack_run": out_run,
                }
            },
        )
    return {
        "inversion": summary,
        "inconclusive": verdict,
        "retrain_run": retrain,
        "images": idx.tolist(),
        "config": dataclasses.asdict(cfg),
    }


def matching_retrain(run, store) -> str | None:
    """The newest finished retrain run of ``run``'s dataset, model and split (forget set and seed), if any."""
    want = (run.params.dataset, run.params.model, run.split.get("forget_classes"), run.split.get("forget_ratio"))
    for other in store.list(kind="unlearn", status="done"):
        p, sp = other.params, other.split or {}
        same = (p.dataset, p.model, sp.get("forget_classes"), sp.get("forget_ratio")) == want
        if same and p.method == "retrain" and sp.get("seed") == run.split.get("seed"):
            return other.id
    return None


@workflow("attack")
def attack(params: AttackParams, ctx: RunContext) -> dict[str, Any]:
    """Recovery attacks on one unlearn run, or gradient inversion of the same forget images on one or more."""
    if params.attack == "recovery":
        if len(params.run_ids) != 1:
            raise ValueError(f"the recovery attacks take one unlearn run, got {len(params.run_ids)}")
        rec = recovery_for_run(params.run_ids[0], ctx.store, params.settings)
        return {"recovery": rec, "recovered_ua": {k: v["recovered_ua"] for k, v in rec.items()}}
    if params.attack == "inversion":
        return inversion_for_runs(
            params.run_ids,
            ctx.store,
            out_run=ctx.run_id,
            n_images=params.n_images,
            settings=params.settings,
            on_step=ctx.on_step,
            stop=ctx.stop,
        )
    raise ValueError(f"unknown attack {params.attack!r}; valid: recovery, inversion")
