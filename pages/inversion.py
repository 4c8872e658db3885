"""Gradient inversion: rebuild forget images from a model's gradients; original vs unlearned, with PSNR / SSIM."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from opc_core.attacks.inversion import OBJECTIVES, Gallery, InversionConfig, estimate_seconds
from opc_core.config import build_config, describe_fields
from opc_core.report import text as ui_text
from opc_core.report.tables import run_params
from pages._jobs import job_panel, show_failure
from pages._proofs import display, gallery_header
from pages._services import manager, store
from pages._widgets import INFO, config_widgets, reading, run_picker, to_image


@st.cache_data(show_spinner=False, max_entries=8)
def load_gallery(path: str, mtime: float) -> Gallery:
    return Gallery.load(path)


def group_key(run) -> tuple:
    """Runs that share data, original model and split can be attacked on the same images in one job."""
    p = run_params(run)
    return (
        p.get("dataset"),
        run.metrics.get("original_checkpoint"),
        str(p.get("forget_classes")),
        p.get("forget_ratio"),
        p.get("seed"),
    )


st.title("Gradient inversion")
st.markdown(
    "An attacker who sees the gradient of a forget image (with its label) optimises a dummy image, starting from the "
    "mean held-out image, until its gradient matches. Every gallery holds the **original** model and a **retrained** "
    "one, and every score sits beside what an attacker gets **without** the gradient (flat grey, the dataset's mean "
    "image, the class's mean image). A gallery whose original-model reconstructions do not beat those references is "
    "marked **inconclusive**: then a low score of an unlearned model says nothing. Measured (docs/results.md, "
    "defaults: 2 restarts × 1,000 iterations from the mean image): on fashion_mnist_small (four class triples, 8 "
    "images each) the original model's leak depends on the classes: 16.1 dB on {0,2,5} and 17.9 on {1,4,9} "
    "(conclusive), 11.7-12.7 dB on {0,3,6} and {2,5,8}, within 1 dB of the class-mean reference (inconclusive). "
    "Every model leaked about as much as the original except **OPC-features**, whose reconstructions (8.6 ± 0.8 dB) "
    "fall to the flat-grey reference (9.4 dB); on {0,2,5}, where all fifteen methods were inverted, it is the lowest "
    "(9.9 dB; next BE 11.8 and SalUn 12.3, the original 16.1, retrain 16.5). On the demo's split {0,1,2} (4 "
    "images) the original reaches 20.8 dB and OPC-features 12.3, but FT, GA, RL and SalUn drop as far (10.4-12.7 "
    "dB). A model that never saw an image can still leak it: this attack measures how invertible a gradient is, not "
    "what a model remembers, so always compare with retrain."
)
st.caption("  \n".join(ui_text.inversion_caption(m) for m in OBJECTIVES))
runs = run_picker("Unlearn runs", "inv_runs", multi=True, default_id=st.session_state.get("unlearn_run"))
if not runs:
    st.stop()
n_images = st.slider(
    "Forget images to reconstruct",
    1,
    16,
    8,
    key="inv_n",
    help="About 100 s per model for 8 images at the default 2 restarts × 1,000 iterations on the idle 2-core CPU "
    "(cnn_small, scripts/bench_attacks.py), 60 s with 1 restart, up to 164 s under load; the estimate below follows "
    "the settings. The images are a seeded sample of D_f (the `seed` setting), never picked by score",
)
with st.expander("Attack settings"):
    settings = config_widgets(describe_fields(InversionConfig), {}, "inv_set")


def run_groups(runs) -> list[list]:
    """The selected runs, one list per job: runs that share data, original model and split (``group_key``)."""
    groups: dict[tuple, list] = {}
    for r in runs:
        groups.setdefault(group_key(r), []).append(r)
    return list(groups.values())


def cost_caption(runs, n_images: int, settings: dict) -> str:
    """What the launch will cost: models attacked and, for a measured architecture, the time per model."""
    cfg = build_config(InversionConfig, overrides=dict(settings), owner="gradient inversion")
    archs = {run_params(r).get("model") for r in runs}
    arch = archs.pop() if len(archs) == 1 else None
    each = estimate_seconds(cfg, n_images, arch) if arch else None
    models = sum(len(g) + 1 + (not any(run_params(r).get("method") == "retrain" for r in g)) for g in run_groups(runs))
    if each is None:
        return f"This launch attacks up to {models} models (the original and a retrained one beside the selected runs)."
    return (
        f"This launch attacks up to {models} models (the original and a retrained one beside the selected runs): about "
        f"{each:.0f} s each, {models * each / 60:.1f} min in all, at {cfg.restarts} start(s) × {cfg.iterations:,} "
        f"iterations on the 2-core CPU when it is otherwise idle ({arch}, measured; slower under load)."
        + (
            f" One start: about {one:.0f} s each, reconstructing less well (docs/science.md §7)."
            if cfg.restarts > 1 and (one := estimate_seconds(replace(cfg, restarts=1), n_images, arch))
            else ""
        )
    )


try:
    st.caption(cost_caption(runs, n_images, settings))
except ValueError:  # an invalid setting: the launch reports it
    pass
jobs = st.session_state.setdefault("inv_jobs", [])
active = [j for j in jobs if store().exists(j) and store().get(j).active]
if st.button("Launch the inversion", type="primary", disabled=bool(active), key="inv_go"):
    groups = [[r.id for r in g] for g in run_groups(runs)]
    for ids in groups:
        params = {"run_ids": ids, "attack": "inversion", "n_images": n_images, "settings": settings}
        jobs.append(manager().submit("attack", params, title=f"gradient inversion on {len(ids)} run(s)", parent=ids[0]))
    active = jobs[-len(groups) :]


@st.fragment(run_every=1)
def watch(ids: list[str]) -> None:
    if all(store().get(i).final for i in ids):
        st.rerun()
    for i in ids:
        job_panel(i, "inv")


if active:
    watch(active)
for j in jobs:
    if store().exists(j) and store().get(j).status in ("failed", "cancelled", "interrupted"):
        show_failure(store().get(j))

attack_ids = list(dict.fromkeys((store().get(r.id).metrics.get("inversion") or {}).get("attack_run") for r in runs))
results = [store().get(a) for a in attack_ids if a and store().exists(a)]
results = [a for a in results if a.artifact_path("inversion") and a.artifact_path("inversion").exists()]
if not results:
    st.info("No reconstructions for these runs yet: press **Launch the inversion**.", icon=INFO)
    st.stop()
names = {r.id: display(r) for r in runs}
for att in results:
    path = att.artifact_path("inversion")
    try:
        gallery = load_gallery(str(path), path.stat().st_mtime)
    except ValueError:  # a result file written before the gallery format
        st.warning(f"Attack run {att.id} holds an older result file: launch the inversion again.")
        continue
    keys, recs = gallery.keys, gallery.models
    for k in keys:  # a job may have attacked more runs than are selected (e.g. a whole benchmark)
        if k not in names and k != "original" and store().exists(k):
            names[k] = display(store().get(k))
    st.subheader(f"Attack run {att.id}")
    gallery_header(gallery, names)
    steps = gallery.steps.tolist()
    at = st.select_slider("Iteration", steps + ["final"], value="final", key=f"inv_iter_{att.id}") if steps else "final"
    st.caption("Rows: forget images. Columns: the true image, then the reconstruction from each model (PSNR).")
    reading("inversion", [(names.get(k, k), "psnr", float(recs[k].psnr.mean())) for k in keys if k != "original"])
    width = max(8, len(keys) + 1)  # narrow columns keep each row's images side by side
    head = st.columns(width)
    for col, text in zip(head, ["true", *["original" if k == "original" else names.get(k, k) for k in keys]]):
        col.markdown(f"**{text}**")
    for i in range(len(gallery.true)):
        row = st.columns(width)
        row[0].image(to_image(gallery.true[i], 96))
        for col, k in zip(row[1:], keys):
            img = recs[k].images[i] if at == "final" else recs[k].snapshots[steps.index(at)][i]
            col.image(to_image(img, 96), caption=f"{recs[k].psnr[i]:.1f} dB" if at == "final" else None)
